"""fp16 mixed precision with a gradient scaler per player (train.amp=fp16), checked on the CPU.

CPU autocast runs the same fp16 casts as CUDA's for the layers used here, so the arithmetic
the scaler protects (fp16 gradients that underflow or overflow) is exercised without a GPU.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from steadygan.core.penalties import Penalty, PenaltyInputs, build_penalty, r1_penalty
from steadygan.training.checkpoint import load_checkpoint
from steadygan.training.trainer import Trainer, train

FP16 = ["train.amp=fp16", "train.device=cpu"]


@pytest.mark.slow
@pytest.mark.parametrize("penalties", ["d.penalties=[r1:gamma=1]", "d.penalties=[r2:gamma=1]", "d.penalties=[wgan-gp]",
                                       "d.penalties=[zero-gp]", "d.penalties=[dragan]",
                                       "d.penalties=[seed-param:lambda=0.1]", "d.penalties=[consensus]",
                                       "g.penalties=[nk:eta=0.1]"])
def test_every_penalty_trains_under_fp16(tmp_path, penalties, toy_cfg, final_state):
    result = train(toy_cfg(tmp_path, *FP16, penalties, "train.steps=8"))
    rows = [json.loads(line) for line in (result.run_dir / "stats.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all("AMP/D/scale" in r and "AMP/G/scale" in r for r in rows)
    name = penalties.split("[")[1].split(":")[0].rstrip("]")
    assert any(f"Penalty/{'G' if name == 'nk' else 'D'}/{name}" in r for r in rows)
    state = final_state(result.run_dir)
    assert all(torch.isfinite(t).all() for t in state["discriminator"].values())
    assert state["scaler_d"]["scale"] > 0


def test_r1_under_fp16_with_the_scale_agrees_with_fp32_and_without_it_underflows():
    """Five small layers (weights 1.5e-3, normal fp16 numbers) shrink the input gradient to
    ~1e-10, under fp16's smallest subnormal (6e-8): unscaled it flushes to zero; scaled by
    2^15 it is ~1e-5, and R1 agrees with fp32 to fp16 rounding (an 11-bit mantissa, and
    subnormal steps of 6e-8 at this size: 1% allows both)."""
    torch.manual_seed(0)
    D = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(64, 64), nn.Tanh())], nn.Linear(64, 1), nn.Flatten(0))
    with torch.no_grad():
        for m in D:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 1.5e-3)
    real = torch.randn(16, 64)
    exact = r1_penalty(D, real, gamma=2.0)
    with torch.autocast("cpu", dtype=torch.float16):
        scaled = r1_penalty(D, real, gamma=2.0, grad_scale=2.0 ** 15)
        unscaled = r1_penalty(D, real, gamma=2.0)
    assert exact.item() > 0
    assert scaled.item() == pytest.approx(exact.item(), rel=1e-2, abs=0)  # the values are ~1e-19: no absolute slack
    assert unscaled.item() == 0.0


def test_an_overflowing_step_is_skipped_logged_and_training_goes_on(tmp_path, toy_cfg):
    cfg = toy_cfg(tmp_path, *FP16, "d.penalties=[r1:gamma=1]", "train.steps=12")
    trainer = Trainer(cfg, tmp_path / "run")
    (tmp_path / "run").mkdir()
    trainer.d.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 18)  # fp16 (max 65504) overflows at this scale
    before = copy.deepcopy(trainer.D.state_dict())
    stats = trainer._one_step()
    assert stats["AMP/D/skipped"].item() == 1.0 and "Grad/D/norm" not in stats and "Penalty/D/r1" not in stats
    assert all(torch.equal(before[k], v) for k, v in trainer.D.state_dict().items())  # the step was not taken
    assert trainer.d.scaler.get_scale() == 2.0 ** 17
    result = trainer.train()  # the tracker does not read the skipped steps as divergence
    assert result.step == 12
    rows = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert any(r["AMP/D/skipped"] == 0.0 for r in rows)
    assert all(("Grad/D/norm" in r) == (r["AMP/D/skipped"] == 0.0) for r in rows)  # logged on every step taken


@pytest.mark.slow
def test_resume_under_fp16_is_bit_exact(tmp_path, toy_cfg, final_state, assert_same_state):
    sets = [*FP16, "d.penalties=[r1:gamma=1,every=2]", "train.ema=0.5"]
    straight = train(toy_cfg(tmp_path, *sets))
    half = train(toy_cfg(tmp_path, *sets, "train.steps=6"))
    payload = load_checkpoint(half.checkpoint)
    assert "scaler_d" in payload and "scaler_g" in payload
    resumed = train(toy_cfg(tmp_path, *sets), run_dir=half.run_dir, resume=payload)
    assert resumed.step == straight.step
    assert_same_state(final_state(straight.run_dir), final_state(resumed.run_dir))
    assert final_state(straight.run_dir)["scaler_d"] == final_state(resumed.run_dir)["scaler_d"]


class InfPenalty(Penalty):
    """A penalty whose gradient is inf: every step under a scaler overflows."""

    name, players = "inf", ("d",)

    def value(self, inputs):
        return inputs.real_logits.sum() * float("inf")


@pytest.mark.parametrize("init_scale,norm_logged", [(2.0, False), (1.5, True)])
def test_a_scale_driven_below_one_is_reported_as_divergence(init_scale, norm_logged):
    """Skipped steps drop Grad/D/norm (an fp16 overflow is not divergence) until the scale
    falls below 1: then gradients overflow even unscaled, and the inf norm goes to the
    tracker, which stops the run."""
    from steadygan.core.clipping import build_clipper
    from steadygan.core.losses import build_loss
    from steadygan.core.step import Player, d_step
    from steadygan.models import build_models

    torch.manual_seed(0)
    pair = build_models("mlp", (2,), 2, width=8, depth=2)
    D, G = pair.discriminator, pair.generator
    penalty = InfPenalty(weight=1.0)
    penalty.needs = frozenset({"real_grad"})
    d = Player("D", D, torch.optim.SGD(D.parameters(), lr=0.1), [penalty], build_clipper(None),
               scaler=torch.amp.GradScaler("cpu", init_scale=init_scale))
    g = Player("G", G, torch.optim.SGD(G.parameters(), lr=0.1), [], build_clipper(None))
    stats = d_step(d, g, build_loss("non-saturating"), torch.randn(8, 2), torch.randn(8, 2), step=0)
    assert stats["AMP/D/skipped"].item() == 1.0 and d.scaler.get_scale() == init_scale / 2
    assert ("Grad/D/norm" in stats) is norm_logged


def _penalty_value(name: str, player: str, grad_scale: float, autocast: bool, **options: object) -> torch.Tensor:
    """One registry penalty's value on a fixed tiny problem whose inner gradients underflow in
    fp16: D's logits are its linear map times 1e-7, so an inner backward carries 1e-7 times
    the upstream gradient (and then times D's weights, ~0.1) in fp16, about 1e-8, below half
    its smallest subnormal (6e-8), unless the scaler's scale was applied first. The forward
    logits are themselves subnormal; that costs nothing here: D is linear, so its input
    gradient does not depend on them, and the losses' slopes at logits near 0 are +-1/2
    whatever their rounding."""
    torch.manual_seed(0)
    D, G = nn.Linear(64, 1), nn.Linear(8, 64)
    real, z = torch.randn(16, 64), torch.randn(16, 8)
    with torch.autocast("cpu", dtype=torch.float16, enabled=autocast):
        def score(x: torch.Tensor) -> torch.Tensor:
            return (D(x) * 1e-7).flatten()
        real = real.requires_grad_(True)
        fake = G(z)  # not detached: consensus differentiates G's loss in D's update too
        real_logits, fake_logits = score(real), score(fake)
        d_loss = (torch.nn.functional.softplus(-real_logits.float()).mean()
                  + torch.nn.functional.softplus(fake_logits.float()).mean())
        g_loss = torch.nn.functional.softplus(-fake_logits.float()).mean()
        unused = nn.Parameter(torch.zeros(1))  # a parameter the losses do not reach: its gradient is None
        inputs = PenaltyInputs(player=player, score=score, d_params=[*D.parameters(), unused],
                               g_params=[*G.parameters(), unused], real=real, fake=fake, real_logits=real_logits,
                               fake_logits=fake_logits, d_loss=d_loss, g_loss=g_loss, grad_scale=grad_scale)
        torch.manual_seed(1)  # the same interpolation draw for zero-gp in every call
        return build_penalty({"name": name, **options}, player).value(inputs)


@pytest.mark.parametrize("name, player, options", [
    ("r1", "d", {}), ("r2", "d", {}), ("zero-gp", "d", {}),
    ("seed-param", "d", {}), ("seed-param", "g", {}), ("seed-param", "d", {"target": "output"}),
    ("consensus", "d", {}), ("consensus", "g", {}), ("nk", "g", {})])
def test_zero_centred_and_parameter_penalties_hand_the_scale_to_their_inner_gradient(name, player, options):
    """Each of these registry penalties passes the scaler's scale on: dropping it flushes the
    inner gradient to zero in fp16. The penalties centred at norm 1 (wgan-gp, dragan), whose
    value (0 - 1)^2 barely moves when that happens, are checked by a spy in test_penalties.py."""
    fp32 = _penalty_value(name, player, 1.0, autocast=False, **options)
    scaled = _penalty_value(name, player, 2.0 ** 15, autocast=True, **options)
    unscaled = _penalty_value(name, player, 1.0, autocast=True, **options)
    assert fp32.item() > 0
    # fp16 rounding, mostly of the scaled inner gradients (some are subnormal on G's side).
    assert scaled.item() == pytest.approx(fp32.item(), rel=2e-2, abs=0)
    assert unscaled.item() < 0.5 * fp32.item()  # flushed (to zero or to a few subnormal steps)

"""The fast step computes what the plain step computes.

Three changes make the step fast (steadygan.core.step, steadygan.training.trainer): one generator forward
per iteration shared by the D and the G update, channels-last memory layout, and one
discriminator forward over real and fake together. Each is compared here with the plain
path it replaces. SGD keeps the comparisons sharp: a parameter's change is lr times its
gradient, so an error in any gradient shows in the parameters (Adam would divide it by its
own running scale); a large learning rate makes every update a clear 1e-2 or more.

Tolerances: the fused and channels-last paths run other kernels and sum in another order,
which moves float32 results by about 1e-7 relative per operation; 1e-5 absolute on values
of order 0.01-1 allows that and nothing else: a wrong half of a split, a lost label or a
scrambled layout moves values by 1e-2 or more.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.eval_frame import OptimizedModule

from steadygan.core.augment import AugmentedDiscriminator
from steadygan.core.batch import Batch
from steadygan.core.clipping import build_clipper
from steadygan.core.losses import build_loss
from steadygan.core.penalties import build_penalty
from steadygan.core.step import Player, d_step, g_step
from steadygan.data import InMemoryData
from steadygan.errors import ConfigError
from steadygan.models import build_models
from steadygan.training.build import load_config
from steadygan.training.checkpoint import ADDED_SINCE_V2, latest_checkpoint, load_checkpoint, upgrade_config
from steadygan.training.trainer import Trainer, train

ATOL = 1e-5
LR = 20.0
SLOW = ["train.share_fake=false", "train.channels_last=false", "train.fused_d_forward=false"]


def _players(d_penalties=(), num_classes=0, d_norm="none", seed=0):
    torch.manual_seed(seed)
    pair = build_models("dcgan", (3, 32, 32), 8, width=8, d_norm=d_norm, num_classes=num_classes)
    D, G = pair.discriminator, pair.generator
    d = Player("D", D, torch.optim.SGD(D.parameters(), lr=LR), [build_penalty(p, "d") for p in d_penalties],
               build_clipper(None))
    g = Player("G", G, torch.optim.SGD(G.parameters(), lr=LR), [], build_clipper(None))
    return d, g


def _copy(player: Player) -> Player:
    net = copy.deepcopy(player.net)
    opt = type(player.optimizer)(net.parameters(), **player.optimizer.defaults)
    return Player(player.tag, net, opt, player.penalties, player.clipper, player.fused_forward)


def _batch(n=8, num_classes=0, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=gen) * 2 - 1
    y = torch.randint(0, num_classes, (n,), generator=gen) if num_classes else None
    return Batch(x, y), torch.randn(n, 8, generator=gen)


def _assert_close_params(a: torch.nn.Module, b: torch.nn.Module, before: torch.nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=ATOL, msg=name)
    moved = max((p - q).abs().max().item() for p, q in zip(a.parameters(), before.parameters()))
    assert moved > 1e-2  # the update is large against the tolerance: the comparison means something


def _forward_batch_sizes(net: torch.nn.Module) -> list[int]:
    sizes: list[int] = []
    net.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    return sizes


@pytest.mark.parametrize("penalties,num_classes,fused_sizes", [
    ((), 0, [16]), (({"name": "wgan-gp"},), 0, [16, 8]), (({"name": "dragan"},), 4, [16, 8]),
    ((), 4, [16]),
    # R1/R2 differentiate one half's logits: through a fused graph that would cost 2N, so not fused
    (({"name": "r1", "gamma": 10},), 0, [8, 8]), (({"name": "r2", "gamma": 10},), 4, [8, 8]),
])
def test_the_fused_real_and_fake_forward_equals_two_forwards(penalties, num_classes, fused_sizes):
    d, g = _players(penalties, num_classes)
    d_fused = _copy(d)
    d_fused.fused_forward = True
    d_before = copy.deepcopy(d.net)
    batch, z = _batch(num_classes=num_classes)
    loss = build_loss("non-saturating")
    torch.manual_seed(5)  # wgan-gp and dragan draw random numbers
    two = d_step(d, g, loss, batch, z, step=0)
    torch.manual_seed(5)
    sizes = _forward_batch_sizes(d_fused.net)
    one = d_step(d_fused, g, loss, batch, z, step=0)
    assert sizes == fused_sizes
    assert two.keys() == one.keys()
    for key in two:
        torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=ATOL, msg=key)
    _assert_close_params(d_fused.net, d.net, d_before)


def test_one_shared_generator_forward_gives_the_updates_of_two_forwards_of_the_same_noise():
    d, g = _players(({"name": "r2", "gamma": 1},))
    d2, g2 = _copy(d), _copy(g)
    d_before, g_before = copy.deepcopy(d.net), copy.deepcopy(g.net)
    batch, z = _batch()
    loss = build_loss("hinge")
    d_step(d, g, loss, batch, z, step=0)  # G runs twice, once per update, on the same noise
    g_step(g, d, loss, batch, z, step=0)
    fake = g2(z)
    d_step(d2, g2, loss, batch, z, step=0, fake=fake)
    g_step(g2, d2, loss, batch, z, step=0, fake=fake)
    _assert_close_params(d2.net, d.net, d_before)
    _assert_close_params(g2.net, g.net, g_before)


def test_a_penalty_that_needs_the_generators_loss_cannot_take_a_shared_batch():
    d, g = _players(({"name": "consensus"},))
    batch, z = _batch()
    with pytest.raises(ValueError, match=r"^a penalty due in this D step differentiates G's loss: generate its fake "
                                         r"batch in the step \(fake=None\)$"):
        d_step(d, g, build_loss("non-saturating"), batch, z, step=0, fake=g(z))


def test_channels_last_networks_give_the_outputs_and_gradients_of_nchw_ones():
    d, g = _players()
    d_cl, g_cl = _copy(d), _copy(g)
    d_cl.net.to(memory_format=torch.channels_last)
    g_cl.net.to(memory_format=torch.channels_last)
    batch, z = _batch()
    fake, fake_cl = g.net(z), g_cl.net(z)
    assert fake_cl.is_contiguous(memory_format=torch.channels_last) and not fake_cl.is_contiguous()
    torch.testing.assert_close(fake_cl, fake, rtol=0, atol=ATOL)
    x_cl = batch.x.contiguous(memory_format=torch.channels_last)
    out, out_cl = d.net(batch.x), d_cl.net(x_cl)
    torch.testing.assert_close(out_cl, out, rtol=0, atol=ATOL)
    (out.sum() + fake.sum()).backward()
    (out_cl.sum() + fake_cl.sum()).backward()
    for a, b in ((d.net, d_cl.net), (g.net, g_cl.net)):
        # Relative to the network's largest gradient: a bias before BatchNorm has a true
        # gradient of 0, computed as the rounding noise of sums of values 1e7 times larger.
        scale = max(p.grad.abs().max().item() for p in a.parameters())
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            assert (q.grad - p.grad).abs().max().item() <= 1e-6 * scale, name


def _colour_data(n=96, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    return InMemoryData(images, torch.randint(0, 10, (n,), generator=gen), "random-32")


def _colour_cfg(tmp_path, *sets):
    return load_config(None, ["data.batch_size=16", "model.width=8", "model.z_dim=8", "train.steps=6",
                              "train.sample_every=3", "train.checkpoint_every=3", "train.progress=false",
                              "train.threads=1", "train.device=cpu", f"train.out_dir={tmp_path / 'runs'}", *sets])


def test_the_trainer_uses_the_fast_paths_where_they_apply(tmp_path):
    default = Trainer(_colour_cfg(tmp_path), None, _colour_data())
    assert default.channels_last and default.d.fused_forward
    assert not default.iteration.shares_fake(default.d_updates)  # shared: opt-in
    fast = Trainer(_colour_cfg(tmp_path, "train.share_fake=true"), None, _colour_data())
    assert fast.channels_last and fast.d.fused_forward and fast.iteration.shares_fake(fast.d_updates)
    assert fast.G.project[0].weight.is_contiguous()  # 2-D weights have no channels-last form
    assert next(p for p in fast.D.parameters() if p.ndim == 4).is_contiguous(memory_format=torch.channels_last)
    assert fast._real_batch().x.is_contiguous(memory_format=torch.channels_last)
    before = [copy.deepcopy(fast.G), copy.deepcopy(fast.D)]
    fast._one_step()
    for old, new in zip(before, (fast.G, fast.D)):  # the shared batch trained both players
        assert all(not torch.equal(p, q) for p, q in zip(old.parameters(), new.parameters()))
    slow = Trainer(_colour_cfg(tmp_path, *SLOW), None, _colour_data())
    assert not (slow.channels_last or slow.d.fused_forward or slow.iteration.shares_fake(slow.d_updates))
    with_bn = Trainer(_colour_cfg(tmp_path, "model.d_norm=batch"), None, _colour_data())
    assert not with_bn.d.fused_forward  # BatchNorm couples the batch: two forwards stay two
    with pytest.raises(ConfigError, match="with train.n_critic=2 each D update needs its own batch"):
        _colour_cfg(tmp_path, "train.n_critic=2", "train.share_fake=true")  # an option that would do nothing
    lazy = Trainer(_colour_cfg(tmp_path, "d.penalties=[consensus:every=2]", "train.share_fake=true"), None,
                   _colour_data())
    assert not lazy.iteration.shares_fake(lazy.d_updates)  # due at D update 0
    lazy.d_updates = 1
    assert lazy.iteration.shares_fake(lazy.d_updates)


def test_channels_last_and_the_fused_forward_train_the_parameters_of_the_plain_step(tmp_path, final_state):
    sgd = ["d.optimizer=sgd", "g.optimizer=sgd", "d.betas=null", "g.betas=null", "d.lr=0.05", "g.lr=0.05",
           "train.share_fake=false", "d.penalties=[r1:gamma=1]", "train.steps=3"]
    plain = train(_colour_cfg(tmp_path, *sgd, "train.channels_last=false", "train.fused_d_forward=false"),
                  data=_colour_data())
    fast = train(_colour_cfg(tmp_path, *sgd), data=_colour_data())
    a, b = final_state(plain.run_dir), final_state(fast.run_dir)
    for part in ("generator", "discriminator"):
        for name, tensor in a[part].items():
            torch.testing.assert_close(b[part][name], tensor, rtol=0, atol=ATOL, msg=f"{part}.{name}")


def test_share_fake_changes_nothing_while_consensus_is_due_in_every_d_step(tmp_path, final_state, assert_same_state):
    sets = ["d.penalties=[consensus]", "g.penalties=[consensus]", "train.steps=2", "train.channels_last=false",
            "train.fused_d_forward=false"]
    shared = train(_colour_cfg(tmp_path, *sets, "train.share_fake=true"), data=_colour_data())
    separate = train(_colour_cfg(tmp_path, *sets, "train.share_fake=false"), data=_colour_data())
    assert_same_state(final_state(shared.run_dir), final_state(separate.run_dir))


@pytest.mark.slow
def test_resume_is_bit_exact_on_the_fast_step(tmp_path, final_state, assert_same_state):
    sets = ["train.ema=0.5", "d.penalties=[r1:gamma=1,every=2]", "train.share_fake=true"]
    data = _colour_data()
    straight = train(_colour_cfg(tmp_path, *sets), data=data)
    half = train(_colour_cfg(tmp_path, *sets, "train.steps=3"), data=data)
    resumed = train(_colour_cfg(tmp_path, *sets), run_dir=half.run_dir, resume=load_checkpoint(half.checkpoint),
                    data=data)
    assert resumed.step == straight.step == 6
    assert_same_state(final_state(straight.run_dir), final_state(resumed.run_dir))


@pytest.mark.slow
def test_a_run_from_before_the_fast_step_resumes_on_the_plain_step(tmp_path, idx_dir, image_cfg, final_state,
                                                                   assert_same_state):
    import yaml

    from steadygan.cli import main
    assert upgrade_config({"train": {}})["train"] == {**ADDED_SINCE_V2, "world_size": 1}
    assert not any(ADDED_SINCE_V2.values())
    assert upgrade_config({"train": {"share_fake": True}})["train"]["share_fake"] is True
    sets = ["model.d_norm=none", *SLOW]
    straight = train(image_cfg(tmp_path, idx_dir, *sets))
    half = train(image_cfg(tmp_path, idx_dir, *sets, "train.steps=3"))
    payload = load_checkpoint(half.checkpoint)
    for key in ADDED_SINCE_V2:
        del payload["config"]["train"][key]  # as a release before the fast step wrote it
    torch.save({**payload, "format": 2}, half.checkpoint)
    (half.run_dir / "config.yaml").write_text(yaml.safe_dump(payload["config"]))
    assert main(["train", "--resume", str(half.run_dir), "--steps", "6", "--no-progress"]) == 0
    assert_same_state(final_state(straight.run_dir), final_state(half.run_dir))


class ViewDiscriminator(torch.nn.Module):
    """Flattens a convolution's output with .view: fails in channels-last layout."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 4, 4)
        self.head = torch.nn.Linear(4 * 8 * 8, 1)

    def forward(self, x):
        h = self.conv(x)
        return self.head(h.view(h.shape[0], -1)).squeeze(1)


class MinibatchStdDiscriminator(ViewDiscriminator):
    """Adds the batch's standard deviation to every logit: couples samples without BatchNorm."""

    def forward(self, x):
        return super().forward(x) + x.std(0).mean()


def _user_pair(D):
    G = torch.nn.Sequential(torch.nn.Linear(8, 3 * 32 * 32), torch.nn.Tanh(), torch.nn.Unflatten(1, (3, 32, 32)))
    from steadygan.models import GanPair

    return GanPair(G, D)


def test_networks_that_fail_in_channels_last_train_channels_first_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="do not work in channels-last layout .*view"):
        trainer = Trainer(_colour_cfg(tmp_path), None, _colour_data(), pair=_user_pair(ViewDiscriminator()))
    assert not trainer.channels_last and trainer.D.conv.weight.is_contiguous()
    assert trainer.d.fused_forward  # independent of the layout: still one forward
    trainer._one_step()


def test_batch_coupled_or_spectrally_normalised_discriminators_are_not_fused(tmp_path):
    with pytest.warns(UserWarning, match="channels-last"):
        coupled = Trainer(_colour_cfg(tmp_path), None, _colour_data(), pair=_user_pair(MinibatchStdDiscriminator()))
    assert not coupled.d.fused_forward
    spectral = Trainer(_colour_cfg(tmp_path, "model.spectral_norm=true"), None, _colour_data())
    assert not spectral.d.fused_forward  # one power iteration per forward: fusing would halve them
    assert spectral.channels_last


def test_the_shared_batch_updates_batchnorm_statistics_once_per_iteration():
    """The documented difference of the shared forward: G's BatchNorm running statistics
    see one forward per iteration instead of two (parameters are equal, tested above)."""
    d, g = _players()
    d2, g2 = _copy(d), _copy(g)
    batch, z = _batch()
    loss = build_loss("non-saturating")
    d_step(d, g, loss, batch, z, step=0)
    g_step(g, d, loss, batch, z, step=0)
    fake = g2(z)
    d_step(d2, g2, loss, batch, z, step=0, fake=fake)
    g_step(g2, d2, loss, batch, z, step=0, fake=fake)
    tracked = [m.num_batches_tracked.item() for m in (g.net, g2.net)
               for m in [next(x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d))]]
    assert tracked == [2, 1]


@pytest.mark.slow
def test_a_lab_folder_from_before_the_fast_step_resumes_on_its_own_step(tmp_path, toy_cfg_for_lab):
    import yaml

    from steadygan.lab.compare import RunJob, run_one
    from steadygan.lab.variants import parse_variant

    cfg = toy_cfg_for_lab(tmp_path)
    old = train(cfg)  # stands in for a run of an older release: its config.yaml lacks the new keys
    stored = yaml.safe_load((old.run_dir / "config.yaml").read_text())
    for key in ADDED_SINCE_V2:
        del stored["train"][key]
    (old.run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    _as_format_2(latest_checkpoint(old.run_dir))
    job_cfg = toy_cfg_for_lab(tmp_path, "train.steps=8")
    job_cfg.train.share_fake = True  # a lab that asks for the shared forward (channels-last and fused: defaults)
    job = RunJob(parse_variant("baseline"), 0, old.run_dir, job_cfg)
    result = run_one(job)
    assert result["action"].startswith("resumed") and result["step"] == 8
    assert not any(yaml.safe_load((old.run_dir / "config.yaml").read_text())["train"][k] for k in ADDED_SINCE_V2)


@pytest.mark.slow
def test_resume_with_the_original_config_file_keeps_the_runs_step(tmp_path, toy_cfg_for_lab):
    import yaml

    from steadygan.cli import main

    cfg = toy_cfg_for_lab(tmp_path)
    run = train(cfg).run_dir
    stored = yaml.safe_load((run / "config.yaml").read_text())
    for key in ADDED_SINCE_V2:
        del stored["train"][key]
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    _as_format_2(latest_checkpoint(run))
    original = tmp_path / "original.yaml"
    original.write_text(yaml.safe_dump(stored))  # the user's file, written before the options existed
    assert main(["train", "--resume", str(run), "--config", str(original), "--steps", "8", "--no-progress"]) == 0
    assert not any(load_checkpoint(latest_checkpoint(run))["config"]["train"][k] for k in ADDED_SINCE_V2)


def _as_format_2(ckpt) -> None:
    """Rewrite a checkpoint as a release before the fast step wrote it."""
    payload = torch.load(ckpt, weights_only=True)
    for key in ADDED_SINCE_V2:
        del payload["config"]["train"][key]
    torch.save({**payload, "format": 2}, ckpt)


@pytest.fixture
def toy_cfg_for_lab(toy_cfg):
    return lambda tmp_path, *sets: toy_cfg(tmp_path, "train.steps=4", "train.checkpoint_every=2", *sets)


SGD = ["d.optimizer=sgd", "g.optimizer=sgd", "d.betas=null", "g.betas=null", "d.lr=0.05", "g.lr=0.05"]


@pytest.mark.slow
def test_compile_refuses_penalties_that_differentiate_a_gradient_by_name(tmp_path):
    # At config validation: a compare refuses the variant before training any other.
    with pytest.raises(ConfigError, match=r"^train.compile=default: r1, seed-param differentiate\(s\) a gradient of "
                       r"the networks \(a double backward\), which torch.compile does not support; "
                       r"set train.compile=none with these penalties$"):
        _colour_cfg(tmp_path, "train.compile=default", "d.penalties=[r1]", "g.penalties=[seed-param]")
    with pytest.raises(ConfigError, match="train.compile must be one of none, default, reduce-overhead"):
        _colour_cfg(tmp_path, "train.compile=fast")
    lecam = Trainer(_colour_cfg(tmp_path, "train.compile=default", "d.penalties=[lecam]"), None, _colour_data())
    assert isinstance(lecam.d.net, OptimizedModule)  # logits only: allowed
    assert _colour_cfg(tmp_path, "d.penalties=[r1]").train.compile == "none"


def test_an_augmented_discriminator_is_compiled_inside_its_eager_augmentation(tmp_path):
    """ADA's probability is a Python number that moves every few updates: traced, each move
    would recompile D until torch's limit, and then D would run eager."""
    trainer = Trainer(_colour_cfg(tmp_path, "train.compile=default", "train.augment=ada"), None, _colour_data())
    assert isinstance(trainer.d.net, AugmentedDiscriminator)
    assert isinstance(trainer.d.net.discriminator, OptimizedModule)
    assert trainer.d.net.augment is trainer.augment and isinstance(trainer.g.net, OptimizedModule)


@pytest.mark.slow
def test_compiled_networks_train_the_parameters_of_eager_ones(tmp_path):
    """torch.compile (CPU: inductor's C++ kernels) changes how the step is computed, not what:
    two SGD iterations move every parameter as the eager step does, to float rounding. The
    modules the trainer saves, samples and averages stay eager: their state_dict keys are
    the eager run's."""
    runs = {}
    for mode in ("none", "default"):
        torch.manual_seed(0)
        trainer = Trainer(_colour_cfg(tmp_path, *SGD, f"train.compile={mode}", "train.ema=0.5"), None, _colour_data())
        initial = copy.deepcopy(trainer.G.state_dict())
        for _ in range(2):
            trainer._one_step()
        runs[mode] = trainer
    compiled, eager = runs["default"], runs["none"]
    assert isinstance(compiled.g.net, OptimizedModule) and isinstance(compiled.d.net, OptimizedModule)
    assert not isinstance(compiled.G, OptimizedModule)
    assert not torch.equal(compiled.G.project[0].weight, initial["project.0.weight"])  # it trained
    for part in ("G", "D"):
        a, b = getattr(eager, part).state_dict(), getattr(compiled, part).state_dict()
        assert list(a) == list(b)
        for name, tensor in a.items():
            torch.testing.assert_close(b[name], tensor, rtol=0, atol=ATOL, msg=f"{part}.{name}")


def test_compile_players_passes_the_mode_and_static_shapes_for_both_networks(monkeypatch):
    from types import SimpleNamespace

    from torch import nn

    from steadygan.training.fast_paths import compile_players

    # compile_players also empties dynamo's cache (torch._dynamo.reset()): harmless here.
    calls = []
    monkeypatch.setattr(torch, "compile", lambda net, **options: calls.append((net, options)) or net)
    d, g = SimpleNamespace(net=nn.Linear(2, 1)), SimpleNamespace(net=nn.Linear(2, 2))
    nets = (g.net, d.net)
    compile_players(d, g, "max-autotune-no-cudagraphs")
    assert calls == [
        (net, {"mode": "max-autotune-no-cudagraphs", "dynamic": False}) for net in nets]


def test_a_conditional_pair_is_probed_with_its_labels():
    from steadygan.training.fast_paths import can_fuse_real_and_fake, to_channels_last

    pair = build_models("dcgan", (1, 28, 28), 8, width=8, d_norm="none", num_classes=3)
    z, x, y = torch.randn(4, 8), torch.rand(4, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 2, 0])
    assert to_channels_last(pair.generator, pair.discriminator, z, x, y)  # no labels would be a TypeError
    assert can_fuse_real_and_fake(pair.discriminator, x, y)


def test_outputs_are_close_within_a_ten_thousandth_of_their_scale():
    from steadygan.training.fast_paths import _close

    b = torch.tensor([3.0, -1.0])  # scale 1 + 3: the tolerance is 4e-4
    assert _close(b + 3e-4, b) and not _close(b + 4.5e-4, b)
    zero = torch.zeros(2)
    assert _close(torch.full((2,), 1e-4), zero)  # exactly at the tolerance counts as close
    assert not _close(torch.zeros(3), zero)  # another shape never does

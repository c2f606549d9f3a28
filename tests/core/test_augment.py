"""DiffAugment's operations against loops written from their definitions, their gradients,
ADA's probability update, and augmentation inside the step and the trainer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from steadygan.config import parse_spec
from steadygan.core.augment import Augment, AugmentedDiscriminator, build_augment, color, cutout, translation
from steadygan.core.batch import Batch
from steadygan.core.clipping import build_clipper
from steadygan.core.penalties import r1_penalty
from steadygan.errors import ConfigError


def images(n=3, c=2, h=8, w=8, dtype=torch.float64):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(5), dtype=dtype)


def test_translation_shifts_each_image_by_its_drawn_offset_and_fills_zeros():
    x = images()
    torch.manual_seed(0)
    out = translation(x)
    torch.manual_seed(0)  # the same draws, as translation makes them
    dy, dx = torch.randint(-1, 2, (3,)), torch.randint(-1, 2, (3,))
    expected = torch.zeros_like(x)
    for i in range(3):
        for r in range(8):
            for c in range(8):
                sr, sc = r - dy[i].item(), c - dx[i].item()
                if 0 <= sr < 8 and 0 <= sc < 8:
                    expected[i, :, r, c] = x[i, :, sr, sc]
    assert torch.equal(out, expected)
    assert out.shape == x.shape and out.dtype == x.dtype


def test_cutout_zeroes_a_square_around_each_drawn_centre():
    x = images()
    torch.manual_seed(1)
    out = cutout(x)
    torch.manual_seed(1)
    cy, cx = torch.randint(0, 8, (3,)), torch.randint(0, 8, (3,))
    expected = x.clone()
    for i in range(3):
        for r in range(8):
            for c in range(8):
                if cy[i] - 2 <= r < cy[i] + 2 and cx[i] - 2 <= c < cx[i] + 2:  # side 8 * 0.5 = 4
                    expected[i, :, r, c] = 0
    assert torch.equal(out, expected)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert (out == 0).flatten(1).sum(1).min() >= 2 * 4  # at least a clipped quarter of the box per channel


def test_color_by_its_three_formulas():
    x = images()
    torch.manual_seed(2)
    out = color(x)
    torch.manual_seed(2)
    b, s, c = (torch.rand(3, dtype=x.dtype).view(3, 1, 1, 1) for _ in range(3))
    y = x + (b - 0.5)
    y = (y - y.mean(1, keepdim=True)) * (2 * s) + y.mean(1, keepdim=True)
    y = (y - y.mean((1, 2, 3), keepdim=True)) * (c + 0.5) + y.mean((1, 2, 3), keepdim=True)
    assert torch.allclose(out, y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("op", [color, translation, cutout])
def test_each_operation_passes_gradcheck(op):
    """With its random draws fixed, each operation is a differentiable function of the
    images whose backward matches finite differences."""
    x = images(n=2, c=1, h=4, w=4).requires_grad_(True)

    def fixed(inp):
        torch.manual_seed(3)
        return op(inp)

    assert torch.autograd.gradcheck(fixed, (x,))


def test_probability_zero_leaves_images_unchanged_to_the_bit():
    x = images()
    state = torch.get_rng_state()
    assert torch.equal(Augment(p=0.0)(x), x)
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn either


def test_probability_between_zero_and_one_augments_some_images():
    x = images(n=64)
    torch.manual_seed(4)
    out = Augment("cutout", p=0.5)(x)
    changed = (out != x).flatten(1).any(1)
    assert 10 < changed.sum().item() < 54


def test_ada_moves_p_by_its_speed_towards_the_target():
    ada = build_augment(parse_spec("ada:target=0.6,speed_kimg=1,interval=2", "augmentation"))
    assert ada.p == 0.0
    ada.observe(torch.tensor(0.9), batch_size=100)
    assert ada.p == 0.0  # not yet: every 2 updates
    ada.observe(torch.tensor(0.7), batch_size=100)
    assert ada.p == pytest.approx(200 / 1000)  # r_t = 0.8 > 0.6: up by 2 x 100 images / 1000
    for _ in range(2):
        ada.observe(torch.tensor(0.1), batch_size=100)
    assert ada.p == pytest.approx(0.0)  # r_t = 0.1 < 0.6: down again, never below 0
    ada.p = 0.95
    for _ in range(2):
        ada.observe(torch.tensor(1.0), batch_size=100)
    assert ada.p == 1.0
    fixed = build_augment({"name": "diffaugment"})
    fixed.observe(torch.tensor(1.0), 100)
    assert fixed.p == 1.0


def test_ada_steps_down_as_far_as_up_and_holds_p_when_exactly_on_target():
    """p moves by sign(r_t - target) x images / (speed_kimg x 1000), as in the ADA paper's code."""
    ada = Augment(p=0.5, target=0.5, speed_kimg=1, interval=1)
    ada.observe(torch.tensor(0.0), batch_size=100)
    assert ada.p == pytest.approx(0.4)  # below target: down by one step, not more
    ada.observe(torch.tensor(0.5), batch_size=100)
    assert ada.p == pytest.approx(0.4)  # on target: unchanged
    ada.observe(torch.tensor(1.0), batch_size=100)
    assert ada.p == pytest.approx(0.5)


def test_ada_state_taken_between_two_p_updates_resumes_the_same_p():
    """The signs gathered since the last update are part of the state: a run checkpointed in
    the middle of an interval moves p as the uninterrupted run does."""
    straight = Augment(p=0.0, target=0.5, speed_kimg=1, interval=3)
    for sign in (0.9, 0.9):
        straight.observe(torch.tensor(sign), batch_size=100)
    resumed = Augment(p=0.0, target=0.5, speed_kimg=1, interval=3)
    resumed.load_state_dict(straight.state_dict())
    for ada in (straight, resumed):
        ada.observe(torch.tensor(0.0), batch_size=100)  # r_t = 0.6 with the saved signs, 0.0 without
    assert straight.p == resumed.p == pytest.approx(0.3)
    older = Augment(target=0.5)
    older.load_state_dict({"p": 0.25})  # a state saved without signs
    assert older.p == 0.25 and older.state_dict() == {"p": 0.25, "signs": []}


def test_augment_defaults_are_the_registry_s():
    """``Augment`` used directly defaults to the ``diffaugment`` entry, and given a target, to ``ada``'s speed
    and interval."""
    assert (Augment().ops, Augment().p) == (build_augment({"name": "diffaugment"}).ops, 1.0)
    direct, entry = Augment(target=0.6), build_augment({"name": "ada"})
    assert (direct.speed_kimg, direct.interval) == (entry.speed_kimg, entry.interval) == (500.0, 4)


def test_a_conditional_discriminator_behind_the_augmentation_gets_the_labels():
    seen = []

    class ConditionalD(nn.Module):
        def forward(self, x, y):
            seen.append((x, y))
            return x.flatten(1).sum(1) + y

    x, y = images(), torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64)
    torch.manual_seed(3)
    out = AugmentedDiscriminator(ConditionalD(), Augment("translation"))(x, y)
    torch.manual_seed(3)
    expected = translation(x)
    (x_seen, y_seen), = seen
    assert torch.equal(x_seen, expected) and y_seen is y
    torch.testing.assert_close(out, expected.flatten(1).sum(1) + y)


@pytest.mark.parametrize("policy, p", [("translation+cutout", 1.0), ("color+translation+cutout", 1.0),
                                       ("translation+cutout", 0.5)])
def test_a_pair_s_input_moves_with_its_output_and_keeps_its_colours(policy, p):
    """pix2pix: the geometric operations move an output and its input image together, with
    one draw per pair (an input equal to its output stays equal to it, whatever the draws);
    colour changes the output alone."""
    x = images(n=16, c=1)
    aug = Augment(policy, p)
    torch.manual_seed(6)
    out, condition = aug.apply(x, x.clone())
    torch.manual_seed(6)
    alone = aug(x)  # the same draws on the output alone: the output is augmented as before
    assert torch.equal(out, alone)
    if "color" not in policy:
        assert torch.equal(condition, out)
    else:
        torch.manual_seed(6)
        moved = Augment("translation+cutout", p).apply(x, x.clone())[1]
        torch.manual_seed(6)
        color(x)  # the colour draws come first, then the geometric ones, as in the policy
        assert torch.equal(condition, Augment("translation+cutout", p)(x))
        assert not torch.equal(condition, moved) and not torch.equal(condition, out)
    if p < 1:
        changed = (condition != x).flatten(1).any(1)
        assert 0 < changed.sum() < 16  # some pairs kept whole: the same keep draw for both images


def test_a_cycle_sample_s_two_domains_are_colour_jittered_apart():
    """CycleGAN's joint samples: each domain's image gets its own colour draws, so slot B's
    augmented image does not depend on slot A's pixels (colour over both would mix them)."""
    a, b = images(n=4, c=1), images(n=4, c=1) * 2 + 1
    torch.manual_seed(8)
    out = Augment("color").apply(torch.cat([a, b], 1), slots=2)[0]
    torch.manual_seed(8)
    expected = torch.cat([color(a), color(b)], 1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    torch.manual_seed(8)
    other_a = Augment("color").apply(torch.cat([-a, b], 1), slots=2)[0]
    assert torch.equal(other_a[:, 1:], out[:, 1:]) and not torch.equal(other_a[:, :1], out[:, :1])
    torch.manual_seed(8)
    mixed = Augment("color")(torch.cat([-a, b], 1))  # one image of two channels: B's colour depends on A
    assert not torch.equal(mixed[:, 1:], out[:, 1:])


def test_a_paired_discriminator_gets_its_input_moved_and_differentiates_through_the_move():
    seen = []

    class PairD(nn.Module):
        def forward(self, b, a):
            seen.append(a)
            return (b * a).flatten(1).sum(1)

    x, a = images(n=3, c=1).requires_grad_(True), images(n=3, c=1) + 3
    wrapped = AugmentedDiscriminator(PairD(), Augment("translation+cutout"), paired=True)
    torch.manual_seed(9)
    logits = wrapped(x, a)
    torch.manual_seed(9)
    xt, at = Augment("translation+cutout").apply(x.detach(), a)
    assert torch.equal(seen[0], at) and torch.equal(logits.detach(), (xt * at).flatten(1).sum(1))
    # D(b) = <T(b), T(a)> is linear in b: its gradient is T's transpose applied to T(a).
    (grad,) = torch.autograd.grad(logits.sum(), x)
    torch.manual_seed(9)
    probe = x.detach().clone().requires_grad_(True)
    (expected,) = torch.autograd.grad((Augment("translation+cutout").apply(probe, a)[0] * at).sum(), probe)
    assert torch.equal(grad, expected)


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_an_image_alone_is_augmented_by_the_policy_s_operations_in_turn_with_one_keep_draw_after_each(p):
    """The order of the draws, which a saved run's resume depends on: each operation's own
    draws, then (p < 1) one keep draw per image, operation after operation."""
    x = images(n=16)
    torch.manual_seed(11)
    out = Augment("color+translation+cutout", p)(x)
    torch.manual_seed(11)
    expected = x
    for op in (color, translation, cutout):
        augmented = op(expected)
        if p < 1:
            augmented = torch.where(torch.rand(16, dtype=x.dtype).view(16, 1, 1, 1) >= p, expected, augmented)
        expected = augmented
    assert torch.equal(out, expected)


@pytest.mark.parametrize("fused", [False, True])
def test_every_pair_the_step_shows_d_stays_aligned(fused):
    """Through d_step, fused (real and generated pairs in one batch of 2N) or not: with each
    target equal to its input and G copying its input, every (output, input) pair D sees is
    one image twice, however it was shifted and cut."""
    from steadygan.core.losses import build_loss
    from steadygan.core.step import Player, d_step

    seen = []

    class PairD(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, b, a):
            seen.append((b.detach(), a))
            return self.w * (b - a).flatten(1).sum(1)

    class CopyG(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, z, a):
            return self.w * a

    a = images(n=8, c=1, dtype=torch.float32)
    d_net = AugmentedDiscriminator(PairD(), Augment("translation+cutout", p=0.5), paired=True)
    d = Player("D", d_net, torch.optim.SGD(d_net.parameters(), lr=0.1), [], build_clipper(None), fused_forward=fused)
    g_net = CopyG()
    g = Player("G", g_net, torch.optim.SGD(g_net.parameters(), lr=0.1), [], build_clipper(None))
    torch.manual_seed(10)
    d_step(d, g, build_loss("non-saturating"), Batch(a.clone(), a), torch.randn(8, 4), step=0)
    assert len(seen) == (1 if fused else 2) and all(len(b) == (16 if fused else 8) for b, _ in seen)
    assert all(torch.equal(b, moved) for b, moved in seen)
    assert any(not torch.equal(moved, torch.cat([a] * (len(moved) // 8))) for _, moved in seen)  # they did move


@pytest.mark.parametrize("spec, message", [
    ("diffaugment:policy=colour", "unknown: colour"), ("diffaugment:policy=", "give operations from"),
    ("diffaugment:p=2", r"p must be in \[0, 1\]"), ("ada:target=abc", "target must be a number"),
    ("ada:target=0.6,target=0.7", "target is given twice"),
    ("ada:target=1", r"target must be in \(0, 1\)"), ("ada:target=0", r"target must be in \(0, 1\)"),
    ("ada:interval=0", "interval an integer"), ("ada:interval=1.5", "interval an integer"),
    ("ada:speed_kimg=0", "speed_kimg must be > 0"), ("diffaugment:p=abc", "augment p must be a number"),
    ("ada:speed_kimg=abc", "augment speed_kimg must be a number"),
    ("diffaugment:policy=", r"^augment policy '': give operations from color, translation, cutout joined by '\+'$"),
    ("diffaugment:policy=color+blur", r"^augment policy 'color\+blur': give operations from color, translation, "
                                      r"cutout joined by '\+' \(unknown: blur\)$"),
    ("diffaugment:target=0.6", "target"),
])
def test_bad_augment_specs_are_one_line_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_augment(parse_spec(spec, "augmentation"))


def test_r1_through_the_augmentation_is_the_gradient_at_the_unaugmented_image():
    """The step hands penalties D behind its augmentation: R1 differentiates D(T(x)) with
    respect to x (the un-augmented image), through T."""
    torch.manual_seed(0)
    D = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 64, 1)).double()
    wrapped = AugmentedDiscriminator(D, Augment("translation+cutout"))
    real = images().requires_grad_(True)
    torch.manual_seed(7)
    logits = wrapped(real)
    value = r1_penalty(wrapped, real, gamma=2.0, logits=logits)
    torch.manual_seed(7)
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(cutout(translation(x))).sum(), x)
    assert value.item() == pytest.approx(grad.flatten(1).square().sum(1).mean().item(), rel=1e-12)


@pytest.mark.slow
def test_training_with_ada_logs_p_and_resumes_exactly(tmp_path, idx_dir):
    from steadygan.cli import main
    from steadygan.training.checkpoint import latest_checkpoint, load_checkpoint

    args = ["train", "--no-progress", "--set", "data.name=idx", "--data-dir", str(idx_dir), "--set",
            "data.batch_size=8",
            "--set", "model.width=8", "--set", "model.z_dim=8", "--set", "train.checkpoint_every=3",
            "--set", "train.augment=ada:target=0.1,speed_kimg=0.02,interval=1", "--set", "train.log_every=1"]
    assert main([*args, "--steps", "6", "--out", str(tmp_path / "straight")]) == 0
    assert main([*args, "--steps", "3", "--out", str(tmp_path / "split")]) == 0
    run = tmp_path / "split" / "00000"
    assert main(["train", "--resume", str(run), "--steps", "6", "--no-progress", "--allow-config-change"]) == 0
    a = load_checkpoint(latest_checkpoint(tmp_path / "straight" / "00000"))
    b = load_checkpoint(latest_checkpoint(run))
    assert a["augment"]["p"] > 0 and a["augment"] == b["augment"]
    assert all(torch.equal(a["discriminator"][k], b["discriminator"][k]) for k in a["discriminator"])
    rows = (tmp_path / "straight" / "00000" / "stats.jsonl").read_text()
    assert '"Augment/p"' in rows


def test_augmenting_points_is_an_error(tmp_path):
    from steadygan.training.build import load_config
    from steadygan.training.trainer import Trainer

    cfg = load_config(None, ["data.name=ring8", "model.arch=mlp", "data.toy_samples=512", "train.augment=diffaugment",
                             f"train.out_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="transforms images"):
        Trainer(cfg, None)


def test_every_unknown_operation_is_named():
    from steadygan.core.augment import Augment

    with pytest.raises(ConfigError, match=r"\(unknown: blur, rotate\)$"):
        Augment(policy="blur+color+rotate")

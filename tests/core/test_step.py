"""d_step / g_step: who gets updated, and lazy penalties applied every k steps with gain k."""

from __future__ import annotations

import copy

import pytest
import torch

from steadygan.core.clipping import build_clipper
from steadygan.core.losses import build_loss
from steadygan.core.penalties import Penalty, build_penalty
from steadygan.core.step import Player, d_step, g_step
from steadygan.models import build_models


def players(d_pen=(), g_pen=(), d_clip=None, g_clip=None, arch="mlp", lr=1e-2, seed=0):
    torch.manual_seed(seed)
    shape = (2,) if arch == "mlp" else (1, 28, 28)
    pair = build_models(arch, shape, z_dim=4, width=8, **({"depth": 2} if arch == "mlp" else {}))
    G, D = pair.generator, pair.discriminator

    def make(tag, net, pens, clip, role):
        return Player(tag, net, torch.optim.SGD(net.parameters(), lr=lr),
                      [build_penalty(p, role) for p in pens], build_clipper(clip))

    return make("D", D, d_pen, d_clip, "d"), make("G", G, g_pen, g_clip, "g")


def batch(arch="mlp", seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (8, 2) if arch == "mlp" else (8, 1, 28, 28)
    return torch.randn(shape, generator=g), torch.randn(8, 4, generator=g)


def snapshot(net):
    return [p.detach().clone() for p in net.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


D_PENALTIES = [[], ["r1"], ["r2"], ["wgan-gp"], ["zero-gp"], ["dragan"], ["seed-param"], ["consensus"],
               ["r1", "r2"]]


@pytest.mark.parametrize("pens", D_PENALTIES)
def test_d_step_changes_only_the_discriminator(pens):
    d, g = players(d_pen=[{"name": p} for p in pens])
    g_before, d_before = snapshot(g.net), snapshot(d.net)
    real, z = batch()
    stats = d_step(d, g, build_loss("non-saturating"), real, z, step=0)
    assert same(snapshot(g.net), g_before)
    assert not same(snapshot(d.net), d_before)
    assert all(p.grad is None for p in g.net.parameters())
    for p in pens:
        assert f"Penalty/D/{p}" in stats


@pytest.mark.parametrize("pens", [[], ["seed-param"], ["consensus"], ["nk"]])
def test_g_step_changes_only_the_generator(pens):
    d, g = players(g_pen=[{"name": p} for p in pens])
    g_before, d_before = snapshot(g.net), snapshot(d.net)
    real, z = batch()
    g_step(g, d, build_loss("non-saturating"), real, z, step=0)
    assert same(snapshot(d.net), d_before)
    assert not same(snapshot(g.net), g_before)
    assert all(p.grad is None for p in d.net.parameters())


def test_conv_models_step_with_penalties():
    d, g = players(d_pen=[{"name": "r1"}, {"name": "wgan-gp"}], arch="dcgan")
    real, z = batch("dcgan")
    stats = d_step(d, g, build_loss("hinge"), real, z, 0)
    stats.update(g_step(g, d, build_loss("hinge"), real, z, 0))
    assert all(torch.isfinite(v) for v in stats.values())


def run_d_step(pen, step):
    d, g = players(d_pen=pen)
    real, z = batch()
    torch.manual_seed(123)  # same interpolation noise in every variant
    stats = d_step(d, g, build_loss("non-saturating"), real, z, step)
    return snapshot(d.net), stats


@pytest.mark.parametrize("name", ["r1", "wgan-gp"])
def test_lazy_penalty_applies_every_k_steps_with_gain_k(name):
    k = 4
    lazy_due, stats = run_d_step([{"name": name, "weight": 2.0, "every": k}], step=8)
    eager, _ = run_d_step([{"name": name, "weight": 2.0 * k}], step=8)
    none, _ = run_d_step([], step=8)
    assert f"Penalty/D/{name}" in stats
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(lazy_due, eager))
    assert not same(lazy_due, none)
    for off_step in (5, 6, 7):
        lazy_off, stats = run_d_step([{"name": name, "weight": 2.0, "every": k}], step=off_step)
        assert same(lazy_off, none) and f"Penalty/D/{name}" not in stats


def test_clip_stats_reported_and_applied():
    d, g = players(d_clip={"name": "value", "eps": 1e-4}, lr=1.0)
    before = snapshot(d.net)
    real, z = batch()
    stats = d_step(d, g, build_loss("non-saturating"), real, z, 0)
    assert stats["Grad/D/clipped"].item() > 0.5 and stats["Grad/D/norm"].item() > 0
    # SGD with lr 1: no parameter moves by more than eps.
    assert all((a - b).abs().max() <= 1e-4 + 1e-7 for a, b in zip(snapshot(d.net), before))


def test_weight_clip_bounds_d_after_step():
    d, g = players(d_clip={"name": "weight-clip", "c": 0.01}, lr=1.0)
    real, z = batch()
    stats = d_step(d, g, build_loss("wasserstein"), real, z, 0)
    assert all(p.abs().max() <= 0.01 for p in d.net.parameters())
    assert stats["Grad/D/clipped"].item() > 0


@pytest.mark.parametrize("player", ["d", "g"])
@pytest.mark.parametrize("name", ["seed-param", "consensus"])
def test_parameter_gradient_penalties_give_the_update_of_the_whole_objective(player, name):
    """seed-param and consensus take grad(loss) with its graph (shared between them through
    PenaltyInputs.own_loss_grads). The update must equal -lr * grad(loss + w * penalty),
    here computed independently in one autograd call on copies of the networks."""
    lr, weight = 1.0, 0.5
    spec = {"name": name, "weight": weight}
    d, g = players(d_pen=[spec] if player == "d" else [], g_pen=[spec] if player == "g" else [], lr=lr)
    real, z = batch()
    loss = build_loss("non-saturating")
    D, G = copy.deepcopy(d.net), copy.deepcopy(g.net)
    own, other = (D, G) if player == "d" else (G, D)
    fake = G(z)
    d_loss = loss.d_loss(D(real), D(fake.detach() if name == "seed-param" else fake))
    g_loss = loss.g_loss(D(fake))
    own_loss, other_loss = (d_loss, g_loss) if player == "d" else (g_loss, d_loss)
    own_grads = torch.autograd.grad(own_loss, list(own.parameters()), create_graph=True)
    penalty = sum(gr.square().sum() for gr in own_grads)
    if name == "consensus":
        other_grads = torch.autograd.grad(other_loss, list(other.parameters()), create_graph=True)
        penalty = 0.5 * (penalty + sum(gr.square().sum() for gr in other_grads))
    expected = torch.autograd.grad(own_loss + weight * penalty, list(own.parameters()))
    before = snapshot(d.net if player == "d" else g.net)
    if player == "d":
        d_step(d, g, loss, real, z, step=0)
    else:
        g_step(g, d, loss, real, z, step=0)
    after = snapshot(d.net if player == "d" else g.net)
    for b, a, e in zip(before, after, expected):
        torch.testing.assert_close(b - a, lr * e, rtol=1e-4, atol=1e-6)
    assert max(e.abs().max().item() for e in expected) > 1e-3


class ScaleSpy(Penalty):
    """Records the inner-gradient scale the step hands its penalties."""

    name, players = "scale-spy", ("d", "g")

    def __init__(self):
        super().__init__(weight=0.0)
        self.seen: list[tuple[str, float]] = []

    def value(self, inputs):
        self.seen.append((inputs.player, inputs.grad_scale))
        return inputs.fake_logits.sum() * 0


def test_both_steps_hand_penalties_the_gradient_scalers_scale():
    d, g = players()
    spy = ScaleSpy()
    d.penalties, g.penalties = [spy], [spy]
    d.scaler, g.scaler = torch.amp.GradScaler("cpu", init_scale=8.0), torch.amp.GradScaler("cpu", init_scale=4.0)
    real, z = batch()
    loss = build_loss("non-saturating")
    d_step(d, g, loss, real, z, step=0)
    g_step(g, d, loss, real, z, step=0)
    assert spy.seen == [("d", 8.0), ("g", 4.0)]


def test_each_update_reports_exactly_its_documented_stats():
    d, g = players()
    real, z = batch()
    loss = build_loss("non-saturating")
    stats = d_step(d, g, loss, real, z, step=0)
    assert set(stats) == {"Loss/D", "Logits/real", "Logits/real_sign", "Logits/fake", "Logits/fake_sign",
                          "Grad/D/norm", "Grad/D/clipped"}
    with torch.no_grad():  # the D before its update: the share of real samples it calls real, in [-1, 1]
        assert -1 <= stats["Logits/real_sign"].item() <= 1
    assert set(g_step(g, d, loss, real, z, step=0)) == {"Loss/G", "Grad/G/norm", "Grad/G/clipped"}


# --- what each step hands its loss and its penalties (closed from surviving mutants) ------------

class InputsSpy(Penalty):
    """A penalty of weight 0 that keeps a copy of what the step handed it."""

    name, players = "inputs-spy", ("d", "g")

    def __init__(self, needs=frozenset()):
        super().__init__(weight=0.0)
        self.needs = frozenset(needs)
        self.seen = []

    def value(self, inputs):
        with torch.no_grad():
            self.seen.append({
                "real": inputs.real.detach().clone(), "fake": inputs.fake.detach().clone(),
                "score_of_real": inputs.score(inputs.real).detach().clone(),
                "real_logits": None if inputs.real_logits is None else inputs.real_logits.detach().clone(),
                "d_loss": None if inputs.d_loss is None else inputs.d_loss.detach().clone(),
                "g_loss": None if inputs.g_loss is None else inputs.g_loss.detach().clone()})
        return inputs.fake_logits.sum() * 0


def test_the_generator_step_hands_its_penalties_the_batch_the_fake_and_d_s_scores():
    from steadygan.core.penalties import D_LOSS

    d, g = players()
    spy = InputsSpy({D_LOSS})
    g.penalties = [spy]
    real, z = batch()
    loss = build_loss("hinge")
    with torch.no_grad():
        fake, real_logits = g.net(z), d.net(real)
        d_loss = loss.d_loss(real_logits, d.net(fake))
    stats = g_step(g, d, loss, real, z, step=0)
    (seen,) = spy.seen
    assert torch.equal(seen["real"], real) and torch.equal(seen["fake"], fake)
    assert torch.equal(seen["score_of_real"], real_logits) and torch.equal(seen["real_logits"], real_logits)
    assert torch.equal(seen["d_loss"], d_loss)
    assert "Penalty/G/inputs-spy" in stats  # named by the player


@pytest.mark.parametrize("needs", [(), ("g_loss",)])
def test_the_relativistic_loss_pairs_each_step_with_d_s_real_logits(needs):
    d, g = players()
    real, z = batch()
    loss = build_loss("relativistic")
    with torch.no_grad():
        fake = g.net(z)
        real_logits, fake_logits = d.net(real), d.net(fake)
        g_loss = loss.generator(fake_logits, real_logits)
    assert not torch.equal(g_loss, loss.generator(fake_logits, torch.zeros_like(real_logits)))  # it pairs
    spy = InputsSpy(needs)
    d.penalties = [spy]
    initial_d = copy.deepcopy(d.net.state_dict())
    d_step(d, g, loss, real, z, step=0)
    if needs:  # a D penalty that needs G's loss (consensus) gets the paired one
        torch.testing.assert_close(spy.seen[0]["g_loss"], g_loss, rtol=1e-6, atol=0)
    d.net.load_state_dict(initial_d)  # the G step scores with the D the hand computation used
    stats = g_step(g, d, loss, real, z, step=0)
    torch.testing.assert_close(stats["Loss/G"], g_loss, rtol=1e-6, atol=0)


def test_both_steps_generate_and_score_with_the_batch_s_labels():
    from steadygan.core.batch import Batch

    torch.manual_seed(0)
    pair = build_models("mlp", (2,), z_dim=4, width=8, depth=2, num_classes=3)
    d = Player("D", pair.discriminator, torch.optim.SGD(pair.discriminator.parameters(), lr=1e-2), [InputsSpy()],
               build_clipper(None))
    g = Player("G", pair.generator, torch.optim.SGD(pair.generator.parameters(), lr=1e-2), [InputsSpy()],
               build_clipper(None))
    real, z = batch()
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    with torch.no_grad():
        fake = pair.generator(z, y)
        real_logits = pair.discriminator(real, y)
    d.penalties.append(InputsSpy({"g_loss"}))  # G's graph kept (consensus): the other way to generate
    d_step(d, g, build_loss("non-saturating"), Batch(real, y), z, step=0)
    assert torch.equal(d.penalties[0].seen[0]["fake"], fake) and torch.equal(d.penalties[1].seen[0]["fake"], fake)
    assert torch.equal(d.penalties[0].seen[0]["score_of_real"], real_logits)
    g_step(g, d, build_loss("non-saturating"), Batch(real, y), z, step=0)
    assert torch.equal(g.penalties[0].seen[0]["fake"], fake)  # G has not moved yet


def test_the_mode_seeking_penalty_draws_its_second_sample_for_the_batch_s_labels():
    from steadygan.core.batch import Batch

    torch.manual_seed(0)
    pair = build_models("mlp", (2,), z_dim=4, width=8, depth=2, num_classes=3)
    calls = []
    hook = pair.generator.register_forward_hook(lambda module, args, out: calls.append(args))
    d = Player("D", pair.discriminator, torch.optim.SGD(pair.discriminator.parameters(), lr=1e-2), [],
               build_clipper(None))
    g = Player("G", pair.generator, torch.optim.SGD(pair.generator.parameters(), lr=1e-2),
               [build_penalty({"name": "mode-seeking"}, "g")], build_clipper(None))
    real, z = batch()
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    stats = g_step(g, d, build_loss("non-saturating"), Batch(real, y), z, step=0)
    hook.remove()
    (first_z, first_y), (second_z, second_y) = calls
    assert torch.equal(first_z, z) and torch.equal(first_y, y) and torch.equal(second_y, y)
    assert second_z.shape == z.shape and not torch.equal(second_z, z)
    assert torch.isfinite(stats["Penalty/G/mode-seeking"]) and stats["Penalty/G/mode-seeking"] > 0


def test_the_aux_classifier_trains_ds_class_head_on_real_samples_and_g_through_it():
    from steadygan.core.batch import Batch

    torch.manual_seed(0)
    pair = build_models("mlp", (2,), z_dim=4, width=8, depth=2, num_classes=3, class_head=True)
    D, G = pair.discriminator, pair.generator
    d = Player("D", D, torch.optim.SGD(D.parameters(), lr=1e-2), [build_penalty({"name": "aux-classifier"}, "d")],
               build_clipper(None))
    g = Player("G", G, torch.optim.SGD(G.parameters(), lr=1e-2), [build_penalty({"name": "aux-classifier"}, "g")],
               build_clipper(None))
    real, z = batch()
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    head_before = D.class_head.weight.detach().clone()
    with torch.no_grad():
        expected_d = torch.nn.functional.cross_entropy(D.classify(real), y)
    stats = d_step(d, g, build_loss("non-saturating"), Batch(real, y), z, step=0)
    assert stats["Penalty/D/aux-classifier"].item() == pytest.approx(expected_d.item(), rel=1e-5)
    assert not torch.equal(D.class_head.weight, head_before)  # the head learns in D's step
    head_after_d, g_before = D.class_head.weight.detach().clone(), [p.detach().clone() for p in G.parameters()]
    with torch.no_grad():
        expected_g = torch.nn.functional.cross_entropy(D.classify(G(z, y)), y)
    stats = g_step(g, d, build_loss("non-saturating"), Batch(real, y), z, step=0)
    assert stats["Penalty/G/aux-classifier"].item() == pytest.approx(expected_g.item(), rel=1e-5)
    assert torch.equal(D.class_head.weight, head_after_d)  # ... and not in G's
    assert any(not torch.equal(a, b) for a, b in zip(G.parameters(), g_before))
    d_plain = Player("D", build_models("mlp", (2,), z_dim=4, width=8, depth=2, num_classes=3).discriminator,
                     torch.optim.SGD(D.parameters(), lr=1e-2), d.penalties, build_clipper(None))
    with pytest.raises(ValueError, match="needs a class-conditional D with a class head"):
        d_step(d_plain, g, build_loss("non-saturating"), Batch(real, y), z, step=0)

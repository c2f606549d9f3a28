"""Penalties against closed forms: linear and quadratic critics, a hand-derived
double backward for the parameter-gradient penalties, and the Dirac game."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from steadygan.core.losses import build_loss
from steadygan.core.penalties import (
    PENALTIES,
    PenaltyInputs,
    build_penalty,
    consensus_penalty,
    dragan_penalty,
    nk_penalty,
    param_grad_penalty,
    per_sample_mix,
    per_sample_sq_grad_norm,
    r1_penalty,
    r2_penalty,
    sq_param_grad_norm,
    wgan_gp_penalty,
    zero_gp_penalty,
)
from steadygan.errors import ConfigError


class LinearCritic(nn.Module):
    """D(x) = w . flatten(x) + b."""

    def __init__(self, w: torch.Tensor, b: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x):
        return x.flatten(1) @ self.w + self.b


class QuadraticCritic(nn.Module):
    """D(x) = sum(x^2) per sample: grad = 2x, so ||grad||^2 = 4 ||x_i||^2 per sample."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x.flatten(1).square().sum(1) + self.dummy


def d_inputs(D, real, fake, loss_name="non-saturating"):
    real = real.clone().requires_grad_(True)
    fake = fake.clone().requires_grad_(True)
    loss = build_loss(loss_name)
    rl, fl = D(real), D(fake)
    return PenaltyInputs(player="d", score=D, d_params=list(D.parameters()), g_params=[], real=real, fake=fake,
                         real_logits=rl, fake_logits=fl, d_loss=loss.d_loss(rl, fl), g_loss=None)


@pytest.mark.parametrize("shape", [(5, 3, 4, 4), (5, 1, 6, 6), (5, 2)])
@pytest.mark.parametrize("name", ["r1", "r2"])
def test_r1_r2_linear_critic_closed_form(shape, name):
    torch.manual_seed(0)
    dim = torch.Size(shape[1:]).numel()
    w = torch.randn(dim)
    D = LinearCritic(w)
    inputs = d_inputs(D, torch.randn(shape), torch.randn(shape))
    gamma = 7.0
    penalty = build_penalty({"name": name, "gamma": gamma}, "d")
    got = penalty.weight * penalty.value(inputs)
    assert torch.allclose(got, gamma / 2 * w.square().sum(), rtol=1e-5)


@pytest.mark.parametrize("shape", [(6, 3, 5, 5), (6, 1, 5, 5)])
def test_per_sample_norm_flattens_each_sample(shape):
    torch.manual_seed(1)
    x = torch.randn(shape)
    inputs = d_inputs(QuadraticCritic(), x, torch.randn(shape))
    r1 = build_penalty({"name": "r1"}, "d").value(inputs)
    # Independent reference: per-sample squared norm of 2x over C, H, W together.
    expected = 0.5 * torch.stack([(2 * xi).square().sum() for xi in x]).mean()
    assert torch.allclose(r1, expected, rtol=1e-5)
    # A norm over the channel axis alone would give a different number.
    wrong = 0.5 * (2 * x).square().sum(1).mean()
    assert not torch.allclose(r1, wrong)


@pytest.mark.parametrize("shape", [(8, 3, 4, 4), (8, 1, 4, 4)])
def test_wgan_gp_zero_for_unit_norm_linear_critic(shape):
    torch.manual_seed(2)
    w = torch.randn(torch.Size(shape[1:]).numel())
    inputs = d_inputs(LinearCritic(w / w.norm()), torch.randn(shape), torch.randn(shape))
    assert build_penalty({"name": "wgan-gp"}, "d").value(inputs).item() == pytest.approx(0.0, abs=1e-10)


def test_wgan_gp_and_zero_gp_closed_form_for_linear_critic():
    torch.manual_seed(3)
    w = 3.0 * torch.randn(12) / torch.randn(12).norm()
    inputs = d_inputs(LinearCritic(w), torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2))
    norm = w.norm()
    def value(name):
        return build_penalty({"name": name}, "d").value(inputs).item()

    assert value("wgan-gp") == pytest.approx(((norm - 1) ** 2).item(), rel=1e-5)
    assert value("zero-gp") == pytest.approx((norm ** 2).item(), rel=1e-5)
    assert value("dragan") == pytest.approx(((norm - 1) ** 2).item(), rel=1e-5)


def test_interpolation_weight_is_per_sample():
    a, b = torch.zeros(64, 3, 4, 4), torch.ones(64, 3, 4, 4)
    mixed = per_sample_mix(a, b)
    per_sample = mixed.flatten(1)
    # Every element of a sample shares one alpha, and alphas differ across samples.
    assert torch.equal(per_sample.min(1).values, per_sample.max(1).values)
    assert per_sample[:, 0].unique().numel() > 32


class SpyCritic(QuadraticCritic):
    """Records the points the penalty evaluates D at."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return super().forward(x)


def test_interpolated_penalties_use_points_between_real_and_fake():
    real, fake = torch.zeros(16, 2), torch.ones(16, 2)
    critic = SpyCritic()
    inputs = d_inputs(critic, real, fake)
    critic.seen.clear()
    build_penalty({"name": "wgan-gp"}, "d").value(inputs)
    (points,) = critic.seen
    assert points.min() >= 0 and points.max() <= 1 and torch.equal(points[:, 0], points[:, 1])


def test_gradient_norm_is_finite_at_zero_gradient():
    """A critic that is flat at the sample points: the sqrt in WGAN-GP must not give NaN."""
    D = LinearCritic(torch.zeros(4))
    inputs = d_inputs(D, torch.randn(3, 4), torch.randn(3, 4))
    value = build_penalty({"name": "wgan-gp"}, "d").value(inputs)
    value.backward()
    # The epsilon inside the sqrt makes the norm 1e-6 here, so the value is (1 - 1e-6)^2.
    assert value.item() == pytest.approx((1 - 1e-6) ** 2, rel=1e-6) and torch.isfinite(D.w.grad).all()


# --- parameter-gradient penalties -------------------------------------------------------------

def test_seed_param_matches_hand_derived_double_backward():
    """D(x) = w.x + b with the non-saturating loss; grad_w L_D has the closed form
    -sigmoid(-D(x_r)) x_r + sigmoid(D(x_f)) x_f (means over the batch)."""
    torch.manual_seed(4)
    w0 = torch.randn(3)
    xr, xf = torch.randn(5, 3), torch.randn(5, 3)
    D = LinearCritic(w0, 0.3)
    inputs = d_inputs(D, xr, xf)
    got = build_penalty({"name": "seed-param"}, "d").value(inputs)
    got.backward()

    w = w0.clone().requires_grad_(True)
    b = torch.tensor(0.3, requires_grad=True)
    r, f = xr @ w + b, xf @ w + b
    gw = (-torch.sigmoid(-r)[:, None] * xr + torch.sigmoid(f)[:, None] * xf).mean(0)
    gb = (-torch.sigmoid(-r) + torch.sigmoid(f)).mean()
    expected = gw.square().sum() + gb.square()
    expected.backward()
    assert torch.allclose(got, expected, rtol=1e-5)
    assert torch.allclose(D.w.grad, w.grad, rtol=1e-4) and torch.allclose(D.b.grad, b.grad, rtol=1e-4)


def test_seed_param_output_target_differentiates_mean_real_output():
    torch.manual_seed(5)
    xr = torch.randn(6, 3)
    inputs = d_inputs(LinearCritic(torch.randn(3), 0.0), xr, torch.randn(6, 3))
    got = build_penalty({"name": "seed-param", "target": "output"}, "d").value(inputs)
    # d mean(w.x + b)/dw = mean(x), d/db = 1
    assert torch.allclose(got, xr.mean(0).square().sum() + 1.0, rtol=1e-5)


class Theta(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(v))

    def forward(self, z):
        return self.theta.expand(z.shape[0], 1)


class Psi(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.psi = nn.Parameter(torch.tensor(v))

    def forward(self, x):
        return (self.psi * x).squeeze(1)


def dirac_inputs(player, theta=0.7, psi=-1.3):
    """Dirac GAN (Mescheder et al. 2018) with the Wasserstein loss: L_D = psi*theta,
    L_G = -psi*theta, so grad_psi L_D = theta and grad_theta L_G = -psi."""
    G, D = Theta(theta), Psi(psi)
    loss = build_loss("wasserstein")
    real, fake = torch.zeros(1, 1), G(torch.zeros(1, 1))
    rl, fl = D(real), D(fake)
    return PenaltyInputs(player=player, score=D, d_params=list(D.parameters()), g_params=list(G.parameters()),
                         real=real, fake=fake, real_logits=rl, fake_logits=fl, d_loss=loss.d_loss(rl, fl),
                         g_loss=loss.g_loss(fl))


@pytest.mark.parametrize("player", ["d", "g"])
def test_consensus_closed_form_on_dirac_game(player):
    value = build_penalty({"name": "consensus"}, player).value(dirac_inputs(player))
    assert value.item() == pytest.approx(0.5 * (0.7 ** 2 + 1.3 ** 2), rel=1e-6)


def test_nk_closed_form_on_dirac_game():
    inputs = dirac_inputs("g")
    value = build_penalty({"name": "nk"}, "g").value(inputs)
    assert value.item() == pytest.approx(0.7 ** 2, rel=1e-6)
    value.backward()  # d(theta^2)/dtheta = 2 theta reaches the generator
    assert inputs.g_params[0].grad.item() == pytest.approx(1.4, rel=1e-6)


# --- construction --------------------------------------------------------------------------------

def test_every_registered_penalty_builds_with_defaults():
    for name in PENALTIES.names():
        cls = PENALTIES.get(name).factory
        p = build_penalty({"name": name}, cls.players[0])
        assert p.weight == cls.default_weight and p.every == 1


@pytest.mark.parametrize("spec, player, message", [
    ({"name": "r3"}, "d", "choose from"),
    ({"name": "r1", "gama": 1}, "d", "valid options"),
    ({"name": "r1", "weight": -1}, "d", ">= 0"),
    ({"name": "r1", "every": 0}, "d", "integer >= 1"),
    ({"name": "r1"}, "g", "cannot be attached to the generator"),
    ({"name": "nk"}, "d", "cannot be attached to the discriminator"),
    ({"name": "r1", "gamma": 1, "weight": 2}, "d", "either"),
    ({"name": "seed-param", "target": "params"}, "d", "target"),
])
def test_bad_penalty_specs_are_clear_errors(spec, player, message):
    with pytest.raises(ConfigError, match=message):
        build_penalty(spec, player)


def test_lazy_schedule():
    p = build_penalty({"name": "r1", "every": 4}, "d")
    assert [s for s in range(13) if p.due(s)] == [0, 4, 8, 12] and p.gain == 4


def test_per_sample_sq_grad_norm_keeps_graph():
    x = torch.randn(3, 2, requires_grad=True)
    sq = per_sample_sq_grad_norm(F.softplus(x).sum(1), x)
    assert sq.requires_grad and sq.shape == (3,)


def test_interpolates_are_leaves_of_the_inputs_dtype_and_on_the_segment():
    a = torch.zeros(32, 3, dtype=torch.float64)
    b = torch.full((32, 3), 2.0, dtype=torch.float64)
    mixed = per_sample_mix(a, b)
    assert mixed.dtype == torch.float64 and mixed.is_leaf and mixed.requires_grad
    assert mixed.min() >= 0 and mixed.max() <= 2  # alpha*a + (1-alpha)*b, never (1-alpha)/b


def test_dragan_perturbs_real_data_upwards_by_at_most_scale_std():
    """x + scale * std(x) * U(0,1), then a point on the segment to it (Kodali et al. 2017)."""
    torch.manual_seed(0)
    real = 3.0 * torch.randn(256, 4)  # std 3: scale * std and scale / std differ
    critic = SpyCritic()
    inputs = d_inputs(critic, real, torch.randn(256, 4))
    critic.seen.clear()
    build_penalty({"name": "dragan", "scale": 0.5}, "d").value(inputs)
    (points,) = critic.seen
    shift = points - real
    limit = 0.5 * real.std()
    assert shift.min() >= 0 and shift.max() <= limit + 1e-6
    assert shift.max() > 0.5 * limit  # the perturbation is used, on the scale of the data's std


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_dragan_noise_is_rand_like_s_draw_in_either_memory_layout(monkeypatch, layout):
    """In one process DRAGAN's noise is exactly ``torch.rand_like(real)`` at the same RNG state,
    also for the fast step's channels-last batches (rand_like fills in memory order), so runs
    keep the draws they had before the noise became a shard of a global draw."""
    import steadygan.core.penalties as penalties
    monkeypatch.setattr(penalties, "per_sample_mix", lambda a, b: b.detach().requires_grad_(True))  # the perturbed end
    real = torch.randn(3, 2, 4, 5).contiguous(memory_format=layout)
    seen = []
    def critic(x):
        seen.append(x.detach())
        return x.flatten(1).sum(1)
    torch.manual_seed(7)
    expected = torch.rand_like(real)
    torch.manual_seed(7)
    dragan_penalty(critic, real, scale=0.5)
    noise = (seen[0] - real) / (0.5 * real.std())
    torch.testing.assert_close(noise, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("spec, message", [
    ({"name": "dragan", "scale": 0}, r"penalty 'dragan': scale must be > 0 \(got 0\)"),
    ({"name": "dragan", "lambda": -1}, r"penalty 'dragan': weight must be a finite number >= 0 \(got -1.0\)"),
    ({"name": "dragan", "every": 0}, r"penalty 'dragan': every must be an integer >= 1 \(got 0\)"),
    ({"name": "seed-param", "target": "params"}, r"penalty 'seed-param': target must be 'loss' or 'output' "
                                                 r"\(got 'params'\)"),
    ({"name": "seed-param", "lambda": float("inf")}, "weight must be a finite number"),
])
def test_penalty_option_errors_say_which_penalty_and_value(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_penalty(spec, "d")


def test_weights_and_schedules_reach_the_penalty_objects():
    dragan = build_penalty({"name": "dragan", "lambda": 3, "every": 2, "scale": 0.25}, "d")
    assert (dragan.weight, dragan.every, dragan.scale) == (3.0, 2, 0.25)
    seed = build_penalty({"name": "seed-param", "lambda": 0.5, "every": 3, "target": "output"}, "g")
    assert (seed.weight, seed.every, seed.target) == (0.5, 3, "output")
    assert repr(seed) == "SeedParamPenalty(weight=0.5, every=3)"


def test_seed_param_output_target_for_the_generator_differentiates_mean_fake_output():
    inputs = dirac_inputs("g", theta=0.7, psi=-1.3)
    got = build_penalty({"name": "seed-param", "target": "output"}, "g").value(inputs)
    # mean D(G(z)) = psi * theta; d/dtheta = psi
    assert got.item() == pytest.approx(1.3 ** 2, rel=1e-6)


def test_consensus_needs_both_losses():
    inputs = dirac_inputs("d")
    inputs.g_loss = None
    with pytest.raises(AssertionError):
        build_penalty({"name": "consensus"}, "d").value(inputs)


def test_param_grad_norm_skips_parameters_the_loss_does_not_use():
    used, unused = nn.Parameter(torch.tensor([3.0])), nn.Parameter(torch.tensor([1.0]))
    value = sq_param_grad_norm(used.square().sum(), [used, unused])
    assert value.item() == 36.0 and value.requires_grad  # (2 * 3)^2, with the graph kept


def test_dragan_default_scale_is_half_a_standard_deviation():
    assert build_penalty({"name": "dragan"}, "d").scale == 0.5


def test_param_grad_norm_of_a_loss_that_uses_no_parameter_is_a_zero_tensor():
    unused = nn.Parameter(torch.ones(2))
    x = torch.ones(2, requires_grad=True)
    value = sq_param_grad_norm((x * 2).sum(), [unused])
    assert isinstance(value, torch.Tensor) and value.item() == 0.0


# --- the functional forms (for a user's own loop) --------------------------------------------

def test_functional_input_gradient_penalties_against_closed_forms_on_a_linear_critic():
    """grad_x (w.x + b) = w at every point, so r1 = r2 = gamma/2 ||w||^2, wgan-gp and dragan
    = lam (||w|| - 1)^2 and zero-gp = lam ||w||^2, whatever points they are taken at."""
    torch.manual_seed(1)
    w = torch.randn(12)
    D = LinearCritic(w, 0.4)
    real, fake = torch.randn(6, 3, 2, 2), torch.randn(6, 3, 2, 2)
    norm = w.norm()
    assert r1_penalty(D, real, gamma=3.0).item() == pytest.approx(1.5 * norm.item() ** 2, rel=1e-5)
    assert r2_penalty(D, fake, gamma=3.0).item() == pytest.approx(1.5 * norm.item() ** 2, rel=1e-5)
    assert wgan_gp_penalty(D, real, fake, lam=2.0).item() == pytest.approx(2 * (norm.item() - 1) ** 2, rel=1e-5)
    assert zero_gp_penalty(D, real, fake, lam=2.0).item() == pytest.approx(2 * norm.item() ** 2, rel=1e-5)
    assert dragan_penalty(D, real, lam=2.0).item() == pytest.approx(2 * (norm.item() - 1) ** 2, rel=1e-5)
    assert not real.requires_grad  # the caller's tensors are left as they were


def _assert_registry_equals_functional(spec: dict, call) -> None:
    """The registry penalty built from ``spec``, times its weight, against ``call(D, inputs)``
    with the same random draws."""
    torch.manual_seed(2)
    D = nn.Sequential(nn.Flatten(), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 1), nn.Flatten(0))
    inputs = d_inputs(D, torch.randn(4, 2, 2, 2), torch.randn(4, 2, 2, 2))
    penalty = build_penalty(spec, "d")
    torch.manual_seed(3)
    registry = penalty.weight * penalty.value(inputs)
    torch.manual_seed(3)
    torch.testing.assert_close(call(D, inputs), registry, rtol=1e-6, atol=0)
    assert registry.item() > 1e-4


@pytest.mark.parametrize("spec,call", [
    ({"name": "r1"}, lambda D, i: r1_penalty(D, i.real, 2.5)),
    ({"name": "r2"}, lambda D, i: r2_penalty(D, i.fake, 2.5)),
    ({"name": "wgan-gp"}, lambda D, i: wgan_gp_penalty(D, i.real, i.fake, 2.5)),
    ({"name": "zero-gp"}, lambda D, i: zero_gp_penalty(D, i.real, i.fake, 2.5)),
    ({"name": "dragan"}, lambda D, i: dragan_penalty(D, i.real, 2.5)),
    ({"name": "dragan", "scale": 2.0}, lambda D, i: dragan_penalty(D, i.real, 2.5, scale=2.0)),
    ({"name": "seed-param"}, lambda D, i: param_grad_penalty(i.d_loss, i.d_params, 2.5)),
], ids=["r1", "r2", "wgan-gp", "zero-gp", "dragan", "dragan-scale-2", "seed-param"])
def test_the_registry_and_the_functional_form_give_the_same_value(spec, call):
    _assert_registry_equals_functional({**spec, "weight": 2.5}, call)


@pytest.mark.parametrize("name,call", [
    ("r1", lambda D, i: r1_penalty(D, i.real)),
    ("r2", lambda D, i: r2_penalty(D, i.fake)),
    ("wgan-gp", lambda D, i: wgan_gp_penalty(D, i.real, i.fake)),
    ("zero-gp", lambda D, i: zero_gp_penalty(D, i.real, i.fake)),
    ("dragan", lambda D, i: dragan_penalty(D, i.real)),
    ("seed-param", lambda D, i: param_grad_penalty(i.d_loss, i.d_params)),
])
def test_a_functional_penalty_called_with_its_defaults_is_the_registry_default(name, call):
    # Called, not only read from the signature: the default weight (and scale) must reach the value.
    _assert_registry_equals_functional({"name": name}, call)


def test_functional_parameter_gradient_penalties_with_their_defaults_on_the_dirac_game():
    i = dirac_inputs("g")
    consensus = build_penalty({"name": "consensus"}, "d").weight
    nk = build_penalty({"name": "nk"}, "g").weight
    got = consensus_penalty(i.d_loss, i.d_params, i.g_loss, i.g_params)
    assert got.item() == pytest.approx(consensus / 2 * (0.7 ** 2 + 1.3 ** 2), rel=1e-6)
    assert nk_penalty(i.d_loss, i.d_params).item() == pytest.approx(nk * 0.7 ** 2, rel=1e-6)


def test_functional_parameter_gradient_penalties_on_the_dirac_game():
    i = dirac_inputs("g")
    got = consensus_penalty(i.d_loss, i.d_params, i.g_loss, i.g_params, gamma=4.0)
    assert got.item() == pytest.approx(2.0 * (0.7 ** 2 + 1.3 ** 2), rel=1e-6)
    assert nk_penalty(i.d_loss, i.d_params, eta=3.0).item() == pytest.approx(3.0 * 0.7 ** 2, rel=1e-6)


@pytest.mark.parametrize("function,name", [(r1_penalty, "r1"), (r2_penalty, "r2"), (wgan_gp_penalty, "wgan-gp"),
                                           (zero_gp_penalty, "zero-gp"), (dragan_penalty, "dragan"),
                                           (param_grad_penalty, "seed-param"), (consensus_penalty, "consensus"),
                                           (nk_penalty, "nk")])
def test_each_functional_penalty_defaults_to_its_registry_weight(function, name):
    import inspect

    cls = PENALTIES.get(name).factory
    weight = "lam" if cls.weight_alias == "lambda" else cls.weight_alias  # lambda is a Python keyword
    assert inspect.signature(function).parameters[weight].default == cls.default_weight


def test_functional_parameter_penalties_take_their_inner_gradients_at_the_given_scale(monkeypatch):
    import steadygan.core.penalties as module

    scales = []
    real_norm = module.sq_param_grad_norm
    monkeypatch.setattr(module, "sq_param_grad_norm",
                        lambda loss, params, grad_scale=1.0: scales.append(grad_scale) or real_norm(loss, params))
    i = dirac_inputs("g")
    consensus_penalty(i.d_loss, i.d_params, i.g_loss, i.g_params, grad_scale=8.0)
    nk_penalty(i.d_loss, i.d_params, grad_scale=4.0)
    param_grad_penalty(i.g_loss, i.g_params, grad_scale=2.0)
    assert scales == [8.0, 8.0, 4.0, 2.0]


@pytest.mark.parametrize("name", ["wgan-gp", "dragan"])
def test_penalties_centred_at_norm_one_take_their_inner_gradients_at_the_step_scale(monkeypatch, name):
    # Their value barely moves when a tiny fp16 gradient flushes to zero ((0 - 1)^2 against
    # (1e-8 - 1)^2), so the hand-over of the scaler's scale is checked where it happens.
    import steadygan.core.penalties as module

    scales = []
    real_norm = module.per_sample_sq_grad_norm
    monkeypatch.setattr(module, "per_sample_sq_grad_norm",
                        lambda out, points, grad_scale=1.0: scales.append(grad_scale) or real_norm(out, points))
    torch.manual_seed(2)
    D = nn.Sequential(nn.Flatten(), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 1), nn.Flatten(0))
    inputs = d_inputs(D, torch.randn(4, 2, 2, 2), torch.randn(4, 2, 2, 2))
    inputs.grad_scale = 16.0
    build_penalty({"name": name}, "d").value(inputs)
    assert scales == [16.0]


def test_scaling_inner_gradients_by_a_power_of_two_changes_no_fp32_value():
    """In fp32, multiplying by 2^k before autograd.grad and dividing after is exact: each
    penalty must give the same value at grad_scale 8 as at 1 (a scale applied on one side
    only, or twice, would move it by 8x or 64x)."""
    torch.manual_seed(6)
    D = nn.Sequential(nn.Flatten(), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 1), nn.Flatten(0))
    real, fake = torch.randn(4, 2, 2, 2), torch.randn(4, 2, 2, 2)
    i = dirac_inputs("g")
    cases = {
        "r1": lambda s: r1_penalty(D, real, 1.0, grad_scale=s),
        "wgan-gp": lambda s: wgan_gp_penalty(D, real, fake, 1.0, grad_scale=s),
        "param": lambda s: param_grad_penalty(i.g_loss, i.g_params, 1.0, grad_scale=s),
        "consensus": lambda s: consensus_penalty(i.d_loss, i.d_params, i.g_loss, i.g_params, 1.0, grad_scale=s),
    }
    for name, value in cases.items():
        torch.manual_seed(0)
        at_one = value(1.0)
        torch.manual_seed(0)
        assert value(8.0).item() == pytest.approx(at_one.item(), rel=1e-6), name
    inputs = dirac_inputs("d")
    inputs.grad_scale = 8.0
    assert build_penalty({"name": "seed-param"}, "d").value(inputs).item() == pytest.approx(0.7 ** 2, rel=1e-6)


def test_a_penalty_spec_without_a_name_is_a_config_error():
    with pytest.raises(ConfigError, match="a d penalty needs a name; choose from: .*r1"):
        build_penalty({"gamma": 1}, "d")


def test_lecam_by_hand_one_and_two_sided():
    from steadygan.core.penalties import lecam_penalty

    real, fake = torch.tensor([1.0, -0.5]), torch.tensor([0.2, -1.0])
    ema_real, ema_fake = 0.4, -0.3
    # One-sided (the authors' code): real outputs above ema_fake, fake outputs below ema_real.
    one = ((1.3 ** 2 + 0.0 ** 2) / 2) + ((0.2 ** 2 + 1.4 ** 2) / 2)
    assert lecam_penalty(real, fake, ema_real, ema_fake, lam=1.0).item() == pytest.approx(one)
    two = ((1.3 ** 2 + 0.2 ** 2) / 2) + ((0.2 ** 2 + 1.4 ** 2) / 2)
    assert lecam_penalty(real, fake, ema_real, ema_fake, lam=0.5, two_sided=True).item() == pytest.approx(0.5 * two)
    # Called with its defaults: the registry's weight, one-sided.
    assert lecam_penalty(real, fake, ema_real, ema_fake).item() == pytest.approx(
        build_penalty({"name": "lecam"}, "d").weight * one)


def test_lecam_penalty_keeps_moving_averages_and_checkpoints_them():
    penalty = build_penalty({"name": "lecam", "lambda": 0.7, "decay": 0.5, "every": 2}, "d")
    assert penalty.weight == 0.7 and penalty.every == 2 and penalty.players == ("d",)
    assert build_penalty({"name": "lecam"}, "d").weight == 0.3  # the paper's lambda

    def inputs(real, fake):
        real, fake = torch.tensor(real), torch.tensor(fake)
        return PenaltyInputs(player="d", score=lambda x: x, d_params=[], g_params=[], real=real, fake=fake,
                             real_logits=real, fake_logits=fake, d_loss=None, g_loss=None)

    first = penalty.value(inputs([2.0, 4.0], [-2.0, 0.0]))  # EMAs 0 before: relu(D(real))^2, relu(-D(fake))^2
    assert first.item() == pytest.approx((4 + 16) / 2 + (4 + 0) / 2)
    assert penalty.state_dict() == {"ema_real": 1.5, "ema_fake": -0.5}  # 0.5 * 0 + 0.5 * mean
    second = penalty.value(inputs([0.0, 0.0], [0.0, 0.0]))
    assert second.item() == pytest.approx(0.5 ** 2 + 1.5 ** 2)
    assert penalty.state_dict() == {"ema_real": 0.75, "ema_fake": -0.25}
    again = build_penalty({"name": "lecam", "decay": 0.5}, "d")
    again.load_state_dict(penalty.state_dict())
    assert again.value(inputs([1.0], [1.0])).item() == penalty.value(inputs([1.0], [1.0])).item()
    two_sided = build_penalty({"name": "lecam", "decay": 0.5, "two_sided": True}, "d")
    two_sided.load_state_dict({"ema_real": 0.4, "ema_fake": -0.3})  # test_lecam_by_hand's numbers
    value = two_sided.value(inputs([1.0, -0.5], [0.2, -1.0])).item()
    assert value == pytest.approx((1.3 ** 2 + 0.2 ** 2) / 2 + (0.2 ** 2 + 1.4 ** 2) / 2)
    one_sided = build_penalty({"name": "lecam", "decay": 0.5}, "d")  # the default: the authors' code
    one_sided.load_state_dict({"ema_real": 0.4, "ema_fake": -0.3})
    value = one_sided.value(inputs([1.0, -0.5], [0.2, -1.0])).item()
    assert value == pytest.approx((1.3 ** 2 + 0.0 ** 2) / 2 + (0.2 ** 2 + 1.4 ** 2) / 2)
    assert build_penalty({"name": "lecam", "decay": 0.0}, "d").decay == 0.0  # no averaging: allowed
    with pytest.raises(ConfigError, match="decay"):
        build_penalty({"name": "lecam", "decay": 1.0}, "d")
    with pytest.raises(ConfigError, match="two_sided must be true or false"):
        build_penalty({"name": "lecam", "two_sided": "maybe"}, "d")
    with pytest.raises(ConfigError, match="cannot be attached to the generator"):
        build_penalty({"name": "lecam"}, "g")


# --- closed from surviving mutants (benchmarks/mutation_module.py penalties) ---------------------

def test_an_inner_gradient_at_scale_two_is_divided_back_exactly():
    # Any scale, 2.0 included, must give the unscaled value: the division is not skipped for one value.
    torch.manual_seed(0)
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(3)
    out = (x * w).sum(1) ** 2
    plain = per_sample_sq_grad_norm(out, x)
    for scale in (2.0, 4.0, 0.5):
        torch.testing.assert_close(per_sample_sq_grad_norm(out, x, grad_scale=scale), plain, rtol=0, atol=0)
    p = nn.Parameter(torch.tensor([1.5, -2.0]))
    unused = nn.Parameter(torch.ones(1))
    loss = (p ** 3).sum()
    for scale in (2.0, 8.0):
        assert sq_param_grad_norm(loss, [p, unused], grad_scale=scale).item() == \
            sq_param_grad_norm(loss, [p, unused]).item()


def test_float64_inputs_give_a_float64_penalty():
    torch.manual_seed(0)
    real = torch.randn(5, 3, dtype=torch.float64)
    w = torch.randn(3, dtype=torch.float64) / 3
    value = r1_penalty(lambda x: torch.tanh(x @ w), real, gamma=2.0)
    assert value.dtype == torch.float64
    by_hand = ((1 - torch.tanh(real @ w) ** 2)[:, None] * w).square().sum(1).mean()
    assert value.item() == pytest.approx(by_hand.item(), rel=1e-13, abs=0)  # float32: off by ~1e-7


def test_a_penalty_of_weight_zero_is_allowed_and_a_spec_without_a_name_lists_them():
    assert build_penalty({"name": "r1", "gamma": 0}, "d").weight == 0.0  # a sweep's "off" point
    with pytest.raises(ConfigError) as exc:
        build_penalty({"gamma": 1}, "d")
    assert str(exc.value) == "a d penalty needs a name; choose from: " + ", ".join(PENALTIES.names())


def test_penalty_inputs_name_a_wrong_player():
    with pytest.raises(ValueError) as exc:
        dataclasses.replace(dirac_inputs("g"), player="both")
    assert str(exc.value) == "PenaltyInputs.player is 'd' or 'g' (got 'both')"


def test_mode_seeking_is_the_inverse_of_the_image_gap_over_the_noise_gap():
    from steadygan.core.penalties import mode_seeking_penalty

    fake, other = torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.5)
    z, other_z = torch.zeros(2, 3), torch.full((2, 3), 2.0)
    assert mode_seeking_penalty(fake, other, z, other_z).item() == pytest.approx(1 / (0.5 / 2.0 + 1e-5))
    assert mode_seeking_penalty(fake, fake, z, other_z).item() == pytest.approx(1e5)  # G ignores z: huge


def test_mode_seeking_in_the_g_step_draws_a_second_sample_for_the_same_labels():
    from steadygan.core.penalties import PenaltyInputs

    penalty = build_penalty({"name": "mode-seeking"}, "g")
    assert penalty.players == ("g",) and penalty.weight == 1.0 and not penalty.second_order
    seen = []

    def generate(noise):
        seen.append(noise)
        return noise[:, :1, None, None].expand(-1, 1, 2, 2) * 0 + 3.0  # a generator that ignores its noise

    z = torch.randn(4, 5)
    inputs = PenaltyInputs(player="g", score=lambda x: x.sum((1, 2, 3)), d_params=[], g_params=[],
                           real=torch.zeros(4, 1, 2, 2), fake=torch.full((4, 1, 2, 2), 3.0), real_logits=None,
                           fake_logits=torch.zeros(4), d_loss=None, g_loss=torch.zeros(()), z=z, generate=generate)
    torch.manual_seed(0)
    value = penalty.value(inputs)
    (other_z,) = seen
    assert other_z.shape == z.shape and not torch.equal(other_z, z)
    assert value.item() == pytest.approx(1e5)  # identical samples from different noise: the largest penalty


def test_the_auxiliary_classifier_term_is_the_cross_entropy_of_the_class_logits():
    from steadygan.core.penalties import auxiliary_classifier_loss

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    by_hand = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(math.e / (1 + math.e)) - math.log(0.5)) / 3
    assert auxiliary_classifier_loss(logits, labels).item() == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.parametrize("player", ["d", "g"])
def test_the_auxiliary_classifier_classifies_real_samples_for_d_and_generated_ones_for_g(player):
    from steadygan.core.penalties import PenaltyInputs, auxiliary_classifier_loss

    penalty = build_penalty({"name": "aux-classifier"}, player)
    assert penalty.players == ("d", "g") and penalty.weight == 1.0 and not penalty.second_order
    real, fake = torch.zeros(3, 2), torch.ones(3, 2)
    labels = torch.tensor([0, 1, 0])
    classified = []

    def classify(x):
        classified.append(x)
        return torch.stack([x.sum(1), -x.sum(1)], 1)

    inputs = PenaltyInputs(player=player, score=lambda x: x.sum(1), d_params=[], g_params=[], real=real, fake=fake,
                           real_logits=torch.zeros(3), fake_logits=torch.zeros(3), d_loss=torch.zeros(()),
                           g_loss=torch.zeros(()), labels=labels, classify=classify)
    value = penalty.value(inputs)
    (seen,) = classified
    assert seen is (real if player == "d" else fake)  # D learns from real samples only, G from its own
    assert value.item() == pytest.approx(auxiliary_classifier_loss(classify(seen), labels).item())


def _cycle_inputs(real, fake, translate):
    from steadygan.core.penalties import PenaltyInputs

    return PenaltyInputs(player="g", score=lambda x: x.flatten(1).sum(1), d_params=[], g_params=[], real=real,
                         fake=fake, real_logits=None, fake_logits=torch.zeros(len(real)), d_loss=None,
                         g_loss=torch.zeros(()), translate=translate)


def test_the_cycle_term_is_the_mean_distance_of_the_translation_translated_back_to_the_input():
    penalty = build_penalty({"name": "cycle"}, "g")
    assert penalty.players == ("g",) and penalty.weight == 10.0 and not penalty.second_order
    u = torch.tensor([[[[0.5]], [[-0.5]]]])                 # one joint sample (a, b) = (0.5, -0.5)
    fake = torch.tensor([[[[0.1]], [[0.9]]]])
    seen = []

    def translate(images):                                   # G: every pixel to 0.2 x itself + 0.3
        seen.append(images)
        return images * 0.2 + 0.3

    value = penalty.value(_cycle_inputs(u, fake, translate))
    assert seen[0] is fake  # translated back from this step's output
    # back = (0.32, 0.48); |0.32 - 0.5| = 0.18, |0.48 + 0.5| = 0.98; mean 0.58
    assert value.item() == pytest.approx(0.58)


def test_the_identity_term_gives_each_generator_an_image_of_its_own_target_domain():
    penalty = build_penalty({"name": "identity"}, "g")
    assert penalty.players == ("g",) and penalty.weight == 5.0
    u = torch.tensor([[[[0.5]], [[-0.5]]]])
    seen = []

    def translate(images):
        seen.append(images)
        return images * 0.2 + 0.3

    value = penalty.value(_cycle_inputs(u, torch.zeros_like(u), translate))
    assert torch.equal(seen[0], torch.tensor([[[[-0.5]], [[0.5]]]]))  # (b, a): slots swapped
    # G(b, a) = (0.2, 0.4) against (a, b) = (0.5, -0.5): |0.2 - 0.5| = 0.3, |0.4 + 0.5| = 0.9; mean 0.6
    assert value.item() == pytest.approx(0.6)

"""CycleGAN's pair on joint samples: shapes for every size, each slot translated from the other
domain's image only, the cycle and identity routes, each PatchGAN judging its own slot, and an
input-gradient penalty on the joint D against the two discriminators' gradients."""

from __future__ import annotations

import pytest
import torch

from steadygan.core.penalties import per_sample_sq_grad_norm
from steadygan.errors import ConfigError
from steadygan.models import build_models, domain_slots, swap_domains


def _pair(res=28, channels=1, **kw):
    torch.manual_seed(0)
    return build_models("cyclegan", (2 * channels, res, res), 8, width=8, **kw)


@pytest.mark.parametrize("res", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_size_translates_joint_samples_into_joint_samples(res, channels):
    pair = _pair(res, channels)
    u = torch.rand(3, 2 * channels, res, res) * 2 - 1
    out = pair.generate(torch.randn(3, 8), u)
    assert out.shape == u.shape and out.abs().max() <= 1
    side = {28: 12, 32: 14, 64: 14}[res]
    assert pair.score(u, u).shape == (3, side, 2 * side)  # D_A's map beside D_B's
    assert pair.translates and pair.two_domains and pair.condition_shape == (2 * channels, res, res)


def test_each_slot_is_the_other_domains_translation_and_the_routes_compose():
    pair = _pair()
    G = pair.generator.eval()
    z, u = torch.randn(4, 8), torch.rand(4, 2, 28, 28) * 2 - 1
    a, b = domain_slots(u)
    with torch.no_grad():
        to_a, to_b = domain_slots(G(z, u))
        assert torch.equal(to_a, G.b_to_a(z, b)) and torch.equal(to_b, G.a_to_b(z, a))
        other = torch.cat([a, torch.rand_like(b)], 1)  # a new b leaves A -> B as it was
        assert torch.equal(domain_slots(G(z, other))[1], to_b) and not torch.equal(domain_slots(G(z, other))[0], to_a)
        back_a, back_b = domain_slots(G(z, G(z, u)))  # the cycle: a -> b -> a, b -> a -> b
        assert torch.equal(back_a, G.b_to_a(z, G.a_to_b(z, a))) and torch.equal(back_b, G.a_to_b(z, G.b_to_a(z, b)))
        same_a, same_b = domain_slots(G(z, swap_domains(u)))  # identity: each G given its own target domain
        assert torch.equal(same_a, G.b_to_a(z, a)) and torch.equal(same_b, G.a_to_b(z, b))
    assert not any(isinstance(m, torch.nn.Dropout) for m in G.modules())  # CycleGAN has no dropout


def test_each_discriminator_judges_its_own_slot_and_not_the_condition():
    pair = _pair()
    D = pair.discriminator
    x = torch.rand(2, 2, 28, 28)
    scores = D(x, x)
    side = scores.shape[1]
    a, b = domain_slots(x)
    assert torch.equal(scores[:, :, :side], D.on_a(a, a[:, :0]))
    assert torch.equal(scores[:, :, side:], D.on_b(b, b[:, :0]))
    assert torch.equal(D(x, torch.zeros_like(x)), scores)  # the condition is not read


def test_a_penalty_on_the_joint_d_is_a_quarter_of_the_two_discriminators_squared_gradients():
    # Documented in models/cycle.py: the joint D's per-sample score is the mean over both maps.
    pair = _pair()
    D = pair.discriminator
    x = torch.rand(3, 2, 28, 28, requires_grad=True)
    joint = per_sample_sq_grad_norm(D(x, x), x)
    a, b = (t.detach().requires_grad_(True) for t in domain_slots(x))
    grad_a, = torch.autograd.grad(D.on_a(a, a[:, :0]).flatten(1).mean(1).sum(), a)
    grad_b, = torch.autograd.grad(D.on_b(b, b[:, :0]).flatten(1).mean(1).sum(), b)
    separate = grad_a.flatten(1).square().sum(1) + grad_b.flatten(1).square().sum(1)
    torch.testing.assert_close(joint, separate / 4)


def test_a_cycle_pair_takes_joint_samples_only():
    with pytest.raises(ConfigError, match=r"^cyclegan trains on joint samples of two domains \(2C, H, H\)"):
        build_models("cyclegan", (3, 28, 28), 8, width=8)
    with pytest.raises(ConfigError, match="^cyclegan translates joint samples into joint samples"):
        build_models("cyclegan", (2, 28, 28), 8, width=8, condition_shape=(1, 28, 28))


def test_one_way_translation_is_that_directions_generator_alone():
    from steadygan.models import translate_one_way

    pair = _pair()
    G = pair.generator.eval()
    z, images = torch.randn(3, 8), torch.rand(3, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        assert torch.equal(translate_one_way(G, z, images, "AtoB"), G.a_to_b(z, images))
        assert torch.equal(translate_one_way(G, z, images, "BtoA"), G.b_to_a(z, images))
    with pytest.raises(ConfigError, match="^the direction is AtoB or BtoA"):
        translate_one_way(G, z, images, "AB")

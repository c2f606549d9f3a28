"""Clippers against direct computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from steadygan.core.clipping import CLIPPERS, build_clipper, unitwise_norm
from steadygan.errors import ConfigError


def params_with_grads(seed=0, scale=1.0):
    torch.manual_seed(seed)
    conv, lin = nn.Conv2d(3, 4, 3), nn.Linear(5, 2)
    params = list(conv.parameters()) + list(lin.parameters())
    for p in params:
        p.grad = scale * torch.randn_like(p)
    return params


def total_norm(tensors):
    return torch.sqrt(sum(t.square().sum() for t in tensors))


def test_value_clipper_bounds_every_element_and_reports_fraction():
    params = params_with_grads(scale=0.05)
    before = [p.grad.clone() for p in params]
    stats = build_clipper({"name": "value", "eps": 0.03}).clip_(params)
    flat = torch.cat([g.flatten() for g in before])
    assert stats.grad_norm.item() == pytest.approx(total_norm(before).item(), rel=1e-6)
    assert stats.clipped.item() == pytest.approx((flat.abs() > 0.03).float().mean().item())
    for p, g in zip(params, before):
        assert p.grad.abs().max() <= 0.03
        assert torch.equal(p.grad, g.clamp(-0.03, 0.03))


def test_norm_clipper_bounds_global_norm_and_returns_preclip_norm():
    params = params_with_grads(scale=1.0)
    before = total_norm([p.grad for p in params]).item()
    stats = build_clipper({"name": "norm", "max_norm": 0.5}).clip_(params)
    assert stats.grad_norm.item() == pytest.approx(before, rel=1e-6)
    assert total_norm([p.grad for p in params]).item() == pytest.approx(0.5, rel=1e-4)
    assert stats.clipped.item() == 1.0


def test_norm_clipper_leaves_small_gradients_alone():
    params = params_with_grads(scale=1e-4)
    before = [p.grad.clone() for p in params]
    stats = build_clipper({"name": "norm", "max_norm": 10.0}).clip_(params)
    assert stats.clipped.item() == 0.0
    assert all(torch.equal(p.grad, g) for p, g in zip(params, before))


def test_agc_matches_hand_computation():
    torch.manual_seed(3)
    w = nn.Parameter(torch.randn(3, 4))
    b = nn.Parameter(torch.tensor([0.0, 2.0, -1.0]))
    w.grad = torch.randn(3, 4)
    w.grad[1] *= 1e-4  # row 1 stays under the threshold
    b.grad = torch.tensor([0.5, 0.01, 0.3])
    gw, gb = w.grad.clone(), b.grad.clone()
    clip, eps = 0.1, 0.5  # not the default eps: b[0] = 0 is clipped against clip * eps
    stats = build_clipper({"name": "agc", "clipping": clip, "eps": eps}).clip_([w, b])

    expected_w, changed = gw.clone(), 0
    for i in range(3):
        limit = clip * max(w.data[i].norm().item(), eps)
        if gw[i].norm() > limit:
            expected_w[i] = gw[i] * limit / gw[i].norm()
            changed += 4
    expected_b = gb.clone()
    for i in range(3):
        limit = clip * max(abs(b.data[i].item()), eps)
        if abs(gb[i]) > limit:
            expected_b[i] = gb[i] * limit / abs(gb[i])
            changed += 1
    assert torch.allclose(w.grad, expected_w, rtol=1e-5) and torch.allclose(b.grad, expected_b, rtol=1e-5)
    assert stats.clipped.item() == pytest.approx(changed / 15)
    assert 0 < changed < 15  # the case exercises both branches


def test_unitwise_norm_shapes():
    x = torch.randn(4, 3, 2, 2)
    assert unitwise_norm(x).shape == (4, 1, 1, 1)
    assert torch.allclose(unitwise_norm(x).flatten(), x.flatten(1).norm(dim=1))


def test_weight_clip_bounds_weights_after_step():
    params = params_with_grads()
    with torch.no_grad():
        params[0].mul_(10)
    clipper = build_clipper({"name": "weight-clip", "c": 0.05})
    over = torch.cat([p.detach().flatten() for p in params]).abs().gt(0.05).float().mean()
    frac = clipper.after_step_(params)
    assert all(p.abs().max() <= 0.05 for p in params)
    assert frac.item() == pytest.approx(over.item())


def test_none_clipper_changes_nothing_and_reports_norm():
    params = params_with_grads()
    before = [p.grad.clone() for p in params]
    stats = build_clipper(None).clip_(params)
    assert stats.grad_norm.item() == pytest.approx(total_norm(before).item(), rel=1e-6)
    assert all(torch.equal(p.grad, g) for p, g in zip(params, before))
    assert torch.equal(stats.clipped, torch.zeros(()))  # a tensor, like every clipper's: logged as a number


def test_agc_reports_the_norm_before_clipping():
    params = params_with_grads()
    before = total_norm([p.grad.clone() for p in params])
    stats = build_clipper({"name": "agc", "clipping": 1e-3}).clip_(params)
    assert stats.clipped.item() > 0 and total_norm([p.grad for p in params]) < before
    assert stats.grad_norm.item() == pytest.approx(before.item(), rel=1e-6)


def test_a_spec_without_a_name_lists_the_clippers():
    with pytest.raises(ConfigError) as exc:
        build_clipper({"eps": 0.1})
    assert str(exc.value) == "a clipper needs a name; choose from: " + ", ".join(CLIPPERS.names())


@pytest.mark.parametrize("spec, message", [
    ({"name": "value", "eps": 0}, "> 0"),
    ({"name": "value", "epsilon": 0.1}, "valid options: eps"),
    ({"name": "norm", "max_norm": -1}, "> 0"),
    ({"name": "clip"}, "choose from"),
])
def test_bad_clipper_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_clipper(spec)


def test_all_clippers_registered():
    assert set(CLIPPERS.names()) == {"none", "value", "norm", "agc", "weight-clip"}


@pytest.mark.parametrize("ratio, clipped", [(1.5, True), (1.01, True), (1.0, False), (0.7, False)])
def test_norm_clipper_near_its_limit(ratio, clipped):
    """Rescaled exactly when the global norm exceeds max_norm, by any margin."""
    params = params_with_grads(scale=1.0)
    norm = total_norm([p.grad for p in params]).item()
    max_norm = norm / ratio
    before = [p.grad.clone() for p in params]
    stats = build_clipper({"name": "norm", "max_norm": max_norm}).clip_(params)
    after = total_norm([p.grad for p in params]).item()
    assert stats.grad_norm.item() == pytest.approx(norm, rel=1e-6)
    if clipped:
        assert after == pytest.approx(max_norm, rel=1e-5)
        assert stats.clipped.item() == 1.0
        for p, g in zip(params, before):  # one common factor: directions kept
            assert torch.allclose(p.grad, g * (max_norm / norm), rtol=1e-5, atol=1e-8)
    else:
        assert stats.clipped.item() == 0.0
        assert after == pytest.approx(norm, rel=1e-5)


def test_norm_exactly_at_the_limit_is_not_counted_as_clipped():
    from steadygan.core.clipping import global_grad_norm

    params = params_with_grads(scale=1.0)
    limit = global_grad_norm(params).item()  # the very number the clipper will compare
    stats = build_clipper({"name": "norm", "max_norm": limit}).clip_(params)
    assert stats.grad_norm.item() == limit and stats.clipped.item() == 0.0


def test_weight_clip_counts_only_weights_beyond_c():
    w = nn.Parameter(torch.tensor([0.5, -0.5, 0.2, 0.0]))
    frac = build_clipper({"name": "weight-clip", "c": 0.5}).after_step_([w])
    assert frac.item() == 0.0 and torch.equal(w.detach(), torch.tensor([0.5, -0.5, 0.2, 0.0]))
    frac = build_clipper({"name": "weight-clip", "c": 0.3}).after_step_([w])
    assert frac.item() == 0.5 and torch.equal(w.detach(), torch.tensor([0.3, -0.3, 0.2, 0.0]))


@pytest.mark.parametrize("spec, message", [
    ({"name": "norm", "max_norm": 0}, r"clipper 'norm': max_norm must be a finite number > 0 \(got 0.0\)"),
    ({"name": "norm", "max_norm": float("inf")}, r"clipper 'norm': max_norm must be a finite number > 0 \(got inf\)"),
    ({"name": "weight-clip", "c": -1}, r"clipper 'weight-clip': c must be a finite number > 0 \(got -1.0\)"),
    ({"name": "value", "eps": 0}, r"clipper 'value': eps must be a finite number > 0"),
    ({"name": "agc", "clipping": 0}, r"clipper 'agc': clipping must be a finite number > 0"),
    ({"name": "agc", "eps": 0}, r"clipper 'agc': eps must be a finite number > 0"),
])
def test_clipper_option_errors_name_the_clipper_and_option(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_clipper(spec)


def test_clipper_repr_lists_its_options():
    assert repr(build_clipper({"name": "norm", "max_norm": 2})) == "NormClipper(max_norm=2.0)"
    assert repr(build_clipper({"name": "agc"})) == "AdaptiveClipper(clipping=0.01, eps=0.001)"
    assert build_clipper({"name": "weight-clip"}).c == 0.01 and build_clipper({"name": "value"}).eps == 0.01
    assert repr(build_clipper(None)) == "NoClip()"


def test_value_clipper_without_gradients_reports_zeros():
    stats = build_clipper({"name": "value", "eps": 0.1}).clip_([nn.Parameter(torch.ones(3))])
    assert stats.grad_norm.item() == 0.0 and stats.clipped.item() == 0.0


def test_functional_clippers_by_hand():
    from steadygan.core.clipping import agc_, clip_norm_, clip_value_, weight_clip_

    p = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    p.grad = torch.tensor([0.5, -2.0, 0.001])
    assert clip_value_([p], 0.1).item() == pytest.approx(2 / 3)
    assert p.grad.tolist() == pytest.approx([0.1, -0.1, 0.001])
    q = torch.nn.Parameter(torch.zeros(2))
    q.grad = torch.tensor([3.0, 4.0])
    assert clip_norm_([q], 1.0).item() == pytest.approx(5.0)
    assert q.grad.tolist() == pytest.approx([0.6, 0.8])
    # agc: a 1-D parameter's unit norm is |w|: the gradient of w=3 may be at most 0.1 * 3 = 0.3.
    p.grad = torch.tensor([0.05, 1.0, 0.2])
    assert agc_([p], clipping=0.1).item() == pytest.approx(1 / 3)
    assert p.grad.tolist() == pytest.approx([0.05, 0.2, 0.2])
    assert weight_clip_([p], 1.5).item() == pytest.approx(2 / 3)
    assert p.tolist() == [1.0, 1.5, 1.5]


def test_clippers_built_without_options_use_their_papers_settings():
    assert build_clipper({"name": "norm"}).max_norm == 1.0
    assert build_clipper({"name": "value"}).eps == 0.01  # the GC-GAN document's
    agc = build_clipper({"name": "agc"})
    assert (agc.clipping, agc.eps) == (0.01, 1e-3)  # Brock et al. 2021
    assert build_clipper({"name": "weight-clip"}).c == 0.01  # Arjovsky et al. 2017

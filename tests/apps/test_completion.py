"""Image completion: known pixels kept to the bit, a target in G's range recovered, bad masks refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from steadygan.apps.completion import check_mask, complete, make_mask, masked_error, read_image
from steadygan.data import DataError, to_uint8_images
from steadygan.errors import ConfigError


class TanhGenerator(nn.Module):
    """G(z) = tanh(A z + b) as an 8x8 image: a small generator whose range we can sample."""

    def __init__(self, z_dim: int = 6, side: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.side = side
        self.lin = nn.Linear(z_dim, side * side)
        with torch.no_grad():
            self.lin.weight.normal_(0, 0.4)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(z)).view(-1, 1, self.side, self.side)


def test_a_target_in_the_generators_range_is_recovered_and_known_pixels_kept():
    G = TanhGenerator()
    z_true = torch.randn(3, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        target = to_uint8_images(G(z_true))
    mask = make_mask("center", 8)
    result = complete(G, target, mask, z_dim=6, steps=400, restarts=4, prior_weight=0.0)
    known = mask.bool().expand_as(target)
    assert torch.equal(result.completed[known], target[known])  # to the bit
    err = masked_error(result.completed, target, mask)
    # Filling the hole with mid-grey scores 0.16-0.32 here (measured); the recovered image differs only by
    # the uint8 rounding of the target (at most 0.5/255 per pixel) and the search's residual.
    assert err.max().item() < 0.01


def test_completion_fills_only_the_masked_pixels_from_the_generator():
    G = TanhGenerator()
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    mask = make_mask("left", 8)
    result = complete(G, images, mask, z_dim=6, steps=5, restarts=1)
    unknown = ~mask.bool().expand_as(images)
    assert torch.equal(result.completed[unknown], result.generated[unknown])
    assert torch.equal(result.completed[~unknown], images[~unknown])


def test_completion_leaves_the_global_rng_and_the_networks_alone():
    G = TanhGenerator()
    torch.manual_seed(7)
    expected = torch.rand(1)
    torch.manual_seed(7)
    complete(G, torch.zeros(1, 1, 8, 8, dtype=torch.uint8), make_mask("center", 8), z_dim=6, steps=3)
    assert torch.equal(torch.rand(1), expected)
    assert all(p.requires_grad for p in G.parameters())


def test_conditional_completion_searches_the_classes():
    class ClassShift(nn.Module):
        def forward(self, z, y):
            return torch.tanh(z[:, :1, None, None] * 0 + (y.float() - 1.5)[:, None, None, None]).expand(-1, 1, 8, 8)

    G = ClassShift()
    G.register_parameter("unused", nn.Parameter(torch.zeros(1)))
    target = to_uint8_images(G(torch.zeros(1, 2), torch.tensor([3])))
    result = complete(G, target, make_mask("center", 8), z_dim=2, num_classes=4, steps=2, restarts=1)
    assert result.labels.tolist() == [3]


@pytest.mark.parametrize("make, message", [
    (lambda p: Image.new("L", (10, 10), 0).save(p), "mask is 10x10 px but the run's images are 8x8"),
    (lambda p: Image.new("L", (8, 8), 255).save(p), "every pixel as known"),
    (lambda p: Image.new("L", (8, 8), 0).save(p), "every pixel as unknown"),
    (lambda p: p.write_bytes(b"not a png"), "unreadable mask image"),
])
def test_bad_masks_are_clear_errors(tmp_path, make, message):
    path = tmp_path / "mask.png"
    make(path)
    with pytest.raises((ConfigError, DataError), match=message):
        make_mask(path, 8)
    with pytest.raises(ConfigError, match="center, left, random"):
        make_mask(tmp_path / "missing.png", 8)


def test_mask_png_dark_pixels_are_the_hole(tmp_path):
    arr = np.full((8, 8), 255, np.uint8)
    arr[2:4, 5:7] = 0
    Image.fromarray(arr).save(tmp_path / "m.png")
    mask = make_mask(tmp_path / "m.png", 8)
    assert mask.shape == (1, 1, 8, 8) and mask.sum().item() == 60 and mask[0, 0, 2, 5].item() == 0


def test_images_of_another_size_are_refused(tmp_path):
    Image.new("L", (9, 8)).save(tmp_path / "x.png")
    with pytest.raises(DataError, match="9x8 px but the run generates 8x8"):
        read_image(tmp_path / "x.png", 8, 1)


def test_mask_shapes_by_hand(tmp_path):
    center = make_mask("center", 8)[0, 0]
    expected = torch.ones(8, 8)
    expected[2:6, 2:6] = 0  # the middle half of each side
    assert torch.equal(center, expected)
    left = make_mask("left", 8)[0, 0]
    assert torch.equal(left[:, :4], torch.zeros(8, 4)) and torch.equal(left[:, 4:], torch.ones(8, 4))
    assert torch.equal(make_mask("random", 16), make_mask("random", 16, seed=0))
    rnd = make_mask("random", 32, seed=3)
    assert torch.equal(rnd, make_mask("random", 32, seed=3)) and not torch.equal(rnd, make_mask("random", 32, seed=4))
    assert 0.4 < rnd.mean().item() < 0.6 and set(rnd.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(rnd[0, 0], (torch.rand(32, 32, generator=torch.Generator().manual_seed(3)) >= 0.5).float())
    arr = np.full((8, 6), 255, np.uint8)  # 6 wide, 8 high
    Image.fromarray(arr).save(tmp_path / "m.png")
    with pytest.raises(ConfigError, match="the mask is 6x8 px but the run's images are 8x8"):
        make_mask(tmp_path / "m.png", 8)


def test_mask_png_threshold_is_128():
    import tempfile
    from pathlib import Path

    arr = np.full((4, 4), 255, np.uint8)
    arr[0, 0], arr[0, 1], arr[0, 2] = 127, 128, 129
    with tempfile.TemporaryDirectory() as tmp:
        Image.fromarray(arr).save(Path(tmp) / "m.png")
        mask = make_mask(Path(tmp) / "m.png", 4)[0, 0]
    assert mask.dtype == torch.float32 and mask[0, :3].tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="^the mask marks every pixel as known: nothing to complete"):
        check_mask(torch.ones(2, 2))
    with pytest.raises(ConfigError, match="^the mask marks every pixel as unknown: nothing to match"):
        check_mask(torch.zeros(2, 2))


@pytest.mark.parametrize("mode, channels", [("L", 1), ("RGB", 3)])
def test_read_image_gives_uint8_nchw_exactly(tmp_path, mode, channels):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (5, 5, channels) if channels == 3 else (5, 5), dtype=np.uint8)
    Image.fromarray(arr, mode).save(tmp_path / "x.png")
    x = read_image(tmp_path / "x.png", 5, channels)
    assert x.dtype == torch.uint8 and x.shape == (1, channels, 5, 5)
    assert np.array_equal(x[0].permute(1, 2, 0).numpy().reshape(arr.shape), arr)
    if channels == 3:  # an RGB file read for a grayscale run is converted, not refused
        assert read_image(tmp_path / "x.png", 5, 1).shape == (1, 1, 5, 5)
    with pytest.raises(DataError, match="x.png: unreadable image"):
        (tmp_path / "x.png").write_bytes(b"junk")
        read_image(tmp_path / "x.png", 5, channels)
    with pytest.raises(DataError, match="nothing.png: no such image"):
        read_image(tmp_path / "nothing.png", 5, channels)


def test_losses_and_errors_by_hand():
    from steadygan.apps.completion import _losses

    class Const(nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, x):
            return torch.full((x.shape[0],), self.value)

    G = nn.Identity()
    fake = torch.tensor([[[[0.5, -0.5], [1.0, 0.0]]]])
    target = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]]]])
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 1.0]]]])
    contextual = (0.5 + 0.5 + 0.0) / 3
    assert _losses(G, None, fake, None, target, mask, 1.0).item() == pytest.approx(contextual)
    assert _losses(G, Const(2.0), fake, None, target, mask, 0.0).item() == pytest.approx(contextual)
    prior = 0.1 * math.log1p(math.exp(-2.0))  # softplus(-D): a realistic sample (D high) costs little
    assert _losses(G, Const(2.0), fake, None, target, mask, 0.1).item() == pytest.approx(contextual + prior)
    assert _losses(G, Const(2.0), fake, None, target, mask, 1.0).item() == pytest.approx(contextual + prior * 10)
    two = _losses(G, None, torch.cat([fake, fake * 0]), None, torch.cat([target, target]), mask, 0.0)
    assert two.tolist() == pytest.approx([contextual, 0.0])  # one value per image
    original = torch.tensor([[[[0, 255], [100, 50]]]], dtype=torch.uint8)
    completed = torch.tensor([[[[10, 255], [0, 50]]]], dtype=torch.uint8)
    holes = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert masked_error(completed, original, holes).tolist() == pytest.approx([(10 + 100) / 255 / 2])
    pair = masked_error(torch.cat([completed, original]), torch.cat([original, original]), holes)
    assert pair.tolist() == pytest.approx([(10 + 100) / 255 / 2, 0.0])


def _tiny_pair(channels: int = 1):
    torch.manual_seed(1)
    G = nn.Sequential(nn.Linear(3, channels * 16), nn.Tanh(), nn.Unflatten(1, (channels, 4, 4)))
    D = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, 1), nn.Flatten(0))
    return G, D


@pytest.mark.slow
def test_defaults_and_argument_checks():
    G, D = _tiny_pair()
    images = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    mask = make_mask("center", 4)
    a = complete(G, images, mask, 3, D)
    b = complete(G, images, mask, 3, D, steps=500, lr=0.05, prior_weight=0.003, restarts=4, seed=0)
    assert torch.equal(a.z, b.z) and torch.equal(a.completed, b.completed)
    assert a.z.shape == (2, 3) and a.loss.shape == (2,) and a.labels is None
    with torch.no_grad():
        assert torch.equal(to_uint8_images(G(a.z)), a.generated)  # z is the latent of the kept image
    assert all(p.grad is None for p in list(G.parameters()) + list(D.parameters()))  # only z was optimised
    for kwargs in ({"steps": 0}, {"restarts": 0}, {"lr": 0.0}, {"prior_weight": -1.0}):
        with pytest.raises(ConfigError, match="^complete needs steps >= 1, restarts >= 1, lr > 0 and prior_weight"):
            complete(G, images, mask, 3, **kwargs)
    assert complete(G, images, mask, 3, steps=1, restarts=1).completed.shape == images.shape
    with pytest.raises(TypeError, match="^complete expects uint8 \\(N, C, H, W\\) images$"):
        complete(G, images.float(), mask, 3)
    with pytest.raises(TypeError, match="complete expects uint8"):
        complete(G, images[0], mask, 3)
    with pytest.raises(ConfigError, match=r"mask is \(8, 8\) but the images are \(4, 4\)"):
        complete(G, images, make_mask("center", 8), 3)


def test_the_prior_term_changes_the_search_only_with_a_discriminator_and_weight():
    G, D = _tiny_pair(3)
    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)  # RGB
    mask = make_mask("left", 4)
    plain = complete(G, images, mask, 3, None, steps=50, restarts=2)
    weightless = complete(G, images, mask, 3, D, steps=50, restarts=2, prior_weight=0.0)
    with torch.no_grad():
        D[1].weight.fill_(5.0)
    pulled = complete(G, images, mask, 3, D, steps=50, restarts=2, prior_weight=10.0)
    assert torch.equal(plain.z, weightless.z) and not torch.equal(plain.z, pulled.z)
    from steadygan.apps.completion import _losses
    from steadygan.data import to_float_images

    with torch.no_grad():  # the reported loss is the one the search minimised, prior included
        again = _losses(G, D, pulled.z, None, to_float_images(images), mask, 10.0)
    assert pulled.loss.tolist() == pytest.approx(again.tolist(), rel=1e-5)
    assert plain.completed.shape == (2, 3, 4, 4)


def test_given_classes_are_kept_not_searched():
    class Shift(nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = nn.Parameter(torch.zeros(1))

        def forward(self, z, y):
            return torch.tanh(z[:, :1, None, None] * 0 + (y.float() - 1.5)[:, None, None, None]).expand(-1, 1, 4, 4)

    class ClassD(nn.Module):  # a conditional D: the prior must be scored for the searched class
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x, y):
            return self.w * y.float()

    target = to_uint8_images(Shift()(torch.zeros(2, 2), torch.tensor([3, 3])))
    given = complete(Shift(), target, make_mask("center", 4), 2, ClassD(), labels=torch.tensor([0, 1]),
                     num_classes=4, steps=2, restarts=1)
    assert given.labels.tolist() == [0, 1] and given.labels.dtype == torch.int64
    searched = complete(Shift(), target, make_mask("center", 4), 2, ClassD(), num_classes=4, steps=2, restarts=1)
    assert searched.labels.tolist() == [3, 3]


def test_a_colour_mask_png_is_read_as_grey(tmp_path):
    rgb = np.full((8, 8, 3), 255, np.uint8)
    rgb[2:6, 2:6] = (200, 0, 0)  # grey 60: dark, so to fill
    Image.fromarray(rgb).save(tmp_path / "mask.png")
    mask = make_mask(tmp_path / "mask.png", 8)
    expected = torch.ones(8, 8)
    expected[2:6, 2:6] = 0
    assert torch.equal(mask, expected.view(1, 1, 8, 8))


def test_a_mask_may_be_given_as_a_plain_height_by_width_tensor():
    G, _ = _tiny_pair()
    images = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(4, 4)
    mask[:, :2] = 0
    out = complete(G, images, mask, z_dim=3, steps=1, restarts=1)
    assert torch.equal(out.completed[..., 2:], images[..., 2:])  # known: the input's pixels
    assert torch.equal(out.completed[..., :2], out.generated[..., :2])  # unknown: the generator's
    with pytest.raises(ConfigError) as exc:
        complete(G, images, torch.ones(2, 2), z_dim=3, steps=1)
    assert str(exc.value) == "mask is (2, 2) but the images are (4, 4)"

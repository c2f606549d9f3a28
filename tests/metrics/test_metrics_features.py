"""Feature extractors: the cached dataset classifier, the FID Inception layout, pixels."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from steadygan.data import load_dataset, write_idx
from steadygan.errors import ConfigError
from steadygan.metrics import EXTRACTORS, FIDInceptionV3, build_extractor, dataset_fingerprint, features
from steadygan.metrics.features import InceptionExtractor, state_dict_sha256

TINY = dict(epochs=1, batch_size=32)


def _write_tiny_idx(root: Path, seed: int, n: int = 120) -> Path:
    """Labelled 28x28 images: a bright bar whose row encodes the label, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 + 2 * int(label):4 + 2 * int(label), 4:24] = 220
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte", images)
    write_idx(root / "train-labels-idx1-ubyte", labels)
    write_idx(root / "t10k-images-idx3-ubyte", images[: n // 3])
    write_idx(root / "t10k-labels-idx1-ubyte", labels[: n // 3])
    return root


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    return _write_tiny_idx(tmp_path / "data", seed=0)


def test_registry_lists_the_extractors_and_checks_options():
    assert {"classifier", "inception", "pixels", "identity"} <= set(EXTRACTORS.names())
    with pytest.raises(ConfigError, match="choose from"):
        build_extractor("vgg")
    with pytest.raises(ConfigError, match="no option"):
        build_extractor("pixels", size=3)


def test_pixels_flatten_and_scale_uint8():
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 1, 1, 3).repeat(4, 1, 2, 1)
    feats = build_extractor("pixels")(x, batch_size=3)
    assert feats.shape == (4, 6)
    assert torch.equal(feats[0], torch.tensor([-1.0, 1.0, 51 / 127.5 - 1] * 2))
    points = torch.randn(5, 2)
    assert torch.equal(build_extractor("identity")(points), points)
    record = build_extractor("identity").record()
    assert record["name"] == "identity" and record["weights_sha256"] == hashlib.sha256(b"").hexdigest()


@pytest.mark.slow
def test_classifier_is_cached_and_retrained_when_the_data_changes(tmp_path, tiny_root, monkeypatch):
    calls: list[int] = []
    real_train = features.train_classifier

    def counting(*args, **kwargs):
        calls.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(features, "train_classifier", counting)
    options = dict(dataset="idx", root=str(tiny_root), cache_dir=str(tmp_path / "cache"), **TINY)
    first = build_extractor("classifier", **options)
    assert len(calls) == 1
    [weights] = list((tmp_path / "cache").glob("*.pt"))
    meta = json.loads(weights.with_suffix(".json").read_text())
    train = load_dataset("idx", str(tiny_root), "train")
    test = load_dataset("idx", str(tiny_root), "test")
    assert meta["dataset_sha256"] == dataset_fingerprint(train)
    assert meta["weights_sha256"] == first.weights_sha256
    assert meta["weights_sha256"] == state_dict_sha256(torch.load(weights, weights_only=True))
    # The recorded accuracy is the network's accuracy on the test split.
    accuracy = (first.predict(test.samples) == test.labels).double().mean().item()
    assert meta["test_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert first.record()["test_accuracy"] == meta["test_accuracy"]

    def must_not_train(*args, **kwargs):
        raise AssertionError("the cached classifier was retrained")

    monkeypatch.setattr(features, "train_classifier", must_not_train)
    second = build_extractor("classifier", **options)
    assert second.weights_sha256 == first.weights_sha256
    assert torch.equal(second(train.samples), first(train.samples))

    _write_tiny_idx(tiny_root, seed=1)  # same name and shape, other bytes
    monkeypatch.setattr(features, "train_classifier", counting)
    third = build_extractor("classifier", **options)
    assert len(calls) == 2
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    assert third.record()["dataset_sha256"] != meta["dataset_sha256"]

    # A damaged cache entry is rebuilt, not trusted.
    third_meta = Path(third.record()["cache_file"]).with_suffix(".json")
    third_meta.write_text(third_meta.read_text().replace(third.weights_sha256, "0" * 64))
    with pytest.warns(UserWarning, match="unusable cached classifier"):
        build_extractor("classifier", **options)
    assert len(calls) == 3


def test_classifier_training_is_deterministic_and_leaves_global_rng_alone(tmp_path, tiny_root, monkeypatch):
    monkeypatch.setenv("STEADYGAN_CACHE", str(tmp_path / "env"))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_extractor("classifier", dataset="idx", root=str(tiny_root), **TINY)
    assert torch.equal(torch.get_rng_state(), before)
    assert len(list((tmp_path / "env" / "extractors").glob("*.pt"))) == 1  # the env var's cache
    b = build_extractor("classifier", dataset="idx", root=str(tiny_root), cache_dir=str(tmp_path / "other"), **TINY)
    assert a.weights_sha256 == b.weights_sha256  # trained twice from scratch, same weights


@pytest.mark.slow
def test_classifier_features_do_not_depend_on_batch_size_or_order(tmp_path, tiny_root):
    extractor = build_extractor("classifier", dataset="idx", root=str(tiny_root),
                                cache_dir=str(tmp_path / "cache"), **TINY)
    x = load_dataset("idx", str(tiny_root), "train").samples
    full = extractor(x, batch_size=len(x))
    assert full.shape == (len(x), 128)
    # Scaled to mean ||f||^2 / d = 1 on the training data (all 120 samples here).
    assert (full.double().pow(2).sum(1).mean() / 128).item() == pytest.approx(1.0, rel=1e-5)
    # Per-sample results from differently sized conv/matmul calls agree to float32
    # rounding (different kernels may sum in another order), not bit for bit.
    tol = 1e-5 * full.abs().max().item()
    for batch_size in (1, 7, 64):
        torch.testing.assert_close(extractor(x, batch_size=batch_size), full, rtol=0, atol=tol)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(extractor(x[perm], batch_size=7), full[perm], rtol=0, atol=tol)
    assert torch.equal(extractor.predict(x, batch_size=5), extractor.predict(x))
    with pytest.raises(ConfigError, match="expects samples of shape"):
        extractor(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))


def _lively_inception(seed: int = 0) -> FIDInceptionV3:
    # Default init makes activations vanish through 90 layers; He init keeps them O(1)
    # so that the determinism check compares real numbers, not zeros.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FIDInceptionV3()
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model


@pytest.mark.slow
def test_inception_layout_matches_the_pytorch_fid_weights_file():
    model = _lively_inception()
    state = model.state_dict()
    for key in ["Conv2d_1a_3x3.conv.weight", "Conv2d_1a_3x3.bn.running_var", "Conv2d_4a_3x3.conv.weight",
                "Mixed_5b.branch5x5_2.conv.weight", "Mixed_6a.branch3x3.conv.weight",
                "Mixed_6e.branch7x7dbl_5.bn.bias", "Mixed_7a.branch7x7x3_4.conv.weight",
                "Mixed_7c.branch3x3dbl_3b.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.weight"]:
        assert key in state, key
    assert tuple(state["Conv2d_1a_3x3.conv.weight"].shape) == (32, 3, 3, 3)
    assert tuple(state["Mixed_7c.branch_pool.conv.weight"].shape) == (192, 2048, 1, 1)
    assert tuple(state["fc.weight"].shape) == (1008, 2048)
    assert not any(k.startswith("AuxLogits") for k in state)
    # torchvision's InceptionV3 without aux head has 23,834,568 parameters; the FID one
    # differs only by its 1008-way fc (+8 x 2049).
    assert sum(p.numel() for p in model.parameters()) == 23_834_568 + 8 * 2049
    fresh = FIDInceptionV3()
    fresh.load_state_dict(state, strict=True)
    assert state_dict_sha256(fresh.state_dict()) == state_dict_sha256(state)


@pytest.mark.slow
def test_inception_features_shape_and_determinism():
    extractor = InceptionExtractor(_lively_inception())
    x = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)  # grayscale, small: resized to 299
    a = extractor(x)
    assert a.shape == (2, 2048) and torch.isfinite(a).all() and a.abs().max() > 1e-3
    assert torch.equal(extractor(x), a)
    assert not torch.allclose(a[0], a[1])


@pytest.mark.slow
def test_inception_loads_only_a_local_file(tmp_path):
    with pytest.raises(ConfigError, match=r"pt_inception-2015-12-05.*nothing is downloaded"):
        build_extractor("inception")
    with pytest.raises(ConfigError, match="no such file"):
        build_extractor("inception", weights=str(tmp_path / "missing.pth"))
    path = tmp_path / "weights.pth"
    torch.save(_lively_inception().state_dict(), path)
    extractor = build_extractor("inception", weights=str(path))
    record = extractor.record()
    assert record["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["weights_sha256"] == state_dict_sha256(torch.load(path, weights_only=True))
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(ConfigError, match="does not fit"):
        build_extractor("inception", weights=str(bad))

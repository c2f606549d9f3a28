"""`steadygan eval SAMPLES --ref REF`: folders, arrays, datasets and statistics files.

Tiny synthetic data (conftest.make_idx_dir: 96 train images, the test split their first
48) at 12x12 (8x8 in colour) wherever the pixels extractor is enough, since FID's
eigendecompositions grow as the cube of the pixel count; 16x16, the smallest size the dcgan
generator takes, for a run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from steadygan.cli import build_parser, main
from steadygan.config import Config
from steadygan.data import load_dataset
from steadygan.data.idx import load_idx_dataset
from steadygan.metrics import dataset_fingerprint
from steadygan.metrics.features import InceptionExtractor
from steadygan.metrics.inception import FIDInceptionV3, preprocess, to_unit_range
from steadygan.models import build_models
from steadygan.training.checkpoint import checkpoint_path, save_checkpoint

PIXELS = ["--extractor", "pixels"]


@pytest.fixture
def idx(tmp_path: Path, make_idx_dir) -> Path:
    return make_idx_dir(tmp_path / "idx", size=12)


@pytest.fixture
def idx16(tmp_path: Path, make_idx_dir) -> Path:
    return make_idx_dir(tmp_path / "idx16", size=16)


def _images(root: Path, split: str = "test") -> np.ndarray:
    """The split as stored: uint8 (N, 1, H, W)."""
    return load_idx_dataset(root, split)[0].numpy()


def _write_folder(folder: Path, images: np.ndarray, rgb_every: int = 0) -> Path:
    """One PNG per image (N, C, H, W); with ``rgb_every`` k, every k-th grayscale image is
    written as RGB with three equal channels."""
    folder.mkdir(parents=True)
    for i, x in enumerate(images):
        pixels = x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)
        img = Image.fromarray(pixels)
        if rgb_every and i % rgb_every == 0:
            img = img.convert("RGB")
        img.save(folder / f"{i:04d}.png")
    return folder


def _eval_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["eval", *args, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1  # one JSON object, nothing else on stdout
    return json.loads(out[0])


def _eval_error(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(["eval", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("steadygan eval: error: "), err
    return err[0]


def test_a_folder_and_an_array_of_the_same_images_score_identically(tmp_path, idx, capsys):
    gray = _images(idx)
    # Colour images, channels unlike each other, so a layout mix-up cannot go unnoticed; 8x8
    # crops holding the bright bar (the dataset reference is loaded at their size).
    colour = np.ascontiguousarray(np.concatenate([gray, 255 - gray, gray // 2], axis=1)[:, :, 2:10, 2:10])
    _write_folder(tmp_path / "colour", colour)
    np.save(tmp_path / "colour.npy", colour.transpose(0, 2, 3, 1))                              # uint8 NHWC
    np.savez(tmp_path / "colour.npz", samples=colour / 127.5 - 1, other=np.zeros(3))           # float NCHW
    runs = [_eval_json(capsys, str(tmp_path / name), "--ref", str(idx), *PIXELS, "--n", "40")
            for name in ("colour", "colour.npy", "colour.npz")]
    assert runs[0]["metrics"] == runs[1]["metrics"] == runs[2]["metrics"]
    assert [r["samples_source"]["kind"] for r in runs] == ["folder", "array", "array"]
    assert runs[0]["samples_source"]["shape"] == [3, 8, 8]

    # Grayscale saved partly as RGB (equal channels) is still the grayscale set.
    _write_folder(tmp_path / "mixed", gray, rgb_every=3)
    np.save(tmp_path / "gray.npy", gray.transpose(0, 2, 3, 1))
    mixed = _eval_json(capsys, str(tmp_path / "mixed"), "--ref", str(tmp_path / "gray.npy"), *PIXELS)
    plain = _eval_json(capsys, str(tmp_path / "gray.npy"), "--ref", str(tmp_path / "gray.npy"), *PIXELS)
    assert mixed["metrics"] == plain["metrics"]


def test_the_reference_data_itself_scores_the_floor(tmp_path, idx, capsys):
    folder = _write_folder(tmp_path / "test-split", _images(idx, "test"))
    # The test split as samples, n smaller than the split: the same subset as the floor's.
    result = _eval_json(capsys, str(folder), "--ref", str(idx), *PIXELS, "--n", "40")
    assert result["floor"] is not None and result["floor_note"] == "train split vs test split"
    assert result["metrics"] == result["floor"]
    assert result["samples"] == {"generated": 40, "real": 40, "real_test": 40}
    # A set scored against itself: FID 0, every sample inside the other set's balls.
    same = _eval_json(capsys, str(folder), "--ref", str(folder), *PIXELS)
    assert same["floor"] is None
    assert same["metrics"]["fid"] == pytest.approx(0.0, abs=1e-8)
    assert same["metrics"]["precision"] == same["metrics"]["recall"] == same["metrics"]["coverage"] == 1.0
    table = (main(["eval", str(folder), "--ref", str(folder), *PIXELS]), capsys.readouterr().out)[1]
    assert table.splitlines()[0].split() == ["metric", "GAN", "extractor"]   # no floor column
    assert "no floor: the reference is a folder of images" in table


def test_saved_statistics_score_like_the_reference_itself(tmp_path, idx, capsys):
    samples = tmp_path / "samples.npy"
    np.save(samples, _images(idx, "train")[::2].transpose(0, 2, 3, 1))
    train_folder = _write_folder(tmp_path / "train", _images(idx, "train"))
    for ref in (str(idx), str(train_folder)):
        stats = tmp_path / f"stats-{Path(ref).name}.pt"
        direct = _eval_json(capsys, str(samples), "--ref", ref, *PIXELS, "--n", "40", "--save-stats", str(stats))
        again = _eval_json(capsys, str(samples), "--ref", str(stats), "--n", "40")   # extractor from the file
        assert again["metrics"] == direct["metrics"]
        assert again["floor"] is None and again["reference"]["kind"] == "stats"
        saved = torch.load(stats, weights_only=True)
        assert saved["extractor"]["name"] == "pixels" and len(saved["extractor"]["weights_sha256"]) == 64
        assert saved["features"].shape == (40, 144) and saved["cov"].shape == (144, 144)
        assert torch.equal(saved["mean"], saved["features"].double().mean(0))
    # Saved without SAMPLES: the reference alone, at the dataset's own size, is the same file's worth.
    capsys.readouterr()
    assert main(["eval", "--ref", str(idx), *PIXELS, "--n", "40", "--save-stats", str(tmp_path / "alone.pt")]) == 0
    alone = _eval_json(capsys, str(samples), "--ref", str(tmp_path / "alone.pt"), "--n", "40")
    first = _eval_json(capsys, str(samples), "--ref", str(tmp_path / f"stats-{idx.name}.pt"), "--n", "40")
    assert alone["metrics"] == first["metrics"]


def test_statistics_of_another_extractor_are_refused(tmp_path, idx, capsys):
    stats = tmp_path / "stats.pt"
    assert main(["eval", "--ref", str(idx), *PIXELS, "--n", "40", "--save-stats", str(stats)]) == 0
    samples = _write_folder(tmp_path / "s", _images(idx))
    message = _eval_error(capsys, str(samples), "--ref", str(stats), "--extractor", "classifier")
    assert "pixels" in message and "classifier" in message
    # Same name, other weights: refused as well, both named by their sha256.
    saved = torch.load(stats, weights_only=True)
    saved["extractor"]["weights_sha256"] = "ab" * 32
    torch.save(saved, stats)
    message = _eval_error(capsys, str(samples), "--ref", str(stats))
    assert "pixels (weights sha256 abababababab)" in message and "pixels (weights sha256 e3b0c44298fc)" in message


def _bad_array(tmp_path: Path, name: str, array: np.ndarray) -> str:
    path = tmp_path / name
    np.save(path, array)
    return str(path)


@pytest.mark.parametrize("case, match", [
    ("mixed sizes", "images differ in size (0000.png is 12x12, 0001.png is 32x32)"),
    ("float out of range", "outside [-1, 1]"),
    ("float with NaN", "NaN"),
    ("int64", "dtype int64 is not supported"),
    ("rank 3", "has 3 dimensions; expected 4"),
    ("empty", "is empty"),
    ("uint8 channels first", "it looks channels-first"),
    ("two unnamed arrays", "holds 2 arrays"),
    ("colour against grayscale", "are in colour"),
    ("other size", "resize one set"),
    ("unlabelled reference", "add --classifier-data DATA"),
    ("unknown reference", "not a dataset name"),
    ("not a statistics file", "not a statistics file written by --save-stats"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, idx, capsys, case, match):
    gray = _images(idx)[:8]
    good = _bad_array(tmp_path, "good.npy", gray.transpose(0, 2, 3, 1))
    ref, extra = ["--ref", good], PIXELS
    if case == "mixed sizes":
        folder = _write_folder(tmp_path / "mixed", gray[:1])
        Image.new("L", (32, 32)).save(folder / "0001.png")
        samples = str(folder)
    elif case == "float out of range":
        samples = _bad_array(tmp_path, "a.npy", gray.astype(np.float32))        # 0..255 stored as float
    elif case == "float with NaN":
        samples = _bad_array(tmp_path, "a.npy", np.full((2, 1, 12, 12), np.nan, np.float32))
    elif case == "int64":
        samples = _bad_array(tmp_path, "a.npy", gray.astype(np.int64))
    elif case == "rank 3":
        samples = _bad_array(tmp_path, "a.npy", gray[:, 0])
    elif case == "empty":
        samples = _bad_array(tmp_path, "a.npy", np.zeros((0, 12, 12, 1), np.uint8))
    elif case == "uint8 channels first":
        samples = _bad_array(tmp_path, "a.npy", gray)
    elif case == "two unnamed arrays":
        samples = str(tmp_path / "a.npz")
        np.savez(samples, gray, gray)
    elif case == "colour against grayscale":
        samples = _bad_array(tmp_path, "a.npy", np.concatenate([gray, 255 - gray, gray], 1).transpose(0, 2, 3, 1))
    elif case == "other size":
        samples = _bad_array(tmp_path, "a.npy", np.zeros((8, 32, 32, 1), np.uint8))
    elif case == "unlabelled reference":
        samples, extra = good, []
    elif case == "unknown reference":
        samples, ref = good, ["--ref", "no-such-dataset"]
    else:
        torch.save({"mean": torch.zeros(3)}, tmp_path / "other.pt")
        samples, ref = good, ["--ref", str(tmp_path / "other.pt")]
    assert match in _eval_error(capsys, samples, *ref, *extra)


def _make_run(tmp_path: Path, idx: Path) -> Path:
    cfg = Config()
    cfg.data.name, cfg.data.root, cfg.data.resolution = "idx", str(idx), 16
    cfg.model.z_dim, cfg.model.width = 8, 8
    pair = build_models("dcgan", (1, 16, 16), 8, width=8)
    run = tmp_path / "run"
    save_checkpoint({"config": cfg.to_dict(), "generator": pair.generator.state_dict(), "ema": None, "step": 5},
                    checkpoint_path(run, 5))
    return run


def test_a_run_keeps_its_evaluation_and_can_be_scored_against_any_reference(tmp_path, idx16, capsys):
    idx = idx16
    run = _make_run(tmp_path, idx)
    stats = tmp_path / "run-data.pt"
    own = _eval_json(capsys, str(run), *PIXELS, "--n", "30", "--save-stats", str(stats))
    assert json.loads((run / "metrics.json").read_text()) == own       # written as before
    assert own["step"] == 5 and own["floor"] is not None
    (run / "metrics.json").unlink()
    # Against the statistics of its own data: the same numbers, no floor, nothing written.
    against = _eval_json(capsys, str(run), "--ref", str(stats), "--n", "30")
    assert against["metrics"] == own["metrics"] and against["step"] == 5 and against["floor"] is None
    assert not (run / "metrics.json").exists()
    # A folder reference: the classifier defaults to the run's own labelled data.
    monkey_cache = tmp_path / "cache"
    folder = _write_folder(tmp_path / "real", _images(idx, "train"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEADYGAN_CACHE", str(monkey_cache))
        result = _eval_json(capsys, str(run), "--ref", str(folder), "--n", "30", "--metrics", "fid")
    assert result["extractor"]["name"] == "classifier"
    assert result["extractor"]["dataset_sha256"] == dataset_fingerprint(load_dataset("idx", str(idx), "train", 16))


def test_classifier_data_trains_the_classifier_for_an_unlabelled_reference(tmp_path, idx16, capsys, monkeypatch):
    idx = idx16
    monkeypatch.setenv("STEADYGAN_CACHE", str(tmp_path / "cache"))
    folder = _write_folder(tmp_path / "real", _images(idx, "train"))
    samples = _write_folder(tmp_path / "samples", _images(idx, "test"))
    result = _eval_json(capsys, str(samples), "--ref", str(folder), "--classifier-data", str(idx), "--metrics",
                        "fid,pr")
    assert result["extractor"]["name"] == "classifier" and result["extractor"]["feature_dim"] == 128
    assert result["extractor"]["dataset_sha256"] == dataset_fingerprint(load_dataset("idx", str(idx), "train", 16))
    assert set(result["metrics"]) == {"fid", "precision", "recall"}


def _bilinear_reference(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (H, W) by hand, half-pixel centres (align_corners=False), no antialias:
    output pixel i samples the input at (i + 0.5) * in / out - 0.5, clamped at 0. That position
    is computed in float32 as PyTorch's kernel does (pytorch-fid calls the same kernel): in
    float64 it would differ by ~1e-4 at 600 px; the kernel's own float32 arithmetic still
    leaves a few 1e-6."""
    def weights(n_in: int) -> np.ndarray:
        m = np.zeros((size, n_in))
        ratio = np.float32(n_in) / np.float32(size)
        for i in range(size):
            src = max(ratio * (np.float32(i) + np.float32(0.5)) - np.float32(0.5), np.float32(0))
            lo = min(int(src), n_in - 1)
            hi = min(lo + 1, n_in - 1)
            frac = float(src - np.float32(lo))
            m[i, lo] += 1 - frac
            m[i, hi] += frac
        return m
    return weights(image.shape[0]) @ image.astype(np.float64) @ weights(image.shape[1]).T


def test_inception_preprocessing_follows_pytorch_fid():
    # 2x2 grayscale -> 299x299: values / 255, repeated to RGB, bilinear, then 2x - 1.
    tiny = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)
    x = preprocess(to_unit_range(tiny))
    assert x.shape == (1, 3, 299, 299) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    expected = 2 * _bilinear_reference(np.array([[0, 255], [51, 102]]) / 255, 299) - 1
    np.testing.assert_allclose(x[0, 0].double().numpy(), expected, rtol=0, atol=2e-6)
    # Corners are the corner pixels themselves: 0 -> -1, 255 -> 1, 51 -> 2 * 0.2 - 1.
    assert x[0, 0, 0, 0] == -1 and x[0, 0, 0, -1] == 1 and x[0, 0, -1, 0] == pytest.approx(-0.6, abs=1e-7)
    # Shrinking (a 600x450 colour image): plain bilinear, no antialiasing, per channel.
    big = torch.randint(0, 256, (1, 3, 600, 450), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    y = preprocess(to_unit_range(big))
    for c in range(3):
        expected = 2 * _bilinear_reference(big[0, c].numpy() / 255, 299) - 1
        np.testing.assert_allclose(y[0, c].double().numpy(), expected, rtol=0, atol=1e-5)
    # The extractor feeds the network pixels / 255 (generator floats in [-1, 1] as (x + 1) / 2).
    extractor = InceptionExtractor(FIDInceptionV3())
    assert torch.equal(extractor.prepare(tiny), tiny.float() / 255)
    assert torch.allclose(extractor.prepare(tiny.float() / 127.5 - 1), tiny.float() / 255, atol=1e-7)


def test_help_shows_the_new_forms():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["eval"]
    text = sub.format_help()
    for needle in ("[SAMPLES] [--ref REF] [--save-stats FILE] [--json]", "--classifier-data",
                   "steadygan eval my-samples/ --ref fashion-mnist", "--save-stats fm-stats.pt",
                   "uint8 (N, H, W, C)", "float (N, C, H, W) with values in [-1, 1]"):
        assert needle in text, needle


def test_without_n_the_reference_and_its_floor_use_as_many_images_as_the_samples(tmp_path, idx, capsys):
    few = _write_folder(tmp_path / "few", _images(idx, "test")[:30])
    result = _eval_json(capsys, str(few), "--ref", str(idx), *PIXELS, "--metrics", "fid")
    assert result["samples"] == {"generated": 30, "real": 30, "real_test": 30}


def test_a_statistics_file_given_as_inception_weights_is_named_in_one_line(tmp_path):
    from steadygan.errors import ConfigError
    from steadygan.metrics.features import build_extractor, inception
    from steadygan.metrics.stats import ReferenceStats, save_stats

    stats = ReferenceStats.from_features(torch.randn(5, 3), build_extractor("pixels"), None, (1, 4, 4),
                                         {"kind": "test"})
    path = save_stats(tmp_path / "stats.pt", stats)
    with pytest.raises(ConfigError) as exc:
        inception(str(path))
    message = str(exc.value)
    assert "\n" not in message and message.startswith(
        f"{path} is a statistics file written by --save-stats, not network weights: give it as --ref {path}")
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1), "other": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(ConfigError) as exc:
        inception(str(tmp_path / "w.pt"))
    assert "\n" not in str(exc.value) and "does not fit the FID InceptionV3: 0 of its 2 tensors match the network's" \
        in str(exc.value)

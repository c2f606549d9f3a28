"""evaluate_generator / evaluate_run: structure, floor, determinism, batch-size and order."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from steadygan.config import Config
from steadygan.data import load_dataset, ring8_modes
from steadygan.errors import ConfigError
from steadygan.metrics import Evaluator, build_extractor, dataset_fingerprint, format_table, score_features
from steadygan.models import build_models
from steadygan.training.build import build_evaluator
from steadygan.training.checkpoint import checkpoint_path, save_checkpoint
from steadygan.training.evaluation import evaluate_generator, evaluate_run
from steadygan.training.sampling import LoadedGenerator

ALL_KEYS = {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage"}


class PatternGenerator(nn.Module):
    """z -> clamp(z0 * pattern + 0.3 z1): elementwise, so each sample is bit-exact whatever
    the batch it is computed in; the pipeline's own batch-size dependence is what is tested."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.pattern = nn.Parameter(torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(seed)) - 0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z[:, :1, None, None] * self.pattern + 0.3 * z[:, 1:2, None, None]).clamp(-1, 1)


class RingGenerator(nn.Module):
    """Puts each sample on a ring8 mode chosen by z (or always mode 0), 0.001 noise."""

    def __init__(self, collapsed: bool = False) -> None:
        super().__init__()
        self.collapsed = collapsed
        self.modes = nn.Parameter(ring8_modes(), requires_grad=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        which = torch.zeros(len(z), dtype=torch.long) if self.collapsed else z[:, :8].argmax(1)
        return self.modes[which] + 0.001 * z[:, 8:10]


def _loaded(generator: nn.Module, name: str, root: Path | None, z_dim: int) -> LoadedGenerator:
    cfg = Config()
    cfg.data.name, cfg.data.root, cfg.model.z_dim = name, None if root is None else str(root), z_dim
    return LoadedGenerator(generator.eval(), z_dim, 0, name, cfg, step=7, checkpoint=Path("ckpt-00000007.pt"),
                           ema=False)


@pytest.mark.slow
def test_image_evaluation_reports_metrics_floor_and_provenance(data_root):
    result = evaluate_generator(_loaded(PatternGenerator(), "idx", data_root, 4), n=60, extractor="pixels")
    assert result["kind"] == "image" and result["step"] == 7 and result["seed"] == 0
    # 60 and 40 samples: every KID subset is the whole set, so its std is left out and a caveat says why.
    assert set(result["metrics"]) == ALL_KEYS - {"kid_std"} and set(result["floor"]) == ALL_KEYS - {"kid_std"}
    assert result["caveats"] == [
        "FID from 60 samples in 784 feature dimensions: the covariances are singular and FID is biased upward; "
        "compare it only with FID at the same n (at least 784; 10,000 is the usual protocol)",
        "KID from 60 and 60 samples, at most its subset size 1000: every subset is the whole set, so kid_std "
        "(the spread over subsets) is left out"]
    assert result["samples"] == {"generated": 60, "real": 60, "real_test": 40}
    assert result["extractor"]["name"] == "pixels" and len(result["extractor"]["weights_sha256"]) == 64
    # The floor depends on the data only, not on the generator.
    other = evaluate_generator(_loaded(PatternGenerator(seed=1), "idx", data_root, 4), n=60, extractor="pixels")
    assert other["floor"] == result["floor"] and other["metrics"] != result["metrics"]
    # These "generated" images look nothing like the data: worse than real-vs-real.
    assert result["metrics"]["fid"] > result["floor"]["fid"]
    assert result["metrics"]["precision"] < result["floor"]["precision"]
    only_fid = evaluate_generator(_loaded(PatternGenerator(), "idx", data_root, 4), metrics=["fid"], n=60,
                                  extractor="pixels")
    assert set(only_fid["metrics"]) == {"fid"} and only_fid["metrics"]["fid"] == result["metrics"]["fid"]


@pytest.mark.slow
def test_deterministic_given_seed_and_independent_of_batch_size(data_root):
    loaded = _loaded(PatternGenerator(), "idx", data_root, 4)
    torch.manual_seed(5)
    rng_before = torch.get_rng_state()
    a = evaluate_generator(loaded, n=60, extractor="pixels", batch_size=64)
    assert torch.equal(torch.get_rng_state(), rng_before)  # safe to call inside a training run
    b = evaluate_generator(loaded, n=60, extractor="pixels", batch_size=7)
    assert a["metrics"] == b["metrics"] and a["floor"] == b["floor"]
    c = evaluate_generator(loaded, n=60, extractor="pixels", seed=1)
    assert c["metrics"] != a["metrics"]


def test_scores_ignore_sample_order():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(150, 12, generator=g), torch.randn(120, 12, generator=g) * 1.2 + 0.2
    metrics = ("fid", "kid", "pr", "dc")
    reference = score_features(real, fake, metrics, kid_subsets=10, kid_subset_size=50)
    perm_r, perm_f = torch.randperm(150, generator=g), torch.randperm(120, generator=g)
    shuffled = score_features(real[perm_r], fake[perm_f], metrics, kid_subsets=10, kid_subset_size=50)
    assert shuffled.pop("fid") == pytest.approx(reference.pop("fid"), rel=1e-12)
    assert shuffled == reference


def test_classifier_extractor_is_built_for_the_runs_data(tmp_path, data_root):
    loaded = _loaded(PatternGenerator(), "idx", data_root, 4)
    result = evaluate_generator(loaded, n=50, metrics=["fid", "pr"],
                                extractor_options={"cache_dir": str(tmp_path / "cache"), "epochs": 1,
                                                   "batch_size": 32})
    record = result["extractor"]
    assert record["name"] == "classifier" and record["feature_dim"] == 128
    assert record["dataset_sha256"] == dataset_fingerprint(load_dataset("idx", str(data_root), "train"))
    assert 0.0 <= record["test_accuracy"] <= 1.0
    # The asked-for metrics, and class coverage: the classifier knows the data's labels.
    assert set(result["metrics"]) == {"fid", "precision", "recall", "classes_covered", "class_kl"}


@pytest.mark.slow
def test_evaluator_reuses_its_reference_features(data_root, monkeypatch):
    evaluator = Evaluator("idx", str(data_root), n=60, extractor=build_extractor("pixels"))
    first = evaluator.evaluate(_loaded(PatternGenerator(), "idx", data_root, 4))
    monkeypatch.setattr("steadygan.metrics.evaluate.load_dataset",
                        lambda *a, **k: pytest.fail("real data loaded twice"))
    second = evaluator.evaluate(_loaded(PatternGenerator(seed=2), "idx", data_root, 4))
    assert second["floor"] == first["floor"]
    with pytest.raises(ConfigError, match="trained on"):
        evaluator.evaluate(_loaded(RingGenerator(), "ring8", None, 10))


def test_toy_data_gets_mode_metrics():
    good = evaluate_generator(_loaded(RingGenerator(), "ring8", None, 10))
    assert good["kind"] == "toy" and good["samples"]["generated"] == 2500
    assert good["metrics"]["modes_recovered"] == 8 and good["metrics"]["high_quality_fraction"] == 1.0
    collapsed = evaluate_generator(_loaded(RingGenerator(collapsed=True), "ring8", None, 10))
    assert collapsed["metrics"]["modes_recovered"] == 1
    assert collapsed["metrics"]["kl_to_uniform"] == pytest.approx(math.log(8), rel=1e-12)
    # Floor: true mixture samples, 3-std radius holds 1 - exp(-4.5) of them.
    p = 1 - math.exp(-4.5)
    assert good["floor"]["modes_recovered"] == 8
    assert abs(good["floor"]["high_quality_fraction"] - p) < 4 * math.sqrt(p * (1 - p) / 2500)
    table = format_table(collapsed)
    assert "modes_recovered" in table and "real vs real" in table and "2.079" in table


def test_unknown_metric_is_a_config_error(data_root):
    with pytest.raises(ConfigError, match="choose from"):
        evaluate_generator(_loaded(PatternGenerator(), "idx", data_root, 4), metrics=["is"], extractor="pixels")


def test_evaluate_run_writes_strict_json(tmp_path, data_root):
    cfg = Config()
    cfg.data.name, cfg.data.root = "idx", str(data_root)
    cfg.model.z_dim, cfg.model.width = 8, 8
    pair = build_models("dcgan", (1, 28, 28), 8, width=8)
    run_dir = tmp_path / "run"
    save_checkpoint({"config": cfg.to_dict(), "generator": pair.generator.state_dict(), "ema": None, "step": 12},
                    checkpoint_path(run_dir, 12))
    result = evaluate_run(run_dir, n=50, extractor="pixels")

    def no_nan(value):
        raise AssertionError(f"non-standard JSON constant {value}")

    written = json.loads((run_dir / "metrics.json").read_text(), parse_constant=no_nan)
    assert written == result
    assert written["step"] == 12 and written["checkpoint"].endswith("ckpt-00000012.pt")
    table = format_table(result)
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "GAN", "real", "vs", "real", "extractor"]
    fid_row = next(line for line in lines if line.startswith("fid "))
    assert f"{result['metrics']['fid']:.4g}" in fid_row and f"{result['floor']['fid']:.4g}" in fid_row
    assert "pixels" in fid_row


@pytest.mark.slow
def test_without_a_separate_test_split_the_floor_uses_disjoint_halves(data_root):
    for kind in ("images", "labels"):  # make the test split a copy of the train split
        rank = 3 if kind == "images" else 1
        train_file = data_root / f"train-{kind}-idx{rank}-ubyte"
        (data_root / f"t10k-{kind}-idx{rank}-ubyte").write_bytes(train_file.read_bytes())
    result = evaluate_generator(_loaded(PatternGenerator(), "idx", data_root, 4), n=100, extractor="pixels")
    assert result["samples"] == {"generated": 100, "real": 60, "real_test": 60}
    assert "disjoint" in result["floor_note"]
    assert result["floor"]["fid"] > 0  # not a set compared with itself


class ConstantGenerator(nn.Module):
    """Every sample is the same image: a generator collapsed onto one mode."""

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__()
        self.image = nn.Parameter(image, requires_grad=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.image.expand(len(z), *self.image.shape)


@pytest.mark.slow
def test_stacked_data_counts_digit_triples(tmp_path, data_root):
    from steadygan.metrics.features import StackedExtractor

    stacked = load_dataset("stacked", str(data_root), "train", channels=3)
    collapsed = ConstantGenerator(stacked.samples[0].float() / 127.5 - 1)
    loaded = _loaded(collapsed, "stacked", data_root, 4)
    loaded.config.data.channels = 3
    options = {"cache_dir": str(tmp_path / "cache"), "epochs": 1, "batch_size": 32}
    evaluator = build_evaluator(loaded.config, metrics=["fid"], n=100, extractor_options=options)
    result = evaluator.evaluate(loaded)
    # One image repeated is one predicted triple, whatever the classifier: 1 mode, KL = log 1000.
    assert result["metrics"]["modes"] == 1
    assert result["metrics"]["kl_to_uniform"] == pytest.approx(math.log(1000), rel=1e-9)
    assert 1 < result["floor"]["modes"] <= 100       # 100 real stacks hold many triples
    # Features: the single-channel classifier's features of each channel, side by side.
    extractor = evaluator.extractor
    assert isinstance(extractor, StackedExtractor) and extractor.feature_dim == 3 * 128
    x = stacked.samples[:5]
    feats = extractor(x)
    for c in range(3):
        assert torch.allclose(feats[:, 128 * c:128 * (c + 1)], extractor.base(x[:, c:c + 1]), atol=1e-6)


def test_kid_std_is_kept_where_the_subsets_differ_and_the_caveats_follow_the_counts():
    from steadygan.metrics.evaluate import sample_caveats

    rng = torch.Generator().manual_seed(0)
    small, large = torch.randn(30, 4, generator=rng), torch.randn(60, 4, generator=rng)
    assert "kid_std" not in score_features(small, large, ("kid",), kid_subset_size=60)
    spread = score_features(small, large, ("kid",), kid_subset_size=20)["kid_std"]  # subsets of 20 of 30 and 60
    assert spread > 0
    assert sample_caveats(2000, 2000, 128, ("fid", "kid", "pr")) == []
    assert sample_caveats(100, 5000, 128, ("kid", "pr")) == []  # KID's subsets of the 5000 differ: no caveat
    assert [c.split(":")[0] for c in sample_caveats(100, 100, 128, ("fid", "kid"))] == [
        "FID from 100 samples in 128 feature dimensions", "KID from 100 and 100 samples, at most its subset size 1000"]
    assert sample_caveats(128, 128, 128, ("fid",)) == [] and sample_caveats(127, 200, 128, ("pr",)) == []


def test_the_table_prints_the_caveats_after_the_numbers():
    result = {"kind": "image", "metrics": {"fid": 1.0}, "floor": None, "floor_note": "a folder", "seed": 0,
              "samples": {"generated": 6}, "extractor": {"name": "pixels", "weights_sha256": "0" * 64},
              "caveats": ["FID from 6 samples"]}
    assert format_table(result).splitlines()[-1] == "caveat: FID from 6 samples"

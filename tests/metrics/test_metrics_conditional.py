"""Class agreement and intra-class FID: against hand computations and an oracle classifier."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from steadygan.config import Config
from steadygan.data import DataInfo, load_dataset, to_float_images
from steadygan.metrics.conditional import class_agreement, class_coverage, class_histogram, intra_class_fid
from steadygan.metrics.features import ClassifierExtractor, SmallCNN
from steadygan.metrics.fid import fid
from steadygan.training.build import build_evaluator
from steadygan.training.sampling import LoadedGenerator


def test_class_agreement_by_hand():
    assert class_agreement(torch.tensor([1, 2, 3, 3]), torch.tensor([1, 0, 3, 2])) == 0.5
    with pytest.raises(ValueError, match="equal-length"):
        class_agreement(torch.tensor([1, 2]), torch.tensor([1]))
    for bad in (torch.tensor([], dtype=torch.long), torch.zeros(2, 2, dtype=torch.long)):
        with pytest.raises(ValueError, match="1-D label tensors"):
            class_agreement(bad, bad)
    assert class_agreement(torch.tensor([4]), torch.tensor([4])) == 1.0  # one sample is enough


def test_intra_class_fid_is_the_mean_of_per_class_fids():
    g = torch.Generator().manual_seed(0)
    real, other = torch.randn(60, 3, generator=g), torch.randn(50, 3, generator=g) + 0.5
    real_y, other_y = torch.arange(60) % 3, torch.arange(50) % 3
    expected = sum(fid(real[real_y == k], other[other_y == k]) for k in range(3)) / 3
    assert intra_class_fid(real, real_y, other, other_y, 3) == pytest.approx(expected, rel=1e-9)
    assert intra_class_fid(real, real_y, other, other_y % 2, 3) != intra_class_fid(real, real_y, other, other_y, 3)
    assert math.isnan(intra_class_fid(real, real_y, other[:4], other_y[:4], 3))  # class 2: one sample
    assert math.isnan(intra_class_fid(real[:4], real_y[:4], other, other_y, 3))
    two_each = intra_class_fid(real[:6], real_y[:6], other[:6], other_y[:6], 3)  # two per class: enough
    assert math.isfinite(two_each)


def band_label(images: torch.Tensor) -> torch.Tensor:
    """The fixture's labels: a band at rows 2+2k..3+2k."""
    x = images.float()
    rows = x.mean(dim=(1, 3)) if x.ndim == 4 else x.mean(2)
    return torch.stack([rows[:, 2 + 2 * k:4 + 2 * k].mean(1) for k in range(10)], 1).argmax(1)


class OracleClassifier(ClassifierExtractor):
    """Predicts the fixture's label exactly; features are the image's row profile."""

    def __init__(self) -> None:
        super().__init__(SmallCNN(1, 10, 28), {"channels": 1, "resolution": 28, "name": "oracle"})

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 3))

    def predict(self, samples: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        return band_label(samples)


class Replay(nn.Module):
    """Returns a training image of the requested class (which one is chosen by z)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, ignore_class: bool = False,
                 ignore_z: bool = False) -> None:
        super().__init__()
        self.images, self.labels, self.ignore, self.ignore_z = to_float_images(images), labels, ignore_class, ignore_z
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.ignore:
            y = torch.zeros_like(y)
        pick = []
        for zi, yi in zip(z[:, 0], y):
            idx = (self.labels == yi).nonzero().flatten()
            pick.append(idx[0 if self.ignore_z else int(zi.abs() * 1000) % len(idx)])
        return self.images[torch.stack(pick)]


@pytest.mark.parametrize("ignore_class", [False, True])
def test_evaluator_reports_conditional_metrics_with_their_floor(data_root, ignore_class):  # noqa: F811
    data = load_dataset("idx", str(data_root))
    cfg = Config()
    cfg.data.name, cfg.data.root, cfg.model.z_dim, cfg.model.conditional = "idx", str(data_root), 4, True
    info = DataInfo("idx", "image", (1, 28, 28), data.num_classes, "image")
    loaded = LoadedGenerator(Replay(data.samples, data.labels, ignore_class), 4, data.num_classes, "idx", cfg, 1,
                             Path("x.pt"), False, info)
    evaluator = build_evaluator(cfg, metrics=("fid",), n=100, extractor=OracleClassifier())
    result = evaluator.evaluate(loaded)
    assert result["floor"]["class_agreement"] == 1.0  # the oracle is right on real test images
    requested = loaded.labels_for(100)
    if ignore_class:  # every sample is class 0: agreement is the share of class 0 requested
        assert result["metrics"]["class_agreement"] == pytest.approx((requested == 0).float().mean().item())
        assert result["metrics"]["intra_fid"] > 10 * result["floor"]["intra_fid"]
    else:
        assert result["metrics"]["class_agreement"] == 1.0
        assert result["metrics"]["intra_fid"] < result["floor"]["intra_fid"] * 3


def test_class_coverage_by_hand():
    data = torch.tensor([0.5, 0.25, 0.25])
    # Matching histograms: every class covered, KL 0.
    assert class_coverage(torch.tensor([0, 0, 1, 2]), data) == {"classes_covered": 3.0, "class_kl": 0.0}
    # One class only: KL = log(1 / 0.25); the others are not covered.
    one = class_coverage(torch.tensor([2, 2, 2]), data)
    assert one["classes_covered"] == 1.0 and one["class_kl"] == pytest.approx(math.log(4))
    # Class 1 drawn at 1/40 = 10% of its share (0.25): covered; class 2 never: not.
    shares = torch.tensor([0] * 39 + [1])
    result = class_coverage(shares, data)
    kl = 39 / 40 * math.log(39 / 40 / 0.5) + 1 / 40 * math.log(1 / 40 / 0.25)
    assert result["classes_covered"] == 2.0 and result["class_kl"] == pytest.approx(kl)
    for bad_hist in (torch.tensor([0.5, 0.4]), torch.ones(2, 2) / 4):
        with pytest.raises(ValueError, match="^need 1-D predicted classes and a class histogram that sums to 1$"):
            class_coverage(torch.tensor([0]), bad_hist)
    with pytest.raises(ValueError, match="need 1-D predicted"):
        class_coverage(torch.tensor([], dtype=torch.long), data)
    with pytest.raises(ValueError, match="^predicted class 5 is outside the data's 3 classes$"):
        class_coverage(torch.tensor([5]), data)
    # A class the data does not have is never counted as covered, even when not drawn either.
    assert class_coverage(torch.tensor([0, 1]), torch.tensor([0.5, 0.5, 0.0]))["classes_covered"] == 2.0
    # The histogram has num_classes entries even when the last classes have no label.
    assert class_histogram(torch.tensor([0, 0, 1]), 4).tolist() == pytest.approx([2 / 3, 1 / 3, 0, 0])


@pytest.mark.parametrize("one_class", [False, True])
def test_evaluator_reports_class_coverage_of_any_generator_on_labelled_data(data_root, one_class):  # noqa: F811
    """An unconditional generator replaying training images: of every class, or only of
    class 0 (a collapse that FID alone would call mild on this data)."""
    data = load_dataset("idx", str(data_root))
    cfg = Config()
    cfg.data.name, cfg.data.root, cfg.model.z_dim = "idx", str(data_root), 4
    labels = torch.zeros_like(data.labels) if one_class else data.labels
    replay = Replay(data.samples, data.labels)
    generator = lambda z: replay(z, labels[torch.arange(len(z)) % len(labels)])  # noqa: E731
    module = nn.Module()
    module.forward, module.dummy = generator, nn.Parameter(torch.zeros(1))
    loaded = LoadedGenerator(module, 4, 0, "idx", cfg, 1, Path("x.pt"), False)
    result = build_evaluator(cfg, metrics=("fid",), n=60, extractor=OracleClassifier()).evaluate(loaded)
    hist = class_histogram(data.labels, data.num_classes)
    assert result["floor"]["classes_covered"] == (hist > 0).sum().item()
    drawn = labels[torch.arange(60) % len(labels)]
    expected = class_coverage(drawn, hist)  # the oracle sees exactly the classes replayed
    assert result["metrics"]["classes_covered"] == expected["classes_covered"]
    assert result["metrics"]["class_kl"] == pytest.approx(expected["class_kl"])
    if one_class:
        assert result["metrics"]["classes_covered"] == 1 and result["metrics"]["class_kl"] > math.log(2)
    else:
        assert result["metrics"]["class_kl"] < 0.2


def test_the_evaluator_gives_the_health_probe_the_class_kl_of_its_images(data_root):  # noqa: F811
    data = load_dataset("idx", str(data_root))
    cfg = Config()
    cfg.data.name, cfg.data.root = "idx", str(data_root)
    evaluator = build_evaluator(cfg, metrics=("fid",), n=60, extractor=OracleClassifier())
    hist = class_histogram(data.labels, data.num_classes)
    images = to_float_images(data.samples[data.labels == data.labels[0]])  # one class only
    assert evaluator.class_kl(images) == pytest.approx(class_coverage(data.labels[data.labels == data.labels[0]],
                                                                      hist)["class_kl"])
    assert evaluator.class_kl(images) > math.log(2)
    assert evaluator.class_kl(to_float_images(data.samples)) == pytest.approx(0.0, abs=1e-12)  # the data itself
    toy = Config()
    toy.data.name = "ring8"
    assert build_evaluator(toy).class_kl(torch.randn(10, 2)) is None  # no classes: no signal


def test_a_conditional_generator_that_ignores_z_is_flagged(data_root):
    from steadygan.metrics.evaluate import format_table

    data = load_dataset("idx", str(data_root))
    cfg = Config()
    cfg.data.name, cfg.data.root, cfg.model.z_dim, cfg.model.conditional = "idx", str(data_root), 4, True
    info = DataInfo("idx", "image", (1, 28, 28), data.num_classes, "image")
    results = {}
    for ignore_z in (False, True):
        loaded = LoadedGenerator(Replay(data.samples, data.labels, ignore_z=ignore_z), 4, data.num_classes, "idx",
                                 cfg, 1, Path("x.pt"), False, info)
        results[ignore_z] = build_evaluator(cfg, metrics=("fid",), n=120, extractor=OracleClassifier()).evaluate(
            loaded)
    varied, collapsed = results[False], results[True]
    assert varied["metrics"]["class_agreement"] == collapsed["metrics"]["class_agreement"] == 1.0  # the classes alike
    assert varied["metrics"]["class_diversity_min"] > 0.5 and "flags" not in varied
    assert collapsed["metrics"]["class_diversity"] == collapsed["metrics"]["class_diversity_min"] == 0.0
    assert collapsed["flags"] == ["within-class collapse: the least varied class's samples are 0.00 as varied as "
                                  "its real images (mean over classes 0.00): the generator draws the classes but "
                                  "ignores its noise"]
    assert format_table(collapsed).splitlines()[-1] == f"flag: {collapsed['flags'][0]}"


class ReplayOneClassStuck(Replay):
    """Replay, except that class ``stuck`` always returns the same image."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, stuck: int) -> None:
        super().__init__(images, labels)
        self.stuck = stuck

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = torch.where((y == self.stuck)[:, None], torch.zeros_like(z), z)
        return super().forward(z, y)


def test_eval_names_the_class_whose_recall_is_gone(striped_idx):
    from steadygan.metrics.evaluate import format_table

    data_root = striped_idx(400, 200)  # 20 test images a class: a floor each
    data = load_dataset("idx", str(data_root))
    cfg = Config()
    cfg.data.name, cfg.data.root, cfg.model.z_dim, cfg.model.conditional = "idx", str(data_root), 4, True
    info = DataInfo("idx", "image", (1, 28, 28), data.num_classes, "image")
    loaded = LoadedGenerator(ReplayOneClassStuck(data.samples, data.labels, stuck=3), 4, data.num_classes, "idx",
                             cfg, 1, Path("x.pt"), False, info)
    evaluator = build_evaluator(cfg, metrics=("fid",), n=200, extractor=OracleClassifier())
    result = evaluator.evaluate(loaded)
    recall, floor = result["by_class"]["recall"], result["by_class"]["floor_recall"]
    assert len(recall) == len(floor) == data.num_classes
    # The per-class lists are what the summary figures summarise.
    assert sum(recall) / len(recall) == pytest.approx(result["metrics"]["class_recall"])
    assert min(recall) == result["metrics"]["class_recall_min"] == recall[3]
    assert sum(floor) / len(floor) == pytest.approx(result["floor"]["class_recall"])
    # One image k times over: its k-NN balls have radius 0, so only a real copy of that very
    # image (at most one in the reference) can lie inside.
    real_class_3 = int((evaluator.reference()["real_labels"] == 3).sum())
    assert recall[3] <= 1 / real_class_3 and min(r for k, r in enumerate(recall) if k != 3) > 0.5
    line = next(x for x in format_table(result).splitlines() if x.startswith("class recall (GAN / real vs real): "))
    assert f"3: {recall[3]:.4g} / {floor[3]:.4g}" in line and line.count(", ") == data.num_classes - 1
    from steadygan.metrics.evaluate import json_safe

    assert json.loads(json.dumps(json_safe(result), allow_nan=False))["by_class"] == result["by_class"]


def test_eval_leaves_the_per_class_line_out_when_a_class_is_too_small(data_root):
    # The fixture's test split has about 4 images a class, under the 6 coverage's balls need:
    # no per-class floor, so no by_class (and the summary figures are NaN, not made up).
    from steadygan.metrics.evaluate import format_table, json_safe

    data = load_dataset("idx", str(data_root))
    cfg = Config()
    cfg.data.name, cfg.data.root, cfg.model.z_dim, cfg.model.conditional = "idx", str(data_root), 4, True
    info = DataInfo("idx", "image", (1, 28, 28), data.num_classes, "image")
    loaded = LoadedGenerator(Replay(data.samples, data.labels), 4, data.num_classes, "idx", cfg, 1, Path("x.pt"),
                             False, info)
    result = build_evaluator(cfg, metrics=("fid",), n=100, extractor=OracleClassifier()).evaluate(loaded)
    assert "by_class" not in result and math.isnan(result["floor"]["class_recall_min"])
    assert "class recall (GAN / real vs real)" not in format_table(result)
    json.dumps(json_safe(result), allow_nan=False)  # what eval writes: strict JSON

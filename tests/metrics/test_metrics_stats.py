"""Reference statistics files (metrics/stats.py): an exact round trip of every field, a load
that runs no code, and the whole text of each refusal."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from steadygan.data import DataError
from steadygan.errors import ConfigError
from steadygan.metrics.stats import ReferenceStats, check_same_extractor, describe_extractor, load_stats, save_stats


class FakeExtractor:
    """Only what ``from_features`` reads: the record, with values JSON does not know."""

    def record(self):
        return {"name": "classifier", "weights_sha256": "ab" * 32, "feature_dim": np.int64(4),
                "data": Path("/data/fmnist")}


class NotAllowed:
    """A class a weights-only load refuses to build."""


def stats_of(n: int = 6, d: int = 4, seed: int = 0) -> ReferenceStats:
    features = torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d)))  # float64 in, float32 kept
    return ReferenceStats.from_features(features, FakeExtractor(), {"name": "classifier", "size": np.int64(28)},
                                        (np.int64(1), 28, 28), {"kind": "dataset", "root": Path("/data")})


def test_a_statistics_file_round_trips_every_field(tmp_path):
    stats = stats_of()
    assert stats.features.dtype == torch.float32
    assert stats.extractor == {"name": "classifier", "weights_sha256": "ab" * 32, "feature_dim": "4",
                               "data": "/data/fmnist"}  # JSON values (others as text): a weights-only load reads them
    assert stats.recipe == {"name": "classifier", "size": "28"} and stats.shape == (1, 28, 28)
    assert stats.source == {"kind": "dataset", "root": "/data"}
    path = save_stats(tmp_path / "ref.pt", stats)
    loaded = load_stats(path)
    assert torch.equal(loaded.features, stats.features)
    assert np.array_equal(loaded.mean, stats.mean) and np.array_equal(loaded.cov, stats.cov)
    assert loaded.mean.dtype == loaded.cov.dtype == np.float64
    assert (loaded.extractor, loaded.recipe, loaded.shape, loaded.source, loaded.path) == (
        stats.extractor, stats.recipe, stats.shape, stats.source, str(path))
    raw = torch.load(path, weights_only=True)
    assert raw["recipe"] == stats.recipe and raw["source"] == stats.source
    datetime.datetime.strptime(raw["created"], "%Y-%m-%dT%H:%M:%S")  # ISO date and time, or ValueError


def test_a_file_without_recipe_or_source_loads_with_none_and_an_empty_source(tmp_path):
    stats = stats_of()
    stats.recipe, stats.source = None, {}
    path = save_stats(tmp_path / "ref.pt", stats)
    raw = torch.load(path, weights_only=True)
    del raw["source"]
    torch.save(raw, path)
    loaded = load_stats(path)
    assert loaded.recipe is None and loaded.source == {}


def test_a_file_that_needs_code_to_load_is_refused(tmp_path):
    path = save_stats(tmp_path / "ref.pt", stats_of())
    raw = torch.load(path, weights_only=True)
    raw["source"] = {"made_by": NotAllowed()}  # a pickle that would build an object when loaded
    torch.save(raw, path)
    with pytest.raises(DataError) as exc:
        load_stats(path)
    assert str(exc.value) == (f"{path}: not a statistics file written by --save-stats (UnpicklingError); a file "
                              "REF is such a file or an .npy/.npz array")


def test_other_files_and_versions_are_refused_with_their_whole_text(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"format": "something-else"}, path)
    with pytest.raises(DataError) as exc:
        load_stats(path)
    assert str(exc.value) == (f"{path}: not a statistics file written by --save-stats; a file REF is such a file "
                              "or an .npy/.npz array")
    torch.save({"format": "steadygan-reference-stats", "version": 2}, path)
    with pytest.raises(DataError) as exc:
        load_stats(path)
    assert str(exc.value) == (f"{path}: statistics format version 2; this steadygan reads version 1: save the "
                              "statistics again")


@pytest.mark.parametrize("change,reason", [
    (dict(features=torch.zeros(1, 4), mean=torch.zeros(4), cov=torch.zeros(4, 4)),
     "features (1, 4), mean (4,), cov (4, 4)"),
    (dict(mean=torch.zeros(3)), "features (6, 4), mean (3,), cov (4, 4)"),
    (dict(cov=torch.zeros(4, 3)), "features (6, 4), mean (4,), cov (4, 3)"),
    (dict(shape=[1, 28]), "image shape (1, 28)"),
])
def test_a_damaged_file_is_refused_naming_what_is_wrong(tmp_path, change, reason):
    path = save_stats(tmp_path / "ref.pt", stats_of())
    raw = torch.load(path, weights_only=True)
    raw.update(change)
    torch.save(raw, path)
    with pytest.raises(DataError) as exc:
        load_stats(path)
    assert str(exc.value) == f"{path}: damaged statistics file ({reason}); save it again"


def test_two_reference_images_are_enough(tmp_path):
    assert load_stats(save_stats(tmp_path / "ref.pt", stats_of(n=2))).features.shape == (2, 4)


def test_saving_into_a_missing_folder_creates_it_as_every_command_does(tmp_path):
    path = save_stats(tmp_path / "new" / "folder" / "ref.pt", stats_of())
    assert path == tmp_path / "new" / "folder" / "ref.pt"
    assert load_stats(path).features.shape == stats_of().features.shape


def test_extractors_are_described_by_name_and_weights():
    assert describe_extractor({"name": "inception", "weights_sha256": "0123456789abcdef"}) == \
        "inception (weights sha256 0123456789ab)"
    assert describe_extractor({"name": "pixels", "weights_sha256": None}) == "pixels"
    assert describe_extractor({}) == "?"


def test_another_extractor_is_refused_naming_both_and_the_option_to_use():
    stats = stats_of()
    check_same_extractor(stats, {"name": "classifier", "weights_sha256": "ab" * 32})
    check_same_extractor(stats, {"name": "classifier"})  # a name alone, before the extractor is built
    with pytest.raises(ConfigError) as exc:
        check_same_extractor(stats, {"name": "pixels"})
    assert str(exc.value) == (
        "the statistics file holds features of classifier (weights sha256 abababababab), but this evaluation uses "
        "pixels: features of different extractors are not comparable (score with --extractor classifier and the "
        "weights that made the file (a retrained classifier differs), or save the statistics again here with "
        "--save-stats)")
    stats.path, stats.recipe = "ref.pt", {"name": "classifier-retrained"}
    with pytest.raises(ConfigError, match=r"^ref\.pt holds features .* --extractor classifier-retrained and"):
        check_same_extractor(stats, {"name": "classifier", "weights_sha256": "cd" * 32})
    stats.recipe = None  # the record's name is the option then
    with pytest.raises(ConfigError, match="--extractor classifier and"):
        check_same_extractor(stats, {"name": "pixels"})

"""data.name=pairs: side-by-side A|B images and A/ + B/ folders, their splits and their errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from steadygan.cli import main
from steadygan.data import DataError, load_dataset
from steadygan.training.build import load_config
from steadygan.training.checkpoint import load_checkpoint
from steadygan.training.trainer import train


def _pair(value: int, size: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """An input of grey level ``value`` and its target, the inverse level: each pair's own."""
    return np.full((size, size), value, np.uint8), np.full((size, size), 255 - value, np.uint8)


def _side_by_side(folder, values):
    folder.mkdir(parents=True)
    for v in values:
        a, b = _pair(v)
        Image.fromarray(np.concatenate([a, b], 1)).save(folder / f"{v:03d}.png")


def _two_folders(folder, values, ext_b=".png"):
    for side in ("A", "B"):
        (folder / side).mkdir(parents=True)
    for v in values:
        a, b = _pair(v)
        Image.fromarray(a).save(folder / "A" / f"{v:03d}.png")
        Image.fromarray(b).save(folder / "B" / f"{v:03d}{ext_b}")


def _check_pairs(data, values):
    assert len(data) == len(values)
    inputs, targets = data.conditions[:, 0, 0, 0].tolist(), data.samples[:, 0, 0, 0].tolist()
    assert sorted(inputs) == sorted(values) and all(t == 255 - i for i, t in zip(inputs, targets))


def test_side_by_side_images_split_into_input_and_target(tmp_path):
    _side_by_side(tmp_path / "train", [10, 20, 30])
    _side_by_side(tmp_path / "val", [40])
    _check_pairs(load_dataset("pairs", str(tmp_path), "train", 8, 1), [10, 20, 30])
    _check_pairs(load_dataset("pairs", str(tmp_path), "test", 8, 1), [40])  # val/ stands in for test/


def test_two_folders_are_matched_by_name_whatever_the_extension(tmp_path):
    _two_folders(tmp_path, [50, 60, 70], ext_b=".jpg")
    data = load_dataset("pairs", str(tmp_path), "train", 12, 3)
    assert data.samples.shape == (3, 3, 12, 12) and data.info.condition_shape == (3, 12, 12)
    assert data.conditions[:, 0, 0, 0].tolist() == [50, 60, 70]
    assert all(abs(t - (255 - v)) <= 2 for t, v in zip(data.samples[:, 0, 0, 0].tolist(), [50, 60, 70]))  # JPEG


def test_unmatched_names_mixed_sizes_and_missing_sides_are_one_line_errors(tmp_path):
    _two_folders(tmp_path / "x", [1, 2])
    (tmp_path / "x" / "A" / "002.png").rename(tmp_path / "x" / "A" / "009.png")
    with pytest.raises(DataError, match=r"1 only in A/ \(009\); 1 only in B/ \(002\)"):
        load_dataset("pairs", str(tmp_path / "x"), "train", 8, 1)
    _two_folders(tmp_path / "y", [1])
    Image.fromarray(np.zeros((6, 12), np.uint8)).save(tmp_path / "y" / "B" / "001.png")
    with pytest.raises(DataError, match="A/ has it at 12x12 px, B/ at 12x6"):
        load_dataset("pairs", str(tmp_path / "y"), "train", 8, 1)
    (tmp_path / "z" / "A").mkdir(parents=True)
    with pytest.raises(DataError, match="has A/ but no B/"):
        load_dataset("pairs", str(tmp_path / "z"), "train", 8, 1)
    _side_by_side(tmp_path / "w", [5])
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / "w" / "square.png")
    with pytest.raises(DataError, match="square.png: 12x12 px is not two square halves side by side"):
        load_dataset("pairs", str(tmp_path / "w"), "train", 8, 1)


def test_one_split_folder_without_the_other_is_refused_rather_than_read_with_the_root(tmp_path):
    _side_by_side(tmp_path / "a" / "train", [10])
    with pytest.raises(DataError, match=r"has train/ but no test/ \(or val/\)"):
        load_dataset("pairs", str(tmp_path / "a"), "test", 8, 1)
    _side_by_side(tmp_path / "b", [10])
    _side_by_side(tmp_path / "b" / "test", [20])
    with pytest.raises(DataError, match="has test/ but no train/"):
        load_dataset("pairs", str(tmp_path / "b"), "train", 8, 1)
    _side_by_side(tmp_path / "c", [10, 20])  # no split folder: every split is the whole set
    _check_pairs(load_dataset("pairs", str(tmp_path / "c"), "test", 8, 1), [10, 20])


@pytest.mark.slow
def test_a_translation_run_trains_on_a_paired_folder(tmp_path, capsys):
    _side_by_side(tmp_path / "pairs", list(range(0, 250, 10)))
    cfg = load_config(None, ["data.name=pairs", f"data.root={tmp_path / 'pairs'}", "data.resolution=28",
                             "data.batch_size=8", "model.arch=pix2pix", "model.width=8", "model.z_dim=4",
                             "train.steps=2", "train.progress=false", f"train.out_dir={tmp_path / 'runs'}",
                             "g.penalties=[l1-target]"])
    result = train(cfg)
    assert result.step == 2 and load_checkpoint(result.checkpoint)["data"]["condition_shape"] == [1, 28, 28]
    # No split folders: the evaluation says its test pairs are the training pairs.
    assert main(["eval", str(result.run_dir), "--metrics", "fid", "--extractor", "pixels"]) == 0
    assert "caveat: the test pairs are the training pairs" in capsys.readouterr().out

"""`steadygan prepare --crops`: random crops of a folder of images. The source images encode
each pixel's own coordinates (red = row, green = column, blue = the image's index), so every
written crop says where it was cut from, independently of the code that placed it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from steadygan.cli import main
from steadygan.data import DataError, load_dataset
from steadygan.data.crops import CropSpec, crop_positions, region_box
from steadygan.data.prepared import prepare_source, read_manifest

SIZES = {"a.png": (100, 160), "b.png": (200, 90)}  # (height, width): one wide, one tall
SIZE = 16


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for index, (name, (h, w)) in enumerate(sorted(SIZES.items())):
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        pixels = np.stack([rows, cols, np.full_like(rows, index)], axis=-1).astype(np.uint8)
        Image.fromarray(pixels).save(root / name)
    return root


def _crops(out: Path) -> tuple[np.ndarray, np.ndarray]:
    return np.load(out / "images.npy"), np.load(out / "labels.npy")


def _where(crop: np.ndarray) -> tuple[int, int, int, bool]:
    """(image, top, left, flipped) read from a crop's own pixels."""
    rows, cols = crop[..., 0].astype(int), crop[..., 1].astype(int)
    assert (rows == rows[:, :1]).all() and (np.abs(np.diff(cols, axis=1)) == 1).all()  # a whole, unscaled patch
    flipped = cols[0, 1] < cols[0, 0]
    return int(crop[0, 0, 2]), int(rows[0, 0]), int(cols[0, -1] if flipped else cols[0, 0]), bool(flipped)


@pytest.mark.parametrize("region", ["all", "train", "test"])
def test_every_crop_lies_inside_its_images_region_and_is_labelled_with_its_image(tmp_path, photos, region):
    out = tmp_path / "out"
    prepare_source(photos, out, crops=CropSpec(600, SIZE, seed=3, region=region, flip=True))
    images, labels = _crops(out)
    names = sorted(SIZES)
    flips = 0
    for crop, label in zip(images, labels):
        image, top, left, flipped = _where(crop)
        h, w = SIZES[names[image]]
        # The region, from its definition: the last quarter of the longer side is the test region.
        if region == "all":
            rows, cols = (0, h), (0, w)
        elif w >= h:
            rows, cols = (0, h), ((0, w - w // 4) if region == "train" else (w - w // 4, w))
        else:
            rows, cols = ((0, h - h // 4) if region == "train" else (h - h // 4, h)), (0, w)
        assert rows[0] <= top and top + SIZE <= rows[1] and cols[0] <= left and left + SIZE <= cols[1]
        assert label == image
        flips += flipped
    assert 0 < flips < len(images)


def test_the_train_and_test_splits_of_a_crop_set_never_share_a_pixel(tmp_path, photos):
    # What the feature classifier trains on (train) and is scored on (test), through the loader.
    root = tmp_path / "crops"
    prepare_source(photos, root, crops=CropSpec(800, SIZE, seed=0, region="train"))
    prepare_source(photos, root / "test", crops=CropSpec(300, SIZE, seed=1, region="test"))
    seen = {}
    for split in ("train", "test"):
        data = load_dataset("prepared", str(root), split, SIZE, 3)
        pixels = data.samples.permute(0, 2, 3, 1).numpy()
        seen[split] = {(int(p[2]), int(p[0]), int(p[1])) for p in pixels.reshape(-1, 3)}
        assert data.labels is not None and set(data.labels.tolist()) == {0, 1}
    assert len(seen["train"]) > 1000 and len(seen["test"]) > 1000
    assert not seen["train"] & seen["test"]


def test_a_crops_image_is_drawn_in_proportion_to_its_area_and_its_position_uniformly(photos):
    boxes = [(0, 0, 100, 160), (0, 0, 200, 90)]
    n = 20000
    positions = crop_positions(boxes, CropSpec(n, SIZE, seed=5))
    share = 200 * 90 / (100 * 160 + 200 * 90)
    sigma = (share * (1 - share) / n) ** 0.5
    assert abs((positions[:, 0] == 1).mean() - share) < 4 * sigma
    left = positions[positions[:, 0] == 0, 2]  # uniform on 0..160-16: its mean and both ends
    span = 160 - SIZE + 1
    assert abs(left.mean() - (span - 1) / 2) < 4 * ((span ** 2 - 1) / 12 / len(left)) ** 0.5
    assert left.min() == 0 and left.max() == span - 1


def test_positions_follow_from_the_seed_and_the_same_command_gives_the_same_bytes(tmp_path, photos):
    args = ["prepare", str(photos), "--crops", "300", "--crop-size", str(SIZE), "--seed", "7", "--flip"]
    assert main([*args, "-o", str(tmp_path / "one")]) == 0
    assert main([*args, "-o", str(tmp_path / "two")]) == 0
    assert main([*args[:-2], "8", "--flip", "-o", str(tmp_path / "other")]) == 0
    one, two, other = (read_manifest(tmp_path / name) for name in ("one", "two", "other"))
    assert one["files"] == two["files"] and one["crops"] == two["crops"]
    assert other["crops"]["positions_sha256"] != one["crops"]["positions_sha256"]
    assert other["files"]["images.npy"]["sha256"] != one["files"]["images.npy"]["sha256"]


def test_the_manifest_records_the_sources_seed_region_and_positions(tmp_path, photos):
    spec = CropSpec(50, SIZE, seed=2, region="test", test_share=0.3, flip=True)
    manifest = prepare_source(photos, tmp_path / "out", crops=spec)
    record = manifest["crops"]
    assert (manifest["dataset"], manifest["split"], manifest["count"], manifest["shape"]) == \
        ("crops", "test", 50, [3, SIZE, SIZE])
    assert {k: record[k] for k in ("count", "size", "seed", "region", "test_share", "flip")} == \
        {"count": 50, "size": SIZE, "seed": 2, "region": "test", "test_share": 0.3, "flip": True}
    assert [(s["file"], s["height"], s["width"]) for s in record["sources"]] == \
        [(name, *SIZES[name]) for name in sorted(SIZES)]
    for source in record["sources"]:
        assert source["sha256"] == hashlib.sha256((photos / source["file"]).read_bytes()).hexdigest()
    boxes = [region_box(*SIZES[name], "test", 0.3) for name in sorted(SIZES)]
    assert record["positions_sha256"] == hashlib.sha256(crop_positions(boxes, spec).tobytes()).hexdigest()
    json.dumps(manifest)  # plain JSON


def test_crops_can_be_resized_and_made_grayscale(tmp_path, photos):
    manifest = prepare_source(photos, tmp_path / "out", resolution=8, channels=1, crops=CropSpec(20, SIZE))
    assert manifest["shape"] == [1, 8, 8] and np.load(tmp_path / "out" / "images.npy").shape == (20, 8, 8, 1)


def test_a_single_image_gives_an_unlabelled_set(tmp_path, photos):
    (photos / "b.png").unlink()
    manifest = prepare_source(photos, tmp_path / "out", crops=CropSpec(20, SIZE))
    assert manifest["num_classes"] == 0 and not (tmp_path / "out" / "labels.npy").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--crops", "0"], "--crops must be >= 1"),
    (["--crops", "5", "--crop-size", "4"], "--crop-size must be >= 8"),
    (["--crops", "5", "--crop-size", "96"], "b.png: 200x90 px, smaller than a 96-px crop"),
    (["--crops", "5", "--crop-size", "48", "--region", "test"], "a.png: its test region is 100x40 px"),
    (["--crops", "5", "--test-share", "1"], "--test-share must be between 0 and 1"),
    (["--crop-size", "32", "--seed", "1"], "--crop-size, --seed apply only with --crops N"),
    (["--flip"], "--flip applies only with --crops N"),
    (["--seed", "0", "--resolution", "8"], "--seed applies only with --crops N"),
    (["--crops", "5", "--split", "test"], "a folder of images has no splits"),
])
def test_bad_crop_requests_are_one_line_errors_and_write_nothing(tmp_path, photos, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["prepare", str(photos), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_test_split_must_match_its_training_split_and_may_be_written_first(tmp_path, photos, capsys):
    root = tmp_path / "crops"
    prepare_source(photos, root / "test", crops=CropSpec(40, SIZE, seed=1, region="test"))
    assert main(["prepare", str(photos), "-o", str(root), "--crops", "80", "--crop-size", str(SIZE),
                 "--region", "train"]) == 0  # OUT holding only its prepared test/ is free for the training split
    assert load_dataset("prepared", str(root), "test", SIZE, 3).samples.shape[0] == 40
    capsys.readouterr()
    assert main(["prepare", str(photos), "-o", str(root / "test"), "--crops", "40", "--crop-size", "8",
                 "--region", "test", "--force"]) == 0
    assert "this is the test split of" in capsys.readouterr().out
    with pytest.raises(DataError, match=r"holds 3x8x8 images but the training split 3x16x16: prepare the test split "
                                        r"again at 16 px"):
        load_dataset("prepared", str(root), "train", SIZE, 3)  # training refuses it too: it is evaluated against
    prepare_source(photos, root / "test", crops=CropSpec(40, SIZE, seed=1, region="train"), force=True)
    with pytest.raises(DataError, match="share pixels; prepare the training split with --region train"):
        load_dataset("prepared", str(root), "test", SIZE, 3)


def test_crops_of_idx_data_are_refused(tmp_path, capsys):
    idx = tmp_path / "idx"
    idx.mkdir()
    (idx / "train-images-idx3-ubyte").write_bytes(b"")
    assert main(["prepare", str(idx), "-o", str(tmp_path / "out"), "--crops", "5"]) == 2
    assert "--crops cuts crops from a folder of images, not from idx data" in capsys.readouterr().err

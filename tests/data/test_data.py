"""Data readers round-trip files the tests write, and every bad input is a one-line error."""

from __future__ import annotations

import gzip
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from steadygan.data import (
    BatchSampler,
    DataError,
    fit_images,
    folder,
    grid25_modes,
    load_dataset,
    read_idx,
    ring8_modes,
    sample_mixture,
    to_float_images,
    to_uint8_images,
    write_idx,
)
from steadygan.data.base import DataInfo, InMemoryData
from steadygan.data.cifar import load_cifar10
from steadygan.data.folder import load_image_folder
from steadygan.data.idx import find_split, load_idx_dataset
from steadygan.errors import ConfigError


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    arr = np.random.default_rng(0).integers(0, 256, (7, 5, 4), dtype=np.uint8)
    path = tmp_path / ("x.idx3" + (".gz" if gz else ""))
    write_idx(path, arr)
    assert np.array_equal(read_idx(path, 3), arr)


def test_idx_dataset_loads_images_and_labels(idx_dir):
    data = load_dataset("idx", root=str(idx_dir), resolution=28, channels=1)
    assert data.samples.shape == (96, 1, 28, 28) and data.samples.dtype == torch.uint8
    assert data.labels.shape == (96,) and data.is_image
    test = load_dataset("idx", root=str(idx_dir), split="test")
    assert len(test) == 48


def test_idx_resize_and_channels(idx_dir):
    data = load_dataset("idx", root=str(idx_dir), resolution=64, channels=3)
    assert data.samples.shape == (96, 3, 64, 64)
    assert torch.equal(data.samples[:, 0], data.samples[:, 2])


def test_emnist_transpose(tmp_path):
    arr = np.arange(2 * 28 * 28, dtype=np.uint64).reshape(2, 28, 28).astype(np.uint8)
    write_idx(tmp_path / "emnist-letters-train-images-idx3-ubyte.gz", arr)
    write_idx(tmp_path / "emnist-letters-train-labels-idx1-ubyte.gz", np.array([1, 2], np.uint8))
    data = load_dataset("emnist", root=str(tmp_path))
    assert np.array_equal(data.samples[:, 0].numpy(), arr.transpose(0, 2, 1))


def _corrupt(path: Path, new: bytes) -> None:
    path.write_bytes(gzip.compress(new))


@pytest.mark.parametrize("case, message", [
    ("magic", "not a uint8 IDX file"),
    ("truncated", "truncated"),
    ("count", "do not belong together"),
    ("garbage_gz", "cannot read"),
    ("missing", "no train images file"),
])
def test_bad_idx_inputs_are_clear_errors(idx_dir, case, message):
    images = idx_dir / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(images.read_bytes())
    if case == "magic":
        _corrupt(images, b"\x00\x00\x08\x02" + raw[4:])
    elif case == "truncated":
        _corrupt(images, raw[:-100])
    elif case == "count":
        write_idx(idx_dir / "train-labels-idx1-ubyte.gz", np.zeros(95, np.uint8))
    elif case == "garbage_gz":
        images.write_bytes(b"\x1f\x8b\x08garbage")
    elif case == "missing":
        images.unlink()
    with pytest.raises(DataError, match=message) as err:
        load_dataset("idx", root=str(idx_dir))
    assert "\n" not in str(err.value)
    if case != "missing":
        assert "train-" in str(err.value)  # names the file


@pytest.mark.parametrize("magic", [
    b"\x01\x00\x08\x03",  # first zero byte set
    b"\x00\x01\x08\x03",  # second zero byte set
    b"\x00\x00\x09\x03",  # int8, not uint8
    b"\x00\x00\x0d\x03",  # float32
    b"\x00\x00\x08\x01",  # a label file's rank where images are expected
    b"\x00\x00\x08\x04",
])
def test_every_part_of_the_idx_magic_is_checked(tmp_path, magic):
    good = tmp_path / "good.idx3"
    write_idx(good, np.zeros((2, 3, 3), np.uint8))
    bad = tmp_path / "bad.idx3"
    bad.write_bytes(magic + good.read_bytes()[4:])
    with pytest.raises(DataError, match="not a uint8 IDX file of rank 3"):
        read_idx(bad, 3)


def test_missing_folder_and_no_default_root(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_dataset("idx", root=str(tmp_path / "nope"))
    with pytest.raises(DataError, match="set data.root"):
        load_dataset("mnist")


def _write_cifar(root: Path, n=10):
    root.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = list(rng.integers(0, 10, n))
    with open(root / "data_batch_1", "wb") as f:
        pickle.dump({b"data": data, b"labels": [int(label) for label in labels]}, f)
    return data, labels


def test_cifar_round_trip(tmp_path):
    data, labels = _write_cifar(tmp_path / "cifar")
    images, got_labels = load_cifar10(tmp_path / "cifar")
    assert images.shape == (10, 3, 32, 32)
    assert np.array_equal(images.numpy().reshape(10, -1), data)
    assert got_labels.tolist() == labels


def test_cifar_refuses_code_in_pickle(tmp_path):
    root = tmp_path / "evil"
    root.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(root / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_cifar10(root)


def test_cifar_missing(tmp_path):
    with pytest.raises(DataError, match="no CIFAR-10 batches"):
        load_cifar10(tmp_path)


def test_image_folder(tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (40, 30), (i * 80, 10, 200)).save(tmp_path / cls / f"{i}.png")
    images, labels = load_image_folder(tmp_path, 16, 3)
    assert images.shape == (6, 3, 16, 16) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.warns(UserWarning, match="reads them as grey"):
        gray, _ = load_image_folder(tmp_path, 16, 1)
    assert gray.shape == (6, 1, 16, 16)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no images found"):
        load_image_folder(tmp_path, 16, 3)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png: unreadable image"):
        load_image_folder(tmp_path, 16, 3)


def test_batch_larger_than_dataset():
    with pytest.raises(DataError, match="larger than"):
        BatchSampler(10, 64, seed=0)


def test_sampler_covers_epoch_without_replacement_and_restores():
    s = BatchSampler(10, 3, seed=0)
    first_epoch = torch.cat([s.next_index() for _ in range(3)])
    assert first_epoch.unique().numel() == 9
    state = s.state_dict()
    a = [s.next_index() for _ in range(5)]
    s2 = BatchSampler(10, 3, seed=99)
    s2.load_state_dict(state)
    b = [s2.next_index() for _ in range(5)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_scaling_round_trip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    f = to_float_images(x)
    assert f.min() == -1 and f.max() == 1
    assert torch.equal(to_uint8_images(f), x)


def test_fit_images_luminance():
    rgb = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    rgb[:, 1] = 100
    assert fit_images(rgb, 8, 1).unique().tolist() == [59]  # round(0.587 * 100)


@pytest.mark.parametrize("name, n_modes, std", [("ring8", 8, 0.01), ("grid25", 25, 0.05)])
def test_toy_mixtures(name, n_modes, std):
    points, which = sample_mixture(name, 20000, seed=0)
    assert which.unique().numel() == n_modes
    from steadygan.data.toy import TOY_MIXTURES
    modes = TOY_MIXTURES[name][0]()
    residual = points - modes[which]
    assert residual.std().item() == pytest.approx(std, rel=0.05)
    if name == "ring8":
        assert torch.allclose(modes.norm(dim=1), torch.ones(8))
    else:
        assert set(modes.flatten().tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_stacked_channels_are_base_images_with_the_coded_digits(idx_dir):
    base_images = torch.as_tensor(read_idx(idx_dir / "train-images-idx3-ubyte.gz", 3))
    base_labels = torch.as_tensor(read_idx(idx_dir / "train-labels-idx1-ubyte.gz", 1))
    data = load_dataset("stacked", str(idx_dir), "train", channels=3)
    assert data.samples.shape == (len(base_images), 3, 28, 28) and data.samples.dtype == torch.uint8
    for image, code in zip(data.samples[:20], data.labels[:20]):
        digits = [int(code) // 100, int(code) // 10 % 10, int(code) % 10]
        for c, digit in enumerate(digits):
            matches = (base_images == image[c]).flatten(1).all(1).nonzero().flatten()
            assert len(matches) and all(int(base_labels[m]) == digit for m in matches)
    again = load_dataset("stacked", str(idx_dir), "train", channels=3)
    assert torch.equal(again.samples, data.samples)          # fixed seed: a stable dataset
    with pytest.raises(ConfigError, match="data.channels=3"):
        load_dataset("stacked", str(idx_dir), "train", channels=1)


def _cifar_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    with open(path, "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)


def test_cifar_reads_every_train_batch_in_order_and_the_test_batch(tmp_path):
    root = tmp_path / "download" / "cifar-10-batches-py"  # the archive's own folder is found too
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 256, (2, 3072), dtype=np.uint8) for _ in range(6)]
    for i in range(5):
        _cifar_batch(root / f"data_batch_{i + 1}", batches[i], [i, 9 - i])
    _cifar_batch(root / "test_batch", batches[5], [7, 8])
    _cifar_batch(root / "data_batch_0", batches[5], [0, 0])  # not a CIFAR-10 name: ignored
    _cifar_batch(root / "data_batch_6", batches[5], [0, 0])
    images, labels = load_cifar10(tmp_path / "download")
    assert images.dtype == torch.uint8 and images.shape == (10, 3, 32, 32)
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
    assert np.array_equal(images.numpy(), np.concatenate(batches[:5]).reshape(10, 3, 32, 32))
    test_images, test_labels = load_cifar10(root, "test")
    assert test_labels.tolist() == [7, 8] and np.array_equal(test_images.numpy(), batches[5].reshape(2, 3, 32, 32))


@pytest.mark.parametrize("content, message", [
    ({b"data": np.zeros((2, 3072), np.uint8)},
     r"not a CIFAR-10 batch \(expected 'data' of shape \(N, 3072\) and 'labels'\)"),
    ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, "not a CIFAR-10 batch"),
    ({b"data": np.zeros(3072, np.uint8), b"labels": [0]}, "not a CIFAR-10 batch"),
    ({b"data": [[0] * 3072], b"labels": [0]}, "not a CIFAR-10 batch"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels must be integers 0..9"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [-1, 3]}, "labels must be integers 0..9"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", 3]}, "labels must be integers 0..9"),
])
def test_malformed_cifar_batches_are_clear_errors(tmp_path, content, message):
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump(content, f)
    with pytest.raises(DataError, match=message):
        load_cifar10(tmp_path)


def test_cifar_missing_names_the_files_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"no CIFAR-10 batches \(test_batch\); set data.root to the extracted "
                                        r"cifar-10-batches-py folder"):
        load_cifar10(tmp_path, "test")
    with pytest.raises(DataError, match=r"\(data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5\)"):
        load_cifar10(tmp_path)


def test_image_folder_crops_the_centre_square_then_resizes(tmp_path):
    arr = np.zeros((20, 40), np.uint8)  # 40 wide, 20 high: the centre square is columns 10..29
    arr[:, 10:30] = 255
    Image.fromarray(arr).save(tmp_path / "wide.png")
    images, labels = load_image_folder(tmp_path, 20, 1)
    assert labels is None and images.dtype == torch.uint8
    assert images.min().item() == 255  # only the bright centre survives the crop (no resize at 20)
    tall = np.zeros((40, 20), np.uint8)
    tall[10:30] = 255
    Image.fromarray(tall).save(tmp_path / "wide.png")
    images, _ = load_image_folder(tmp_path, 10, 1)
    assert images.min().item() >= 250  # cropped, then downsampled


def test_image_folder_lists_only_images(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()  # a folder named like an image
    Image.new("L", (8, 8), 7).save(tmp_path / "a.PNG")
    images, _ = load_image_folder(tmp_path, 8, 1)
    assert images.shape == (1, 1, 8, 8) and images.unique().tolist() == [7]
    with pytest.raises(DataError, match=r"no images found \(looked for \.bmp, \.jpeg, \.jpg, \.png, \.webp, "
                                        "recursively"):
        load_image_folder(tmp_path / "sub.png", 8, 1)
    with pytest.raises(DataError, match="nope: no such folder; set data.root to a folder of images"):
        load_image_folder(tmp_path / "nope", 8, 1)


def test_cifar_batches_written_by_python_2_are_read(tmp_path):
    """The real CIFAR-10 files are Python 2 pickles: their keys are byte strings only when
    unpickled with encoding='bytes'. Rewrite a protocol-2 pickle's keys as Python 2 strings."""
    data = np.arange(2 * 3072, dtype=np.uint64).reshape(2, 3072).astype(np.uint8)
    raw = pickle.dumps({"data": data, "labels": [3, 7]}, protocol=2)
    py2 = raw.replace(b"X\x04\x00\x00\x00data", b"U\x04data").replace(b"X\x06\x00\x00\x00labels", b"U\x06labels")
    assert py2 != raw
    (tmp_path / "data_batch_1").write_bytes(py2)
    images, labels = load_cifar10(tmp_path)
    assert labels.tolist() == [3, 7] and np.array_equal(images.numpy().reshape(2, 3072), data)


def test_cifar_errors_say_what_the_file_holds(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match=r"data_batch_1: not a CIFAR-10 batch \(expected a dict, got list\)"):
        load_cifar10(tmp_path)
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match=r"data_batch_1: not a readable CIFAR-10 python batch \(\w+Error: "):
        load_cifar10(tmp_path)


def test_image_folder_labels_are_int64_and_resizing_is_lanczos(tmp_path):
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 256, (30, 30), dtype=np.uint8)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(arr).save(tmp_path / "a" / "x.png")
    Image.fromarray(arr).save(tmp_path / "b" / "y.png")
    images, labels = load_image_folder(tmp_path, 12, 1)
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 1]
    expected = np.asarray(Image.fromarray(arr).resize((12, 12), Image.Resampling.LANCZOS))
    assert np.array_equal(images[0, 0].numpy(), expected)


def test_list_images_names_a_missing_folder(tmp_path):
    from steadygan.data.folder import list_images

    with pytest.raises(DataError, match="nope: no such folder"):
        list_images(tmp_path / "nope")


def _sixteen_bit_ramp() -> np.ndarray:
    """16 x 16 tones spanning 0..65535, the 8-bit value of each not its neighbour's."""
    return (np.arange(256, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)


def test_sixteen_bit_grayscale_keeps_its_tones_for_training_and_for_scoring(tmp_path):
    from steadygan.metrics.sources import read_image_folder

    ramp = _sixteen_bit_ramp()
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    expected = np.rint(ramp / 257.0).astype(np.uint8)  # 0, 1, ..., 255: one tone per 8-bit value
    assert sorted(set(expected.ravel().tolist())) == list(range(256))
    images, _ = load_image_folder(tmp_path, 16, 1)
    assert images[0, 0].numpy().tolist() == expected.tolist()
    assert read_image_folder(tmp_path).images[0, 0].numpy().tolist() == expected.tolist()


@pytest.mark.parametrize("mode, order", [("I;16", "<"), ("I;16L", "<"), ("I;16B", ">"), ("I;16N", "=")])
def test_every_byte_order_of_sixteen_bits_is_scaled_alike(tmp_path, monkeypatch, mode, order):
    ramp = _sixteen_bit_ramp()
    (tmp_path / "deep.png").write_bytes(b"")  # Image.open below stands in for the file
    monkeypatch.setattr(folder.Image, "open", lambda path: Image.frombytes(mode, (16, 16),
                                                                              ramp.astype(order + "u2").tobytes()))
    images, _ = load_image_folder(tmp_path, 16, 1)
    assert images[0, 0].numpy().tolist() == np.rint(ramp / 257.0).astype(np.uint8).tolist()


def test_the_centre_crop_of_an_odd_margin_starts_at_its_floor(tmp_path):
    # 27 wide, 20 high: a margin of 7 columns, 3 on the left and 4 on the right.
    columns = np.tile(np.arange(27, dtype=np.uint8) * 9, (20, 1))
    Image.fromarray(columns).save(tmp_path / "wide.png")
    images, _ = load_image_folder(tmp_path, 20, 1)
    assert images[0, 0, 0].tolist() == [9 * x for x in range(3, 23)]
    Image.fromarray(np.ascontiguousarray(columns.T)).save(tmp_path / "wide.png")  # 20 wide, 27 high
    images, _ = load_image_folder(tmp_path, 20, 1)
    assert images[0, 0, :, 0].tolist() == [9 * y for y in range(3, 23)]


@pytest.mark.parametrize("mode", ["I", "F"])
def test_thirty_two_bit_and_float_images_are_refused_by_name(tmp_path, monkeypatch, mode):
    (tmp_path / "deep.png").write_bytes(b"")  # Image.open below stands in for a 32-bit or float file
    monkeypatch.setattr(folder.Image, "open", lambda path: Image.new(mode, (8, 8)))
    with pytest.raises(DataError) as exc:
        load_image_folder(tmp_path, 8, 1)
    assert str(exc.value) == (f"{tmp_path / 'deep.png'}: {mode} images (32-bit integer or float pixels) have no "
                              "range to scale to 8 bits from; convert them to 8 or 16 bits first")


# --- closed from surviving mutants (benchmarks/mutation_module.py data.idx) ----------------------

def test_idx_refusals_have_their_whole_text(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    cases = [
        (b"\x00\x00\x08", "file is truncated (3 bytes); re-copy it"),
        (b"\x00\x00\x08\x03", "header is truncated; re-copy the file"),  # 4 bytes: the magic alone
        (b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + b"\x00", None),  # rank 1: the wrong file here
        (b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (0, 28, 28)),
         "header has a zero dimension (0x28x28); the file is corrupt"),
        (b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (3, 2, 2)) + bytes(10),
         "holds 10 data bytes but its header promises 12 (3x2x2); the file is truncated or corrupt, re-copy it"),
    ]
    for raw, text in cases:
        path.write_bytes(raw)
        with pytest.raises(DataError) as exc:
            read_idx(path, 3)
        assert str(exc.value) == f"{path}: " + (text or "not a uint8 IDX file of rank 3 (magic 00000801, expected "
                                                        "00000803); is it the right file?")
    with pytest.raises(DataError) as exc:
        read_idx(tmp_path, 3)  # a folder: the OS refuses the read
    assert str(exc.value).startswith(f"{tmp_path}: cannot read ([Errno 21] Is a directory")
    assert str(exc.value).endswith("); re-copy or re-install the file")


def test_dimensions_of_one_are_read_and_an_int64_array_of_byte_values_is_written_as_uint8(tmp_path):
    one = np.arange(4, dtype=np.int64).reshape(1, 2, 2)  # one image; int64 values 0..3
    write_idx(tmp_path / "one-idx3-ubyte", one)
    back = read_idx(tmp_path / "one-idx3-ubyte", 3)
    assert back.dtype == np.uint8 and back.tolist() == one.tolist()
    assert (tmp_path / "one-idx3-ubyte").stat().st_size == 4 + 3 * 4 + 4  # one byte per value


def test_two_candidate_files_are_refused_and_the_default_split_is_train(tmp_path, make_idx_dir):
    root = make_idx_dir(tmp_path / "idx")
    x, y = load_idx_dataset(root)
    assert len(x) == 96 and y.dtype == torch.int64  # train: 96 images, test: 48
    (root / "fashion-train-images-idx3-ubyte.gz").write_bytes((root / "train-images-idx3-ubyte.gz").read_bytes())
    with pytest.raises(DataError) as exc:
        find_split(root, "train", "images")
    assert str(exc.value) == (f"{root}: several train images files (fashion-train-images-idx3-ubyte.gz, "
                              "train-images-idx3-ubyte.gz); point data.root at a folder holding one dataset")


# --- closed from surviving mutants (benchmarks/mutation_module.py data.base) ---------------------

def test_in_memory_data_checks_its_samples_and_reads_its_classes():
    one = InMemoryData(torch.zeros(1, 2), None, "one")
    assert (one.protocol, one.num_classes) == ("points", 0)
    images = InMemoryData(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 4, 2]), "imgs")
    assert (images.protocol, images.num_classes) == ("image", 5)  # the largest label + 1
    assert InMemoryData(torch.zeros(2, 2), None, "pts", "mixture").protocol == "mixture"  # a loader's own
    with pytest.raises(DataError) as exc:
        InMemoryData(torch.zeros(0, 2), None, "none")
    assert str(exc.value) == "dataset 'none' is empty"
    with pytest.raises(DataError) as exc:
        InMemoryData(torch.zeros(3, 2), torch.tensor([0, 1]), "short")
    assert str(exc.value) == "dataset 'short': 3 samples but 2 labels"


def test_to_uint8_images_rounds_and_saturates():
    x = torch.tensor([-1.5, -1.0, -0.999, 0.0, 0.5, 1.0, 1.2])
    assert to_uint8_images(x).tolist() == [0, 0, 0, 128, 191, 255, 255]  # 127.5 rounds to even: 128
    assert to_uint8_images(x).dtype == torch.uint8


def test_fit_images_converts_channels_by_luminance_and_resizes_in_range():
    rgb = torch.tensor([[[[255]], [[0]], [[0]]], [[[0]], [[0]], [[255]]], [[[255]], [[255]], [[255]]],
                        [[[0]], [[0]], [[0]]]], dtype=torch.uint8)  # red, blue, white and black pixels
    grey = fit_images(rgb, 1, 1)
    assert grey.shape == (4, 1, 1, 1) and grey.dtype == torch.uint8
    assert grey.flatten().tolist() == [round(0.299 * 255), round(0.114 * 255), 255, 0]
    up = fit_images(torch.tensor([[[[0, 255], [255, 0]]]], dtype=torch.uint8), 3, 3)
    assert up.shape == (1, 3, 3, 3) and up.dtype == torch.uint8
    expected = F.interpolate(torch.tensor([[[[0.0, 255.0], [255.0, 0.0]]]]), size=(3, 3), mode="bilinear",
                             align_corners=False).round()  # growing: no antialiasing
    assert torch.equal(up[:, :1].float(), expected) and torch.equal(up[:, 0], up[:, 2])
    big = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    down = F.interpolate(big.float(), size=(4, 4), mode="bilinear", align_corners=False, antialias=True)
    assert torch.equal(fit_images(big, 4, 1), down.round().clamp(0, 255).to(torch.uint8))
    with pytest.raises(TypeError) as exc:
        fit_images(torch.zeros(1, 1, 2, 2), 2, 1)
    assert str(exc.value) == "fit_images expects a uint8 (N, C, H, W) tensor"
    with pytest.raises(TypeError):
        fit_images(torch.zeros(1, 2, 2, dtype=torch.uint8), 2, 1)
    for c, channels in ((2, 1), (1, 4)):
        with pytest.raises(ConfigError) as exc:
            fit_images(torch.zeros(1, c, 2, 2, dtype=torch.uint8), 2, channels)
        assert str(exc.value) == f"channels must be 1 or 3 (got data {c}, requested {channels})"


def test_fit_images_works_in_chunks_of_4096(monkeypatch):
    seen = []
    real_interpolate = F.interpolate
    monkeypatch.setattr(F, "interpolate", lambda x, **kw: seen.append(len(x)) or real_interpolate(x, **kw))
    fit_images(torch.zeros(4097, 1, 2, 2, dtype=torch.uint8), 1, 1)
    assert seen == [4096, 1]


def test_batch_sampler_epochs_cursor_and_its_checks():
    s = BatchSampler(7, 3, seed=0)
    assert (s.cursor, s.epoch) == (0, 0)
    assert torch.equal(s.perm, torch.randperm(7, generator=torch.Generator().manual_seed(0)))
    first = [s.next_index() for _ in range(2)]  # 6 of 7 drawn: no room left for a third batch
    assert (s.cursor, s.epoch) == (6, 0) and torch.equal(torch.cat(first), s.perm[:6])
    s.next_index()
    assert (s.cursor, s.epoch) == (3, 1)
    exact = BatchSampler(6, 3, seed=0)
    for _ in range(2):
        exact.next_index()
    perm = exact.perm.clone()
    exact.next_index()  # 6 + 3 > 6: a new epoch, not a read past the end
    assert exact.epoch == 1 and not torch.equal(exact.perm, perm)
    BatchSampler(1, 1, seed=0).next_index()  # a batch of one is allowed
    BatchSampler(3, 3, seed=0)  # the whole set in one batch too
    with pytest.raises(ConfigError) as exc:
        BatchSampler(3, 0, seed=0)
    assert str(exc.value) == "data.batch_size must be >= 1 (got 0)"
    with pytest.raises(DataError) as exc:
        BatchSampler(3, 4, seed=0)
    assert str(exc.value) == "batch size 4 is larger than dataset (3 samples); lower data.batch_size or use more data"


def test_a_multi_member_gzip_whose_first_member_outgrows_the_header_read(tmp_path):
    # The reader takes the header (at most 1,024 bytes) first, then the rest of the first
    # member, then the other members: all three parts must reach the array.
    arr = np.arange(2 * 30 * 30, dtype=np.int64).astype(np.uint8).reshape(2, 30, 30)
    raw = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in arr.shape) + arr.tobytes()
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw[:1500]) + gzip.compress(raw[1500:]))
    assert np.array_equal(read_idx(path, 3), arr)
    path.write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(DataError) as exc:
        read_idx(path, 3)
    assert str(exc.value) == (f"{path}: cannot read (compressed file ended before the end-of-stream marker was "
                              "reached); re-copy or re-install the file")


def test_a_dataset_s_description_and_its_move_keep_name_protocol_and_layout():
    info = DataInfo("ring8", "points", (2,), 0, "mixture")
    assert DataInfo.from_dict(info.to_dict()) == info
    data = InMemoryData(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), "stacked-fmnist", "stacked")
    moved = data.to(torch.device("cpu"))
    assert (moved.name, moved.protocol, moved.num_classes) == ("stacked-fmnist", "stacked", 2)
    assert moved.samples.is_contiguous()  # channels-last only when asked for
    assert data.to(torch.device("cpu"), channels_last=True).samples.is_contiguous(memory_format=torch.channels_last)


def test_the_batch_sampler_counts_every_epoch_and_restores_mid_epoch():
    s = BatchSampler(4, 2, seed=3)
    for _ in range(6):  # three epochs of two batches
        s.next_index()
    assert s.epoch == 2
    s.next_index()
    state = s.state_dict()  # mid-epoch: one batch of this permutation is left
    expected = [s.next_index() for _ in range(3)]
    restored = BatchSampler(4, 2, seed=99)
    restored.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip((restored.next_index() for _ in range(3)), expected))
    assert (restored.epoch, restored.cursor) == (s.epoch, s.cursor)


def test_ring8_modes_are_the_eighth_roots_of_unity_scaled():
    expected = [[2 * math.cos(k * math.pi / 4), 2 * math.sin(k * math.pi / 4)] for k in range(8)]
    assert torch.allclose(ring8_modes(2.0), torch.tensor(expected), atol=1e-7)
    assert ring8_modes().dtype == torch.float32


def test_a_mixture_sample_depends_on_its_seed_alone():
    torch.manual_seed(0)
    a, which_a = sample_mixture("grid25", 50, seed=4)
    torch.manual_seed(1)  # another global state: the sample must not see it
    b, which_b = sample_mixture("grid25", 50, seed=4)
    assert torch.equal(a, b) and torch.equal(which_a, which_b)
    g = torch.Generator().manual_seed(4)  # mode indices first, then the offsets, from one generator
    which = torch.randint(25, (50,), generator=g)
    assert torch.equal(which_a, which)
    assert torch.equal(a, grid25_modes()[which] + 0.05 * torch.randn(50, 2, generator=g))


def test_images_beside_class_folders_make_an_unlabelled_set_with_one_warning(tmp_path):
    for where in ("cats", "dogs", ""):
        (tmp_path / where).mkdir(exist_ok=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / where / "x.png")
    with pytest.warns(UserWarning) as record:
        images, labels = load_image_folder(tmp_path, 4, 1)
    assert labels is None and len(images) == 3
    assert [str(w.message) for w in record] == [
        f"{tmp_path}: some images lie beside the class sub-folders; the folder is read as unlabelled (put every "
        "image in a class sub-folder to use the classes)"]
    assert record[0].filename == __file__  # pointed at the caller of the loader, not at the library


def test_colour_images_read_as_grey_are_warned_about_once(tmp_path):
    import warnings

    grey = np.tile(np.arange(16, dtype=np.uint8).reshape(4, 4, 1), (1, 1, 3))  # RGB, three equal channels
    Image.fromarray(grey).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "b.png")  # mode L
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # grey in any mode: no warning
        load_image_folder(tmp_path, 4, 1)
    colour = grey.copy()
    colour[1, 2, 0] = 200  # one pixel's red differs
    Image.fromarray(colour).save(tmp_path / "c.png")
    Image.fromarray(colour).save(tmp_path / "d.png")
    with pytest.warns(UserWarning) as record:
        load_image_folder(tmp_path, 4, 1)
    assert [str(w.message) for w in record] == [
        f"{tmp_path} holds colour images (c.png, ...); data.channels=1 reads them as grey "
        "(--set data.channels=3 keeps the colour)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read in colour: nothing to say
        load_image_folder(tmp_path, 4, 3)

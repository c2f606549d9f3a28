"""Every parser of user files, fuzzed: any input gives a result or the project's own error.

IDX files (plain and gzipped), CIFAR batches, images, YAML configs, --set values and
checkpoint files. "The project's own error" is DataError / ConfigError / CheckpointError:
a one-line message the CLI prints, never a traceback.
"""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steadygan.apps.completion import read_image
from steadygan.data import DataError, read_idx, write_idx
from steadygan.data.cifar import load_cifar10
from steadygan.data.folder import load_image_folder
from steadygan.errors import CheckpointError, ConfigError
from steadygan.training.build import load_config
from steadygan.training.checkpoint import load_checkpoint, save_checkpoint

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _idx_header(dims: list[int]) -> bytes:
    return bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@FUZZ
@given(data=st.binary(max_size=300), gz=st.booleans())
def test_idx_random_bytes(tmp_path, data, gz):
    path = tmp_path / ("x.idx3.gz" if gz else "x.idx3")
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        out = read_idx(path, 3)
    except DataError as exc:
        assert "\n" not in str(exc)
    else:
        assert out.dtype == np.uint8 and out.ndim == 3


@FUZZ
@given(dims=st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3), body=st.binary(max_size=64),
       raw=st.binary(max_size=40))
def test_idx_lying_headers_are_refused_without_allocating(tmp_path, dims, body, raw):
    path = tmp_path / "x.idx3.gz"
    path.write_bytes(gzip.compress(_idx_header(dims) + body))
    try:
        out = read_idx(path, 3)
    except DataError:
        pass
    else:
        assert out.size == len(body)
    path.write_bytes(raw)  # not even gzip
    with pytest.raises(DataError):
        read_idx(path, 3)


def test_a_gzip_header_promising_terabytes_is_refused_before_decompressing(tmp_path):
    path = tmp_path / "x.idx3.gz"
    path.write_bytes(gzip.compress(_idx_header([60000, 65535, 65535]) + bytes(100)))
    with pytest.raises(DataError, match="more than a .*-byte gzip file can hold"):
        read_idx(path, 3)
    path.write_bytes(gzip.compress(_idx_header([5, 0, 28])))
    with pytest.raises(DataError, match="zero dimension"):
        read_idx(path, 3)
    path.write_bytes(gzip.compress(_idx_header([2, 2, 2]) + bytes(8))[:-12])  # stream cut short
    with pytest.raises(DataError, match="cannot read"):
        read_idx(path, 3)
    write_idx(path, np.zeros((2, 2, 2), np.uint8))
    assert read_idx(path, 3).shape == (2, 2, 2)


@FUZZ
@given(data=st.binary(max_size=400))
def test_cifar_random_bytes(tmp_path, data):
    (tmp_path / "data_batch_1").write_bytes(data)
    with pytest.raises(DataError):
        load_cifar10(tmp_path)


@FUZZ
@given(data=st.binary(max_size=300), header=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM"]))
def test_images_random_bytes(tmp_path, data, header):
    for old in tmp_path.glob("*.png"):
        old.unlink()
    (tmp_path / "a.png").write_bytes(header + data)
    try:
        images, _ = load_image_folder(tmp_path, 8, 1)
    except DataError as exc:
        assert "a.png" in str(exc)
    else:
        assert images.shape == (1, 1, 8, 8)
    with pytest.raises(DataError):
        read_image(tmp_path / "a.png", 9, 1)


def test_a_decompression_bomb_png_is_a_data_error(tmp_path, monkeypatch):
    from PIL import Image

    Image.new("L", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64x64 is then > 2x the limit: PIL refuses it
    with pytest.raises(DataError, match="big.png: unreadable image"):
        load_image_folder(tmp_path, 8, 1)
    with pytest.raises(DataError, match="big.png: unreadable image"):
        read_image(tmp_path / "big.png", 64, 1)


@FUZZ
@given(text=st.text(max_size=200))
def test_yaml_configs_random_text(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(exc)


KEYS = ["train.steps", "train.time", "d.lr", "d.betas", "model.width", "data.name", "train", "d.penalties",
        "d.clip", "loss", "model.conditional", "train.on_nan", "nonsense.key"]


@FUZZ
@given(key=st.sampled_from(KEYS), value=st.text(max_size=30))
def test_set_values_random_text(key, value):
    try:
        load_config(None, [f"{key}={value}"])
    except ConfigError as exc:
        assert str(exc)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("ck") / "ckpt-00000003.pt"
    save_checkpoint({"config": {}, "generator": {"w": torch.arange(6.0)}, "step": 3}, path)
    return path.read_bytes()


@FUZZ
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)),
                                                  max_size=4))
def test_checkpoint_files_cut_or_corrupted(tmp_path, checkpoint_bytes, cut, flips):
    data = bytearray(checkpoint_bytes[:cut % (len(checkpoint_bytes) + 1)])
    for pos, xor in flips:
        if data:
            data[pos % len(data)] ^= xor
    path = tmp_path / "ckpt-00000003.pt"
    path.write_bytes(bytes(data))
    try:
        payload = load_checkpoint(path)
    except CheckpointError as exc:
        assert str(path) in str(exc)
    else:
        assert payload["step"] == 3


def test_gzip_idx_edge_cases(tmp_path):
    from steadygan.data.idx import _claimed_size

    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = _idx_header([2, 3, 4]) + arr.tobytes()
    path = tmp_path / "x.idx3.gz"
    path.write_bytes(gzip.compress(raw[:20]) + gzip.compress(raw[20:]))  # two gzip members, as `cat a.gz b.gz`
    assert np.array_equal(read_idx(path, 3), arr)
    path.write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(DataError, match="compressed file ended before the end-of-stream marker was reached"):
        read_idx(path, 3)
    import zlib

    path.write_bytes(zlib.compress(raw))  # a zlib stream is not a gzip file
    with pytest.raises(DataError, match="cannot read"):
        read_idx(path, 3)
    path.write_bytes(gzip.compress(_idx_header([2**32 - 1] * 3) + bytes(10)))  # a product past 2^64
    with pytest.raises(DataError, match=r"header promises 4294967295x4294967295x4294967295 values, more than a "):
        read_idx(path, 3)
    assert _claimed_size(b"\x00\x00\x08\x01\x00\x00\x00\x05") == (5,)
    assert _claimed_size(b"\x00\x00\x08\x01\x00\x00\x00") is None and _claimed_size(b"\x00\x00\x08") is None

"""MNIST-family IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST), plain or gzipped.

The IDX format (LeCun et al.): a 4-byte magic ``0 0 <type> <ndim>``, ``ndim`` big-endian
uint32 sizes, then the data. Images are type 0x08 (uint8) with ndim 3, labels ndim 1.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

_UINT8 = 0x08


# Deflate cannot expand data more than about 1032:1; a header that promises more than that
# from the compressed size is a lie, refused before anything is decompressed.
MAX_DEFLATE_RATIO = 1032


def _claimed_size(head: bytes) -> tuple[int, ...] | None:
    """The dimensions an IDX header promises, or None while the header is incomplete."""
    if len(head) < 4 or len(head) < 4 + 4 * head[3]:
        return None
    return struct.unpack(f">{head[3]}I", head[4:4 + 4 * head[3]])


def _decompress(path: Path, data: bytes) -> bytes:
    """gunzip ``data``, refusing a header that promises more than the file could hold."""
    try:
        stream = zlib.decompressobj(wbits=31)  # gzip container
        head = stream.decompress(data, 4 + 4 * 255)
        dims = _claimed_size(head)
        if dims is not None and int(np.prod(dims, dtype=object)) > MAX_DEFLATE_RATIO * len(data):
            raise DataError(f"{path}: header promises {'x'.join(map(str, dims))} values, more than a "
                            f"{len(data)}-byte gzip file can hold; the file is corrupt, re-copy it")
        # The rest of the first member. No flush(): once a member has ended, CPython's flush()
        # appends the input left over from the header read to unused_data a second time, and
        # a following member would be read twice.
        rest = stream.decompress(stream.unconsumed_tail)
        if not stream.eof:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
        if stream.unused_data:  # a multi-member gzip file: the header check above has passed
            rest += gzip.decompress(stream.unused_data)
        return head + rest
    except (zlib.error, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc}); re-copy or re-install the file") from exc


def read_idx(path: str | Path, expected_ndim: int) -> np.ndarray:
    """Read one uint8 IDX file into an array, checking magic, rank and length."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc}); re-copy or re-install the file") from exc
    raw = _decompress(path, data) if path.suffix == ".gz" else data
    if len(raw) < 4:
        raise DataError(f"{path}: file is truncated ({len(raw)} bytes); re-copy it")
    zero, dtype, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype != _UINT8 or ndim != expected_ndim:
        raise DataError(
            f"{path}: not a uint8 IDX file of rank {expected_ndim} "
            f"(magic {raw[:4].hex()}, expected 0000080{expected_ndim}); is it the right file?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: header is truncated; re-copy the file")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if 0 in dims:
        raise DataError(f"{path}: header has a zero dimension ({'x'.join(map(str, dims))}); the file is corrupt")
    size = int(np.prod(dims, dtype=object))  # Python ints: a product of four uint32 does not overflow
    if len(raw) - header != size:
        raise DataError(
            f"{path}: holds {len(raw) - header} data bytes but its header promises "
            f"{size} ({'x'.join(map(str, dims))}); the file is truncated or corrupt, re-copy it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (gzipped when the name ends in .gz). Used by tests and tools."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = bytes([0, 0, _UINT8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def find_split(root: Path, split: str, kind: str) -> Path:
    """Find ``*{split}-{kind}*`` (e.g. train-images-idx3-ubyte.gz, emnist-letters-train-...)."""
    rank = 3 if kind == "images" else 1
    patterns = [f"*{split}-{kind}-idx{rank}-ubyte.gz", f"*{split}-{kind}-idx{rank}-ubyte",
                f"*{split}-{kind}.idx{rank}-ubyte.gz", f"*{split}-{kind}.idx{rank}-ubyte"]
    # The test split is named t10k in MNIST-family releases.
    names = [split, "t10k"] if split == "test" else [split]
    for name in names:
        for pattern in patterns:
            hits = sorted(root.glob(pattern.replace(f"*{split}-", f"*{name}-")))
            if len(hits) > 1:
                raise DataError(f"{root}: several {name} {kind} files ({', '.join(h.name for h in hits)}); "
                                "point data.root at a folder holding one dataset")
            if hits:
                return hits[0]
    raise DataError(
        f"{root}: no {split} {kind} file (expected e.g. {names[-1]}-{kind}-idx{rank}-ubyte.gz); "
        f"set data.root (or --data-dir) to the folder holding the IDX files"
    )


def load_idx_dataset(root: str | Path, split: str = "train",
                     transpose: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 from an MNIST-format folder.

    ``transpose`` undoes EMNIST's column-major storage.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; set data.root (or --data-dir) to the folder holding the IDX files")
    images_path, labels_path = find_split(root, split, "images"), find_split(root, split, "labels")
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path.name} holds {len(images)} images but {labels_path.name} holds "
            f"{len(labels)} labels; the two files do not belong together"
        )
    if transpose:
        images = images.transpose(0, 2, 1)
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))

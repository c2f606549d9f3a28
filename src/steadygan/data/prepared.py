"""Prepared datasets: one memory-mapped uint8 array, its labels and a manifest per folder.

``steadygan prepare SRC -o OUT`` converts an image folder, an MNIST-format IDX folder or
CIFAR-10 python batches into::

    OUT/images.npy     uint8 (N, H, W, C): NHWC, so the NCHW view the loader returns is
                       already channels-last and the trainer never has to copy it
    OUT/labels.npy     int64 (N,), only for labelled data
    OUT/manifest.json  format version, source dataset, shape, count, classes, sha256 of each file

``data.name=prepared`` with ``data.root=OUT`` maps ``images.npy`` copy-on-write: nothing
is read until a batch touches it, every process shares the same page cache, and a set
larger than memory trains. The manifest is written last and the loader refuses a folder
without one, so an interrupted prepare never passes for a dataset.

What is checked when: every load checks the manifest, each file's size and .npy header, and
the labels' range. The first load of a file on a machine also reads it whole and compares
its sha256 with the manifest's; the result is remembered in the cache
(``$STEADYGAN_CACHE/verified/``, keyed by the file's path, size and modification time), so
later loads of the unchanged file read nothing more, and a file changed since (another
modification time) is read again. ``steadygan prepare --verify OUT`` reads every file now.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from .. import progress
from ..errors import ConfigError, DataError, StorageError
from ..files import atomic_write_text, cache_dir, file_sha256, free_space
from .base import InMemoryData, fit_images
from .crops import CropSpec, crop_set

FORMAT = "steadygan-prepared"
VERSION = 1
MANIFEST, IMAGES, LABELS = "manifest.json", "images.npy", "labels.npy"
PREPARED_TEST = "test"  # a prepared folder's own test split, when it has one (a prepared folder itself)
KINDS = ("folder", "idx", "cifar10")
CHUNK = 4096  # images converted and written at a time: bounds the memory a prepare needs


# --- writing ---------------------------------------------------------------------------------

def prepare_dataset(data: InMemoryData, out: Path, source: str, force: bool = False,
                    split: str | None = None) -> Path:
    """Write an in-memory image set to ``out`` as a prepared dataset; returns ``out``.

    ``source`` (the folder it was read from) and ``data.name`` are recorded in the manifest.
    A non-empty ``out`` is refused unless ``force``.
    """
    if not data.is_image or data.samples.ndim != 4 or data.protocol != "image":
        raise DataError(f"dataset '{data.name}': only image datasets (uint8 (N, C, H, W), protocol 'image') "
                        f"can be prepared")
    chunks = (chunk.permute(0, 2, 3, 1).cpu().numpy() for chunk in data.samples.split(CHUNK))
    return _write(Path(out), len(data), data.sample_shape, chunks, data.labels,
                  {"dataset": data.name, "split": split, "source": source, "protocol": data.protocol}, force)


def prepare_source(src: str | Path, out: str | Path, kind: str = "auto", split: str | None = None,
                   resolution: int | None = None, channels: int | None = None, force: bool = False,
                   crops: CropSpec | None = None) -> dict[str, Any]:
    """``steadygan prepare``: read SRC (``kind`` or detected), write OUT; returns the manifest.

    IDX and CIFAR-10 keep their own size unless ``resolution``/``channels`` are given; an
    image folder needs ``resolution`` (channels default 3) and is streamed, one chunk of
    images at a time, so it may be larger than memory. With ``crops``, OUT holds random crops
    of the folder's images instead (see data/crops.py; ``resolution`` defaults to the crop size).
    """
    from .cifar import load_cifar10
    from .folder import class_labels, list_images, read_square_image
    from .idx import load_idx_dataset

    src, out = Path(src).expanduser(), Path(out).expanduser()
    if not src.is_dir():
        raise DataError(f"{src}: no such folder; SRC is an image folder, an MNIST-format IDX folder or "
                        "a CIFAR-10 python folder")
    if resolution is not None and resolution < 8:
        raise ConfigError(f"--resolution must be >= 8 (got {resolution})")
    if channels not in (None, 1, 3):
        raise ConfigError(f"--channels must be 1 or 3 (got {channels})")
    kind = detect_kind(src) if kind == "auto" else kind
    if kind not in KINDS:
        raise ConfigError(f"--kind must be auto or one of {', '.join(KINDS)} (got {kind!r})")
    if split is not None and (kind == "folder" or crops is not None):
        raise ConfigError(f"{src}: a folder of images has no splits; for held-out images prepare crops of "
                          "their test region: --crops N --region test -o OUT/test")
    split = split or "train"
    _check_target(out, force)  # before reading a possibly large source
    source = str(src.resolve())
    if crops is not None:
        if kind != "folder":
            raise ConfigError(f"{src}: --crops cuts crops from a folder of images, not from {kind} data")
        count, shape, chunks, labels, record = crop_set(src, crops, channels or 3, resolution)
        _write(out, count, shape, chunks, labels,
               {"dataset": "crops", "split": crops.region, "source": source, "protocol": "image", "crops": record},
               force)
    elif kind == "folder":
        if resolution is None:
            raise ConfigError(f"{src}: a folder of images has no size of its own: give --resolution "
                              "(and --channels, default 3)")
        channels = channels or 3
        files = list_images(src)
        labels = class_labels(src, files)

        def chunks() -> Iterator[np.ndarray]:
            for i in range(0, len(files), CHUNK):
                yield np.stack([read_square_image(f, resolution, channels) for f in files[i:i + CHUNK]])

        _write(out, len(files), (channels, resolution, resolution), chunks(), labels,
               {"dataset": "folder", "split": None, "source": source, "protocol": "image"}, force)
    else:
        images, labels = load_idx_dataset(src, split) if kind == "idx" else load_cifar10(src, split)
        c, h, w = images.shape[1:]
        if resolution is None and h != w:
            raise ConfigError(f"{src}: the images are {h}x{w}, not square: give --resolution to resize them")
        resolution, channels = resolution or h, channels or c
        if (channels, resolution, resolution) != (c, h, w):
            images = fit_images(images, resolution, channels)  # what data.name=idx/cifar10 would load
        prepare_dataset(InMemoryData(images, labels, kind), out, source, force, split)
    return read_manifest(out)


def detect_kind(src: Path) -> str:
    """idx when MNIST-format files are there, cifar10 for python batches, else folder."""
    if any(src.glob("*idx3-ubyte*")):
        return "idx"
    if (src / "data_batch_1").is_file() or (src / "test_batch").is_file() or (src / "cifar-10-batches-py").is_dir():
        return "cifar10"
    return "folder"


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; choose another -o OUT")
    # A prepared test split written first (OUT/test) leaves OUT free for the training split.
    others = [p for p in out.iterdir() if not (p.name == PREPARED_TEST and (p / MANIFEST).is_file())] \
        if out.is_dir() else []
    if others and not force:
        raise DataError(f"{out}: folder is not empty; choose a new folder, or pass --force to replace "
                        "the prepared dataset in it")


def _write(out: Path, count: int, shape: tuple[int, ...], chunks: Iterable[np.ndarray],
           labels: torch.Tensor | None, meta: dict[str, Any], force: bool) -> Path:
    """Write the arrays to temp files, then rename them into place and write the manifest last.

    A failure while writing (bad image, full disk, Ctrl-C) leaves no temp file and the folder
    as it was; only the short rename phase runs without a manifest, and a folder without one
    is refused by the loader.
    """
    _check_target(out, force)
    c, h, w = shape
    created = not out.exists()
    tmps = {name: out / f".{name}.tmp{os.getpid()}" for name in (IMAGES, LABELS)}
    done = False
    try:
        out.mkdir(parents=True, exist_ok=True)
        # Streamed into a file-backed array: no second full copy of the images in memory.
        array = np.lib.format.open_memmap(tmps[IMAGES], mode="w+", dtype=np.uint8, shape=(count, h, w, c))
        written = 0
        with progress.bar(count, f"writing {out / IMAGES}", unit="image") as shown:
            for chunk in chunks:
                array[written:written + len(chunk)] = chunk
                written += len(chunk)
                shown.update(len(chunk))
        if written != count:
            raise DataError(f"{meta['source']}: {written} images read, {count} expected; did the source change?")
        array.flush()
        del array
        _fsync(tmps[IMAGES])
        if labels is not None:
            with open(tmps[LABELS], "wb") as f:
                np.save(f, labels.cpu().numpy().astype(np.int64), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        files = {IMAGES: _record(tmps[IMAGES])}
        if labels is not None:
            files[LABELS] = _record(tmps[LABELS])
        num_classes = 0 if labels is None else int(labels.max()) + 1
        manifest = {"format": FORMAT, "version": VERSION, **meta, "kind": "image", "shape": [c, h, w],
                    "count": count, "num_classes": num_classes, "layout": "NHWC", "files": files}
        # From here on the folder is not a dataset until the new manifest lands.
        (out / MANIFEST).unlink(missing_ok=True)
        os.replace(tmps[IMAGES], out / IMAGES)
        if labels is not None:
            os.replace(tmps[LABELS], out / LABELS)
        else:
            (out / LABELS).unlink(missing_ok=True)  # a stale one from an earlier, labelled prepare
        atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        _fsync(out)  # the renames themselves
        done = True
    except OSError as exc:
        raise _storage_error(out, exc) from exc
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
        if not done and created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a failed first prepare leaves no empty folder either
    return out


def _storage_error(out: Path, exc: OSError) -> StorageError:
    reason = exc.strerror or str(exc)
    space = free_space(out if out.is_dir() else out.parent)
    return StorageError(f"cannot write the prepared dataset in {out}: {reason} ({space} free on that disk); "
                        "no partial dataset was left")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _record(path: Path) -> dict[str, Any]:
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


# --- reading ---------------------------------------------------------------------------------

def _refuse(path: Path, what: str) -> DataError:
    root = path.parent
    return DataError(f"{path}: {what}; prepare it again: steadygan prepare SRC -o {root} --force")


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The checked manifest of a prepared folder; a one-line DataError otherwise."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; set data.root (or --data-dir) to a folder written by "
                        "`steadygan prepare SRC -o FOLDER`")
    path = root / MANIFEST
    if not path.is_file():
        raise DataError(f"{root}: no {MANIFEST}, so not a prepared dataset (or its prepare was interrupted); "
                        f"write one with: steadygan prepare SRC -o {root} --force")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(path, f"unreadable manifest ({str(exc).splitlines()[0][:100]})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _refuse(path, f"not a {FORMAT} manifest")
    if manifest.get("version") != VERSION or manifest.get("protocol") != "image":
        raise _refuse(path, f"manifest version {manifest.get('version')!r} / protocol {manifest.get('protocol')!r}; "
                            f"this steadygan reads version {VERSION} of image datasets")
    shape, count, k = manifest.get("shape"), manifest.get("count"), manifest.get("num_classes")
    files = manifest.get("files")
    if (not (isinstance(shape, list) and len(shape) == 3 and all(_positive(v) for v in shape)
             and shape[0] in (1, 3)) or not _positive(count)
            or not (isinstance(k, int) and not isinstance(k, bool) and k >= 0)
            or not (isinstance(files, dict) and IMAGES in files and (LABELS in files) == (k > 0)
                    and all(isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values()))):
        raise _refuse(path, "manifest is incomplete or garbled (shape, count, num_classes, files)")
    return manifest


def _positive(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _npy_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, data offset) from an .npy file's header."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            return shape, fortran, dtype, f.tell()
    except FileNotFoundError as exc:
        raise _refuse(path, "missing (the manifest lists it)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise _refuse(path, f"not a readable .npy file ({str(exc).splitlines()[0][:100]})") from exc


def _check_array(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """The file holds exactly an array of this shape and dtype, in C order: a truncated or
    replaced file is refused here, before it is mapped."""
    found_shape, fortran, found_dtype, offset = _npy_header(path)
    if found_dtype != dtype or fortran:
        raise _refuse(path, f"holds {found_dtype}{' (Fortran order)' if fortran else ''}, expected {dtype} in C order")
    if tuple(found_shape) != shape:
        raise _refuse(path, f"holds an array of shape {tuple(found_shape)} but the manifest says {shape}")
    size, expected = path.stat().st_size, offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size != expected:
        raise _refuse(path, f"is {size} bytes, expected {expected} for its shape; the file is truncated or corrupt")


VERIFIED = "verified"  # the cache's folder of files whose sha256 matched their manifest


def _verified_record(path: Path) -> Path:
    return cache_dir(VERIFIED) / (hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32] + ".json")


def _stamp(path: Path, sha256: str) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def verify_files(root: str | Path, manifest: dict[str, Any], cached: bool = True) -> list[str]:
    """Check each file of a prepared folder against the manifest's sha256 (a DataError names
    the first that differs); returns the names read in full. With ``cached``, a file whose
    path, size and modification time match a previous check on this machine is not read."""
    root, read = Path(root), []
    for name, record in manifest["files"].items():
        path = root / name
        stamp_file = _verified_record(path)
        if cached:
            try:
                if json.loads(stamp_file.read_text()) == _stamp(path, record["sha256"]):
                    continue
            except (OSError, ValueError):
                pass
        progress.note(f"checking {path} against its manifest (sha256; once per machine until the file changes)")
        if file_sha256(path) != record["sha256"]:
            raise _refuse(path, "sha256 differs from the manifest's; the file changed after it was prepared")
        read.append(name)
        try:  # a cache that cannot be written only means the next load reads the file again
            stamp_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(stamp_file, json.dumps(_stamp(path, record["sha256"])) + "\n")
        except OSError:
            pass
    return read


def load_prepared(root: str | Path, resolution: int | None = None, channels: int | None = None,
                  verify: bool | str = "cached") -> InMemoryData:
    """A prepared folder as memory-mapped data (``mapped=True``), named "prepared".

    ``resolution``/``channels`` (a config's) must match the prepared size: resizing would
    read the whole set, so a mismatch is a ConfigError naming the prepared values.
    ``verify``: "cached" (default) checks each file's sha256 against the manifest unless this
    machine already did for the unchanged file (see the module docstring); True reads every
    byte now; False checks sizes and headers only.
    """
    root = Path(root).expanduser()
    manifest = read_manifest(root)
    c, h, w = manifest["shape"]
    if (resolution is not None and (resolution, resolution) != (h, w)) or (channels is not None and channels != c):
        raise ConfigError(f"the prepared dataset in {root} holds {manifest['count']} images of {c}x{h}x{w}: set "
                          f"data.resolution={h} data.channels={c} (got resolution={resolution}, channels={channels}), "
                          "or prepare the source again with --resolution/--channels")
    n, k = manifest["count"], manifest["num_classes"]
    images_path, labels_path = root / IMAGES, root / LABELS
    _check_array(images_path, (n, h, w, c), np.dtype(np.uint8))
    if k:
        _check_array(labels_path, (n,), np.dtype(np.int64))
    if verify:
        verify_files(root, manifest, cached=verify == "cached")
    try:
        # Copy-on-write: writable for torch (no warning, no copy), and nothing is read until used.
        mapped = np.load(images_path, mmap_mode="c", allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False) if k else None
    except (OSError, ValueError) as exc:
        raise _refuse(images_path, f"cannot be read ({str(exc).splitlines()[0][:100]})") from exc
    if labels is not None and (labels.min() < 0 or labels.max() + 1 != k):
        raise _refuse(labels_path, f"labels span {labels.min()}..{labels.max()}, the manifest says {k} classes")
    samples = torch.from_numpy(mapped).permute(0, 3, 1, 2)  # NCHW view of NHWC bytes: channels-last strides
    return InMemoryData(samples, None if labels is None else torch.from_numpy(labels), "prepared", "image",
                        mapped=True)


def check_test_split(root: Path) -> None:
    """A prepared folder's ``test/`` must hold what its training split holds (size, channels,
    classes) and, for crops of the same images, pixels the training crops cannot contain: a
    DataError naming the difference and how to prepare it again."""
    test_root = root / PREPARED_TEST
    if not (test_root / MANIFEST).is_file() or not (root / MANIFEST).is_file():
        return
    train, test = read_manifest(root), read_manifest(test_root)
    if train["shape"] != test["shape"]:
        c, h, w = train["shape"]
        raise DataError(f"{test_root} holds {'x'.join(map(str, test['shape']))} images but the training split "
                        f"{c}x{h}x{w}: prepare the test split again at {h} px with {c} channel(s)")
    crops_train, crops_test = train.get("crops"), test.get("crops")
    if crops_train and crops_test:
        if [s["sha256"] for s in crops_train["sources"]] != [s["sha256"] for s in crops_test["sources"]]:
            raise DataError(f"{test_root}: its crops come from other images than the training split's; prepare "
                            "both from the same folder")
        if (crops_train["region"], crops_test["region"]) != ("train", "test") \
                or crops_train["test_share"] != crops_test["test_share"]:
            raise DataError(f"{test_root}: crops of region '{crops_test['region']}' (test share "
                            f"{crops_test['test_share']:g}) beside training crops of region '{crops_train['region']}' "
                            f"(test share {crops_train['test_share']:g}) share pixels; prepare the training split "
                            "with --region train and the test split with --region test, one --test-share")
    if train["num_classes"] != test["num_classes"] and test["num_classes"]:
        raise DataError(f"{test_root} has {test['num_classes']} classes, the training split {train['num_classes']}")


def describe(manifest: dict[str, Any], root: str | Path) -> str:
    """One line for ``steadygan prepare``: what was written and how big it is."""
    c, h, w = manifest["shape"]
    k = manifest["num_classes"]
    size = sum(f["bytes"] for f in manifest["files"].values())
    classes = f"{k} classes" if k else "unlabelled"
    return (f"wrote {root}: {manifest['count']} images of {c}x{h}x{w}, {classes}, {_human(size)} "
            f"(from {manifest['dataset']} {manifest['source']})")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"

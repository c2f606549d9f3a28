"""Writing files so that a reader, a kill or a full disk never leaves half of one behind; a
file's sha256, read in blocks."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from .errors import StorageError

CACHE_ENV = "STEADYGAN_CACHE"


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read 1 MiB at a time (files may be larger than memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it over ``path``: a
    reader (or a run killed half-way) sees the old file or the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")  # per process: parallel writers do not collide
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write (disk full, Ctrl-C) leaves no partial file behind
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def free_space(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown space"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if free < 1024 or unit == "TiB":
            return f"{free:.0f} {unit}" if unit == "B" else f"{free:.1f} {unit}"
        free /= 1024
    return f"{free:.1f} TiB"


def safe_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """:func:`atomic_write` with any write failure turned into a one-line StorageError that
    names the file and the free space; the previous file stays as it was, no temp file is left."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, write)
    except (OSError, RuntimeError) as exc:  # torch.save reports a short write as RuntimeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0][:120]
        raise StorageError(f"cannot write {path}: {reason} ({free_space(path.parent)} free on that disk); "
                           "the previous file is unchanged") from exc


def cache_dir(kind: str) -> Path:
    """Where this machine keeps steadygan's ``kind`` of cache: $STEADYGAN_CACHE/kind if that
    variable is set, else ~/.cache/steadygan/kind (not created here)."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "steadygan") / kind

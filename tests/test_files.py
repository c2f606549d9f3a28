"""Atomic and safe writes: a reader, a kill or a full disk never leaves half of a file."""

from __future__ import annotations

import pytest

from steadygan import files
from steadygan.files import atomic_write_text


def test_atomic_text_write_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "best.json"
    atomic_write_text(path, "old")
    monkeypatch.setattr(files.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["best.json"]


def test_free_space_reads_like_a_person_would_write_it(monkeypatch, tmp_path):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    for free, text in ((500, "500 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (2048, "2.0 KiB"),
                       (5 * 1024 ** 2 + 1, "5.0 MiB"), (3 * 1024 ** 3, "3.0 GiB"),
                       (7 * 1024 ** 4, "7.0 TiB"), (5000 * 1024 ** 4, "5000.0 TiB")):
        monkeypatch.setattr(files.shutil, "disk_usage", lambda _, f=free: usage(0, 0, f))
        assert files.free_space(tmp_path) == text

    def broken(_):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(files.shutil, "disk_usage", broken)
    assert files.free_space(tmp_path) == "unknown space"


def test_safe_write_makes_missing_folders_and_names_a_failure_in_one_line(tmp_path, monkeypatch):
    from steadygan.errors import StorageError
    from steadygan.files import safe_write

    target = tmp_path / "a" / "b" / "file.bin"
    safe_write(target, lambda p: p.write_bytes(b"x"))
    assert target.read_bytes() == b"x"
    monkeypatch.setattr(files, "free_space", lambda path: "3 B")

    def disk_full(p):
        raise OSError(28, "No space left on device")  # before any byte is written: no temp file exists

    def short_write(p):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed\nmore")

    for write, reason in ((disk_full, "No space left on device"),
                          (short_write, "PytorchStreamWriter failed writing file data/0: file write failed")):
        with pytest.raises(StorageError) as exc:
            safe_write(target, write)
        assert str(exc.value) == (f"cannot write {target}: {reason} (3 B free on that disk); the previous file is "
                                  "unchanged")
        assert target.read_bytes() == b"x" and sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_a_long_write_error_is_cut_to_120_characters(tmp_path, monkeypatch):
    from steadygan.errors import StorageError
    from steadygan.files import safe_write

    monkeypatch.setattr(files, "free_space", lambda path: "3 B")

    def long_error(p):
        raise RuntimeError("x" * 200)

    with pytest.raises(StorageError) as exc:
        safe_write(tmp_path / "f.bin", long_error)
    assert str(exc.value) == (f"cannot write {tmp_path / 'f.bin'}: {'x' * 120} (3 B free on that disk); the previous "
                              "file is unchanged")


def test_the_cache_is_under_steadygan_cache_or_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("STEADYGAN_CACHE", str(tmp_path / "c"))
    assert files.cache_dir("verified") == tmp_path / "c" / "verified"
    monkeypatch.setenv("STEADYGAN_CACHE", "~/elsewhere")
    assert files.cache_dir("x") == files.Path.home() / "elsewhere" / "x"
    monkeypatch.delenv("STEADYGAN_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert files.cache_dir("extractors") == tmp_path / "home" / ".cache" / "steadygan" / "extractors"

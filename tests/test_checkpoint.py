"""Checkpoint files: atomic writes that survive a failure part-way, RNG capture and restore."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from steadygan import files
from steadygan.training import checkpoint
from steadygan.errors import CheckpointError
from steadygan.files import atomic_write_text
from steadygan.training.checkpoint import capture_rng, list_checkpoints, load_checkpoint, restore_rng, save_checkpoint


def payload(step: int, **extra) -> dict:
    """The smallest payload load_checkpoint accepts."""
    return {"config": {}, "generator": {}, "step": step, **extra}


def _failing_save(obj, f):
    f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the disk, then the write fails
    raise OSError(28, "No space left on device")


def test_failed_write_keeps_the_previous_checkpoint_and_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "ckpt-00000001.pt"
    save_checkpoint(payload(1, w=torch.arange(4.0)), path)
    before = path.read_bytes()
    monkeypatch.setattr(checkpoint.torch, "save", _failing_save)
    with pytest.raises(OSError):
        save_checkpoint(payload(1, w=torch.zeros(4)), path)
    assert path.read_bytes() == before
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(4.0))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left


def test_failed_first_write_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "ckpt-00000002.pt"
    monkeypatch.setattr(checkpoint.torch, "save", _failing_save)
    with pytest.raises(OSError):
        save_checkpoint(payload(2), path)
    assert list(path.parent.iterdir()) == []
    assert list_checkpoints(tmp_path) == []


def test_atomic_text_write_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "best.json"
    atomic_write_text(path, "old")
    monkeypatch.setattr(files.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["best.json"]


def test_rotation_keeps_the_newest(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(payload(step), tmp_path / "checkpoints" / f"ckpt-{step:08d}.pt", keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000003.pt", "ckpt-00000004.pt"]


def test_restored_rng_repeats_every_generator_draw_for_draw():
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's state
    random.gauss(0, 1)
    state = capture_rng()
    first = (torch.rand(3), np.random.rand(3), np.random.standard_normal(), [random.random() for _ in range(3)],
             random.gauss(0, 1))
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    restore_rng(state)
    again = (torch.rand(3), np.random.rand(3), np.random.standard_normal(), [random.random() for _ in range(3)],
             random.gauss(0, 1))
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1]) and first[2] == again[2]
    assert first[3] == again[3] and first[4] == again[4]


def test_rng_state_survives_a_checkpoint_file(tmp_path):
    np.random.seed(5), random.seed(5), torch.manual_seed(5)
    path = save_checkpoint(payload(0, rng=capture_rng()), tmp_path / "ckpt-00000000.pt")
    expected = (np.random.rand(), random.random(), torch.rand(1))
    np.random.seed(0), random.seed(0), torch.manual_seed(0)
    restore_rng(load_checkpoint(path)["rng"])
    assert (np.random.rand(), random.random()) == expected[:2] and torch.equal(torch.rand(1), expected[2])


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "ckpt-00000001.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a loadable"):
        load_checkpoint(bad)
    torch.save({"format": 999}, bad)
    with pytest.raises(CheckpointError, match="not a steadygan checkpoint of format"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


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


def test_load_matching_names_the_missing_the_extra_and_the_absent():
    from torch import nn

    from steadygan.training.checkpoint import load_matching

    net = nn.Linear(2, 3)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(CheckpointError, match="^the G: no weights stored$"):
        load_matching(net, None, "the G")
    with pytest.raises(CheckpointError, match="^the G has no 'bias': the networks differ"):
        load_matching(net, {"weight": state["weight"]}, "the G")
    with pytest.raises(CheckpointError, match="^the G has 'extra', which this run's network lacks"):
        load_matching(net, {**state, "extra": torch.zeros(1)}, "the G")
    load_matching(net, {k: v + 1 for k, v in state.items()}, "the G")
    assert torch.equal(net.bias.detach(), state["bias"] + 1)


# --- closed from surviving mutants (benchmarks/mutation_module.py checkpoint) --------------------

def test_an_old_config_is_upgraded_to_what_it_computed_and_an_upgrade_changes_nothing_more():
    old = {"train": {"steps": 10},
           "model": {"arch": "dcgan", "width": 64, "depth": 3},
           "d": {"optimizer": "adam", "lr": 2e-4, "betas": [0.5, 0.999], "momentum": 0.9, "nesterov": False,
                 "alpha": 0.99},
           "g": {"optimizer": "sgd", "lr": 1e-2, "betas": [0.5, 0.999], "momentum": 0.9, "nesterov": True,
                 "alpha": 0.99}}
    new = checkpoint.upgrade_config(old)
    assert new["train"] == {"steps": 10, "share_fake": False, "channels_last": False, "fused_d_forward": False,
                            "world_size": 1}
    assert new["model"] == {"arch": "dcgan", "width": 64, "depth": None}  # dcgan has no depth
    assert new["d"] == {"optimizer": "adam", "lr": 2e-4, "betas": [0.5, 0.999], "momentum": None, "nesterov": None,
                        "alpha": None}
    assert new["g"] == {"optimizer": "sgd", "lr": 1e-2, "betas": None, "momentum": 0.9, "nesterov": True,
                        "alpha": None}
    again = checkpoint.upgrade_config({k: dict(v) for k, v in new.items()})
    assert again == new
    current = {"train": {"world_size": 2, "share_fake": True}, "model": {"arch": "mlp", "width": 8, "depth": 2}}
    assert checkpoint.upgrade_config(current)["train"] == {"world_size": 2, "share_fake": True, "channels_last": False,
                                                           "fused_d_forward": False}
    assert current["model"] == {"arch": "mlp", "width": 8, "depth": 2}  # mlp takes both


def test_a_loaded_checkpoint_carries_the_upgraded_config(tmp_path):
    path = save_checkpoint(payload(3, config={"train": {"steps": 3}}), tmp_path / "ckpt-00000003.pt")
    assert load_checkpoint(path)["config"]["train"]["world_size"] == 1


def test_checkpoint_refusals_have_their_whole_text(tmp_path):
    path = tmp_path / "ckpt-00000005.pt"
    torch.save({"format": checkpoint.FORMAT_VERSION, "step": 5}, path)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == f"{path}: not a complete steadygan checkpoint (no config, generator)"
    torch.save({"format": checkpoint.FORMAT_VERSION, **payload(7)}, path)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == f"{path}: holds step 7 but its name says step 5; it was renamed or copied from elsewhere"
    path.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert str(exc.value).startswith(f"{path}: not a loadable steadygan checkpoint (UnpicklingError: ")


def test_a_layer_of_another_shape_is_named_with_both_shapes():
    from torch import nn

    from steadygan.training.checkpoint import load_matching

    with pytest.raises(CheckpointError) as exc:
        load_matching(nn.Linear(2, 3), nn.Linear(2, 4).state_dict(), "the D")
    assert str(exc.value) == ("the D: layer 'weight' has shape (4, 2) there but (3, 2) here; use the same model "
                              "settings (or data size)")


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


def test_the_numpy_rng_keys_are_stored_as_int64():
    keys = capture_rng()["numpy"]["keys"]
    assert keys.dtype == torch.int64 and keys.shape == (624,)  # the Mersenne Twister's state, exactly


class NotAllowedInACheckpoint:
    """A class a weights-only load refuses to build."""


def test_a_checkpoint_that_needs_code_to_load_is_refused(tmp_path):
    path = tmp_path / "ckpt-00000001.pt"
    torch.save({"format": checkpoint.FORMAT_VERSION, **payload(1, extra=NotAllowedInACheckpoint())}, path)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert str(exc.value).startswith(f"{path}: not a loadable steadygan checkpoint (UnpicklingError: ")


def test_checkpoint_paths_and_the_latest_of_a_run(tmp_path):
    from steadygan.training.checkpoint import checkpoint_path, latest_checkpoint

    assert checkpoint_path(tmp_path, 12) == tmp_path / "checkpoints" / "ckpt-00000012.pt"
    assert latest_checkpoint(tmp_path) is None
    for step in (5, 40, 300):
        save_checkpoint(payload(step), checkpoint_path(tmp_path, step))
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 300)


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

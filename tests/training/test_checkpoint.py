"""Checkpoint files: atomic writes that survive a failure part-way, RNG capture and restore."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from steadygan.errors import CheckpointError
from steadygan.training import checkpoint
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



"""`steadygan prepare` and data.name=prepared: exact round trips, a real memory map, the
same training run as in memory, and one-line errors for every broken folder."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from steadygan.cli import main
from steadygan.data import DataError, load_dataset, write_idx
from steadygan.data import prepared as prep
from steadygan.data.base import InMemoryData
from steadygan.data.prepared import load_prepared, prepare_source, read_manifest
from steadygan.errors import ConfigError, StorageError
from steadygan.metrics import dataset_fingerprint
from steadygan.training.build import load_config
from steadygan.training.checkpoint import latest_checkpoint, load_checkpoint
from steadygan.training.trainer import Trainer, new_run_dir


def make_folder(root: Path, classes: tuple[str, ...] = ("cats", "dogs"), per_class: int = 5, seed: int = 0) -> Path:
    """Random-pixel PNGs of several sizes (some not square: the crop matters) in class folders."""
    rng = np.random.default_rng(seed)
    for cls in classes:
        folder = root / cls if cls else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = [(20, 20), (24, 30), (33, 21)][i % 3]
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def make_cifar(root: Path, n: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(n)]}
    (root / "data_batch_1").write_bytes(pickle.dumps(batch))
    return root


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def assert_same_data(a, b) -> None:
    assert torch.equal(a.samples, b.samples)
    assert (a.labels is None) == (b.labels is None)
    if a.labels is not None:
        assert a.labels.dtype == b.labels.dtype and torch.equal(a.labels, b.labels)
    ia, ib = a.info, b.info
    assert (ia.kind, ia.sample_shape, ia.num_classes, ia.protocol) == (ib.kind, ib.sample_shape, ib.num_classes,
                                                                         ib.protocol)


def mapped_files() -> list[tuple[int, int, str]]:
    """(start, end, path) of every file mapped into this process."""
    out = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            start, end = (int(v, 16) for v in parts[0].split("-"))
            out.append((start, end, parts[5]))
    return out


@pytest.fixture
def prepared_idx(tmp_path, idx_dir) -> Path:
    prepare_source(idx_dir, tmp_path / "prep")
    return tmp_path / "prep"


# --- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [None, (16, 3)])
def test_an_idx_set_round_trips_bit_for_bit(tmp_path, idx_dir, size):
    res, ch = size or (28, 1)  # None: the IDX files' own size
    manifest = prepare_source(idx_dir, tmp_path / "prep", resolution=size[0] if size else None,
                              channels=size[1] if size else None)
    assert manifest["dataset"] == "idx" and manifest["shape"] == [ch, res, res] and manifest["count"] == 96
    data = load_dataset("prepared", str(tmp_path / "prep"), resolution=res, channels=ch)
    assert_same_data(data, load_dataset("idx", str(idx_dir), resolution=res, channels=ch))
    assert data.name == "prepared" and data.num_classes == 10 and data.labels.dtype == torch.int64
    assert_same_data(load_prepared(tmp_path / "prep", verify=True), data)  # the recorded sha256s hold


def test_an_image_folder_round_trips_bit_for_bit_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "CHUNK", 3)  # 10 images: chunks of 3, 3, 3, 1
    src = make_folder(tmp_path / "photos")
    manifest = prepare_source(src, tmp_path / "prep", resolution=16, channels=3)
    assert (manifest["dataset"], manifest["count"], manifest["num_classes"]) == ("folder", 10, 2)
    data = load_dataset("prepared", str(tmp_path / "prep"), resolution=16, channels=3)
    assert_same_data(data, load_dataset("folder", str(src), resolution=16, channels=3))
    # The classifier cache key hashes the samples in chunks now: still the bytes of the whole NCHW set.
    whole = hashlib.sha256(f"{tuple(data.samples.shape)}|{data.samples.dtype}|".encode()
                           + data.samples.contiguous().numpy().tobytes() + b"labels|" + data.labels.numpy().tobytes())
    assert dataset_fingerprint(data) == whole.hexdigest()


def test_cifar_batches_round_trip_and_sources_are_detected(tmp_path, idx_dir):
    src = make_cifar(tmp_path / "cifar")
    assert prep.detect_kind(src) == "cifar10" and prep.detect_kind(idx_dir) == "idx"
    assert prep.detect_kind(make_folder(tmp_path / "photos")) == "folder"
    prepare_source(src, tmp_path / "prep")
    data = load_dataset("prepared", str(tmp_path / "prep"), resolution=32, channels=3)
    assert_same_data(data, load_dataset("cifar10", str(src), resolution=32, channels=3))


def test_an_unlabelled_folder_has_no_labels_file(tmp_path):
    prepare_source(make_folder(tmp_path / "flat", classes=("",)), tmp_path / "prep", resolution=8, channels=1)
    assert not (tmp_path / "prep" / "labels.npy").exists()
    data = load_prepared(tmp_path / "prep")
    assert data.labels is None and data.num_classes == 0 and data.samples.shape == (5, 1, 8, 8)


# --- a memory map, never a copy ------------------------------------------------------------------

def test_the_samples_are_a_map_of_the_file_and_channels_last_is_free(prepared_idx):
    data = load_prepared(prepared_idx)
    images = str((prepared_idx / "images.npy").resolve())
    ptr = data.samples.data_ptr()
    assert data.mapped
    assert any(start <= ptr < end and path == images for start, end, path in mapped_files()), \
        "the samples are not backed by images.npy: the loader read the file into memory"
    assert data.samples.is_contiguous(memory_format=torch.channels_last)
    for moved in (data.to(torch.device("cpu")), data.to(torch.device("cpu"), channels_last=True), data.subset(10)):
        assert moved.mapped and moved.samples.data_ptr() == ptr  # no copy, whatever the layout asked


def test_batches_of_a_mapped_set_have_an_in_memory_batchs_values_and_layout(tmp_path, idx_dir):
    prepare_source(idx_dir, tmp_path / "prep", resolution=16, channels=3)  # 3 channels: NHWC != NCHW
    mapped = load_dataset("prepared", str(tmp_path / "prep"), resolution=16, channels=3)
    memory = load_dataset("idx", str(idx_dir), resolution=16, channels=3)
    index = torch.tensor([5, 0, 17, 3])
    for channels_last in (False, True):
        cpu = torch.device("cpu")
        a = mapped.to(cpu).to(cpu, channels_last=channels_last).batch(index, labels=True)
        b = memory.to(cpu).to(cpu, channels_last=channels_last).batch(index, labels=True)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.x.stride() == b.x.stride()


def test_a_mapped_set_stays_on_the_host_and_only_batches_move(tmp_path):
    # The meta device stands in for a GPU here: anything moved there has no data.
    prepare_source(make_folder(tmp_path / "flat", classes=("",)), tmp_path / "prep", resolution=8, channels=3)
    data = load_prepared(tmp_path / "prep")
    on_device = data.to(torch.device("meta"), channels_last=True)
    assert on_device.samples.device.type == "cpu" and on_device.samples.data_ptr() == data.samples.data_ptr()
    x = on_device.batch(torch.tensor([1, 0])).x
    assert x.device.type == "meta" and x.shape == (2, 3, 8, 8) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    in_memory = type(data)(data.samples.clone(), None, "folder")
    assert in_memory.to(torch.device("meta")).samples.device.type == "meta"  # the path a mapped set must not take


# --- training ------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels_last,conditional", [(True, False), (False, True)])
def test_training_on_the_prepared_set_equals_training_in_memory(tmp_path, idx_dir, channels_last, conditional):
    prepare_source(idx_dir, tmp_path / "prep", resolution=16, channels=3)
    common = ["data.resolution=16", "data.channels=3", "data.batch_size=16", "model.width=8", "model.z_dim=8",
              "train.steps=4", "train.ema=0", "train.eval_every=0", "train.sample_every=4",
              "train.checkpoint_every=4", "train.progress=false", f"train.channels_last={str(channels_last).lower()}",
              f"model.conditional={str(conditional).lower()}", "d.penalties=[r1:gamma=1]"]
    states = []
    for name, root in (("idx", idx_dir), ("prepared", tmp_path / "prep")):
        cfg = load_config(None, [f"data.name={name}", f"data.root={root}", *common,
                                 f"train.out_dir={tmp_path / ('runs-' + name)}"])
        trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
        assert trainer.data.mapped == (name == "prepared")
        assert trainer.channels_last == channels_last
        trainer.train()
        states.append(load_checkpoint(latest_checkpoint(trainer.run_dir)))
    memory, mapped = states
    assert mapped["step"] == memory["step"] == 4
    for net in ("generator", "discriminator"):
        for key, tensor in memory[net].items():
            assert torch.equal(tensor, mapped[net][key]), f"{net}.{key} differs"
    assert mapped["data"]["name"] == "prepared" and mapped["data"]["sample_shape"] == memory["data"]["sample_shape"]


def test_the_evaluator_reads_a_prepared_set(prepared_idx):
    from steadygan.metrics import Evaluator
    from steadygan.metrics.sources import DatasetRef, read_reference

    ref = Evaluator("prepared", str(prepared_idx), 28, 1, metrics=["fid"], n=20, extractor="pixels").reference()
    assert ref["n_real"] == 20 and "disjoint halves" in ref["note"]  # one split per prepared folder
    named = read_reference(str(prepared_idx))  # `steadygan eval SAMPLES --ref OUT`
    assert named == DatasetRef("prepared", str(prepared_idx)) and named.native_shape() == (1, 28, 28)


# --- broken folders and bad arguments: one line each ---------------------------------------------

def test_a_folder_without_a_manifest_is_refused(prepared_idx):
    (prepared_idx / "manifest.json").unlink()
    with pytest.raises(DataError) as exc:
        load_dataset("prepared", str(prepared_idx))
    assert "no manifest.json" in one_line(exc) and "steadygan prepare" in str(exc.value)
    with pytest.raises(DataError, match="no default location"):
        load_dataset("prepared", None)
    with pytest.raises(DataError, match="no such folder"):
        load_dataset("prepared", str(prepared_idx / "nope"))


@pytest.mark.parametrize("text,message", [
    ("{not json", "unreadable manifest"),
    ("[1, 2]", "not a steadygan-prepared manifest"),
    ('{"format": "steadygan-prepared", "version": 99, "protocol": "image"}', "version 99"),
])
def test_a_garbled_manifest_is_refused(prepared_idx, text, message):
    (prepared_idx / "manifest.json").write_text(text)
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx)
    assert message in one_line(exc) and "manifest.json" in str(exc.value)


@pytest.mark.parametrize("key,value,message", [
    ("shape", [1, 28], "incomplete or garbled"), ("count", "96", "incomplete or garbled"),
    ("num_classes", 0, "incomplete or garbled"), ("files", {}, "incomplete or garbled"),
    ("format", "stylegan", "not a steadygan-prepared manifest"), ("protocol", "stacked", "protocol 'stacked'"),
])
def test_a_manifest_with_a_wrong_field_is_refused(prepared_idx, key, value, message):
    path = prepared_idx / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest[key] = value
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx)
    assert message in one_line(exc)


def test_arrays_that_disagree_with_the_manifest_are_refused(prepared_idx):
    images = prepared_idx / "images.npy"
    good = images.read_bytes()
    images.write_bytes(good[:-100])
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx)
    assert "images.npy" in one_line(exc) and "truncated" in str(exc.value)
    np.save(images, np.zeros((96, 28, 28, 3), np.uint8))
    with pytest.raises(DataError, match=r"shape \(96, 28, 28, 3\) but the manifest says \(96, 28, 28, 1\)"):
        load_prepared(prepared_idx)
    np.save(images, np.zeros((96, 28, 28, 1), np.float32))
    with pytest.raises(DataError, match="holds float32, expected uint8"):
        load_prepared(prepared_idx)
    images.write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable .npy file"):
        load_prepared(prepared_idx)
    images.write_bytes(good)
    (prepared_idx / "labels.npy").unlink()
    with pytest.raises(DataError, match=r"labels.npy: missing \(the manifest lists it\)"):
        load_prepared(prepared_idx)


def test_labels_that_disagree_with_the_manifests_classes_are_refused(prepared_idx):
    path = prepared_idx / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["num_classes"] = 11
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx)
    assert "labels span 0..9, the manifest says 11 classes" in one_line(exc)


def _flip_last_byte(path: Path) -> None:
    """A one-byte change that keeps the size and the .npy header (and moves the modification time)."""
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    stat = path.stat()
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_verify_finds_a_changed_byte_that_a_plain_load_does_not_read(prepared_idx):
    _flip_last_byte(prepared_idx / "images.npy")
    load_prepared(prepared_idx, verify=False)  # same size and header: sizes alone do not see it
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx, verify=True)
    assert "images.npy: sha256 differs" in one_line(exc)


def test_training_start_reads_a_file_once_per_machine_and_again_after_it_changed(prepared_idx, monkeypatch):
    read = []
    real = prep.file_sha256
    monkeypatch.setattr(prep, "file_sha256", lambda path: read.append(path.name) or real(path))
    load_dataset("prepared", str(prepared_idx))
    assert sorted(read) == ["images.npy", "labels.npy"]  # the first load on this machine checks every byte
    read.clear()
    load_dataset("prepared", str(prepared_idx))
    assert read == []  # unchanged since: nothing is read again
    _flip_last_byte(prepared_idx / "images.npy")
    with pytest.raises(DataError) as exc:
        load_dataset("prepared", str(prepared_idx))
    assert read == ["images.npy"] and one_line(exc) == (
        f"{prepared_idx / 'images.npy'}: sha256 differs from the manifest's; the file changed after it was "
        f"prepared; prepare it again: steadygan prepare SRC -o {prepared_idx} --force")


def test_prepare_verify_checks_every_file_and_names_the_one_that_changed(prepared_idx, capsys):
    assert main(["prepare", "--verify", str(prepared_idx)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"verified {prepared_idx}: images.npy, labels.npy match the manifest's sha256 (")
    _flip_last_byte(prepared_idx / "labels.npy")
    assert main(["prepare", "--verify", str(prepared_idx)]) == 2
    assert "labels.npy: sha256 differs from the manifest's" in capsys.readouterr().err
    assert main(["prepare", "--verify", str(prepared_idx), "-o", "x"]) == 2
    assert "--verify DIR checks a prepared folder: give it alone" in capsys.readouterr().err
    assert main(["prepare"]) == 2
    assert "give SRC and -o OUT to prepare a dataset, or --verify DIR to check one" in capsys.readouterr().err


def test_a_config_of_another_size_is_a_config_error_naming_the_prepared_size(prepared_idx):
    with pytest.raises(ConfigError) as exc:
        load_dataset("prepared", str(prepared_idx), resolution=32, channels=1)
    assert "data.resolution=28 data.channels=1" in one_line(exc)
    with pytest.raises(ConfigError, match="got resolution=28, channels=3"):
        load_dataset("prepared", str(prepared_idx), resolution=28, channels=3)


def test_a_non_empty_folder_needs_force_and_force_replaces_the_set(tmp_path, idx_dir):
    out = tmp_path / "prep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError) as exc:
        prepare_source(idx_dir, out)
    assert "not empty" in one_line(exc) and "--force" in str(exc.value)
    prepare_source(idx_dir, out, force=True)
    assert (out / "notes.txt").read_text() == "mine"  # --force replaces the dataset, nothing else
    prepare_source(make_folder(tmp_path / "flat", classes=("",)), out, resolution=8, channels=1, force=True)
    assert not (out / "labels.npy").exists() and load_prepared(out, verify=True).labels is None


def test_a_failed_prepare_leaves_the_previous_set_and_no_temp_file(tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "CHUNK", 2)  # the broken image is read after a chunk was written
    src = make_folder(tmp_path / "photos")
    out = tmp_path / "prep"
    prepare_source(src, out, resolution=8, channels=3)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (src / "zz-broken").mkdir()
    (src / "zz-broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="x.png: unreadable image"):
        prepare_source(src, out, resolution=8, channels=3, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(DataError):
        prepare_source(src, tmp_path / "new", resolution=8, channels=3)
    assert not (tmp_path / "new").exists()  # a failed first prepare leaves no folder


def test_bad_arguments_are_one_line_errors(tmp_path, idx_dir):
    with pytest.raises(ConfigError, match="has no size of its own: give --resolution"):
        prepare_source(make_folder(tmp_path / "photos"), tmp_path / "a")
    with pytest.raises(ConfigError, match="--resolution must be >= 8"):
        prepare_source(idx_dir, tmp_path / "b", resolution=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train images file"):
        prepare_source(tmp_path / "empty", tmp_path / "c", kind="idx")
    with pytest.raises(DataError, match="no CIFAR-10 batches"):
        prepare_source(idx_dir, tmp_path / "c", kind="cifar10")
    with pytest.raises(DataError, match="only image datasets"):
        prep.prepare_dataset(load_dataset("ring8", toy_samples=100), tmp_path / "d", "ring8")
    with pytest.raises(DataError, match="exists and is not a folder"):
        (tmp_path / "file").write_text("x")
        prepare_source(idx_dir, tmp_path / "file")


# --- the command ---------------------------------------------------------------------------------

def test_the_prepare_command_writes_and_reports_the_set(tmp_path, idx_dir, capsys):
    out = tmp_path / "prep"
    assert main(["prepare", str(idx_dir), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "96 images of 1x28x28, 10 classes" in printed and "KiB" in printed
    assert f"steadygan train --set data.name=prepared --data-dir {out}" in printed
    assert read_manifest(out)["source"] == str(idx_dir.resolve())
    assert main(["prepare", str(idx_dir), "-o", str(out)]) == 2  # not empty, no --force
    assert main(["prepare", str(idx_dir), "-o", str(out), "--force", "--split", "test"]) == 0
    assert read_manifest(out)["count"] == 48 and read_manifest(out)["split"] == "test"


def test_the_prepare_command_answers_a_bad_source_with_one_line(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "nope"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("steadygan prepare: error: ") and "no such folder" in err[0]
    make_folder(tmp_path / "photos")
    assert main(["prepare", str(tmp_path / "photos"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resolution" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_prepare_help_shows_how_to_train_on_the_result(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "--help"])
    assert exc.value.code == 0
    assert "steadygan train --set data.name=prepared --data-dir" in capsys.readouterr().out


# --- closed from surviving mutants (benchmarks/mutation.sh): exact texts, edges, helpers ---------

def test_the_manifest_records_every_field_and_is_indented_json(tmp_path):
    src = make_folder(tmp_path / "photos", classes=("a",), per_class=2)
    prepare_source(src, tmp_path / "prep", resolution=8)  # channels default to 3 for a folder
    text = (tmp_path / "prep" / "manifest.json").read_text()
    manifest = json.loads(text)
    assert text == json.dumps(manifest, indent=2) + "\n"
    files = manifest.pop("files")
    assert manifest == {"format": "steadygan-prepared", "version": 1, "dataset": "folder", "split": None,
                        "source": str(src.resolve()), "protocol": "image", "kind": "image", "shape": [3, 8, 8],
                        "count": 2, "num_classes": 1, "layout": "NHWC"}
    assert set(files) == {"images.npy", "labels.npy"}
    load_prepared(tmp_path / "prep", verify=True)  # one class: a labels file, and it loads


def test_describe_names_the_size_and_the_labelling():
    manifest = {"shape": [1, 8, 8], "num_classes": 0, "count": 5, "dataset": "folder", "source": "/x",
                "files": {"images.npy": {"bytes": 100}}}
    assert prep.describe(manifest, "out") == "wrote out: 5 images of 1x8x8, unlabelled, 100 B (from folder /x)"
    manifest.update(num_classes=2, files={"images.npy": {"bytes": 3 << 20}, "labels.npy": {"bytes": 1 << 19}})
    assert prep.describe(manifest, "out") == "wrote out: 5 images of 1x8x8, 2 classes, 3.5 MiB (from folder /x)"


@pytest.mark.parametrize("n,text", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
                                    ((1 << 20) - 1, "1024.0 KiB"), (1 << 20, "1.0 MiB"), (5 << 30, "5.0 GiB"),
                                    (3 << 40, "3.0 TiB")])
def test_human_sizes_switch_unit_at_1024(n, text):
    assert prep._human(n) == text


def test_cifar_sources_are_detected_by_their_test_batch_or_their_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "test_batch").write_bytes(b"")
    (tmp_path / "b" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "test_batch").mkdir()  # a folder of that name is not a batch
    assert [prep.detect_kind(tmp_path / x) for x in "abc"] == ["cifar10", "cifar10", "folder"]


def test_the_split_asked_for_is_the_one_prepared(tmp_path):
    src = make_cifar(tmp_path / "cifar", n=4)
    rng = np.random.default_rng(1)
    test_batch = {b"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8), b"labels": [1] * 6}
    (src / "test_batch").write_bytes(pickle.dumps(test_batch))
    manifest = prepare_source(src, tmp_path / "prep", split="test")
    assert manifest["count"] == 6 and manifest["split"] == "test"


def test_argument_errors_have_their_whole_text(tmp_path, idx_dir):
    out = tmp_path / "out"
    cases = [
        (dict(src=tmp_path / "nope"), DataError,
         f"{tmp_path / 'nope'}: no such folder; SRC is an image folder, an MNIST-format IDX folder or a CIFAR-10 "
         "python folder"),
        (dict(src=idx_dir, channels=2), ConfigError, "--channels must be 1 or 3 (got 2)"),
        (dict(src=idx_dir, kind="tfrecord"), ConfigError,
         "--kind must be auto or one of folder, idx, cifar10 (got 'tfrecord')"),
        (dict(src=make_folder(tmp_path / "photos")), ConfigError,
         f"{tmp_path / 'photos'}: a folder of images has no size of its own: give --resolution (and --channels, "
         "default 3)"),
    ]
    for kwargs, error, text in cases:
        with pytest.raises(error) as exc:
            prepare_source(out=out, **kwargs)
        assert str(exc.value) == text
    out.mkdir()
    (out / "x").write_text("x")
    with pytest.raises(DataError) as exc:
        prepare_source(idx_dir, out)
    assert str(exc.value) == (f"{out}: folder is not empty; choose a new folder, or pass --force to replace the "
                              "prepared dataset in it")


def test_a_non_square_source_needs_a_resolution(tmp_path):
    src = tmp_path / "idx"
    src.mkdir()
    write_idx(src / "train-images-idx3-ubyte", np.zeros((4, 8, 12), np.uint8))
    write_idx(src / "train-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    with pytest.raises(ConfigError) as exc:
        prepare_source(src, tmp_path / "prep")
    assert str(exc.value) == f"{src}: the images are 8x12, not square: give --resolution to resize them"
    assert prepare_source(src, tmp_path / "prep", resolution=8)["shape"] == [1, 8, 8]


def test_only_uint8_image_protocol_data_can_be_prepared(tmp_path):
    stacked = InMemoryData(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), None, "stacked", "stacked")
    floats = InMemoryData(torch.zeros(2, 1, 8, 8), None, "floats", "image")
    rows = InMemoryData(torch.zeros(2, 8, 8, dtype=torch.uint8), None, "rows", "image")  # no channel axis
    for data in (stacked, floats, rows):
        with pytest.raises(DataError) as exc:
            prep.prepare_dataset(data, tmp_path / "d", "src")
        assert str(exc.value) == (f"dataset '{data.name}': only image datasets (uint8 (N, C, H, W), protocol "
                                  "'image') can be prepared")
    images = InMemoryData(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), None, "folder")
    prep.prepare_dataset(images, tmp_path / "d", "src")
    with pytest.raises(DataError, match="folder is not empty; choose a new folder"):  # force is off unless asked
        prep.prepare_dataset(images, tmp_path / "d", "src")


def test_prepare_creates_missing_parent_folders(tmp_path, idx_dir):
    prepare_source(idx_dir, tmp_path / "a" / "b" / "prep")
    assert load_prepared(tmp_path / "a" / "b" / "prep").samples.shape == (96, 1, 28, 28)


def test_a_source_that_yields_fewer_images_than_counted_is_refused(tmp_path):
    chunks = iter([np.zeros((2, 8, 8, 1), np.uint8)])
    with pytest.raises(DataError) as exc:
        prep._write(tmp_path / "prep", 3, (1, 8, 8), chunks, None, {"source": "/photos"}, False)
    assert str(exc.value) == "/photos: 2 images read, 3 expected; did the source change?"
    assert not (tmp_path / "prep").exists()


def test_a_failed_prepare_into_an_existing_empty_folder_keeps_the_folder(tmp_path):
    (tmp_path / "prep").mkdir()
    with pytest.raises(DataError):
        prep._write(tmp_path / "prep", 3, (1, 8, 8), iter([]), None, {"source": "/photos"}, False)
    assert (tmp_path / "prep").is_dir() and not any((tmp_path / "prep").iterdir())


def test_a_disk_error_while_writing_is_a_storage_error_naming_the_free_space(tmp_path, idx_dir, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prep, "free_space", lambda path: f"<free of {Path(path).name}>")
    monkeypatch.setattr(os, "replace", full_disk)
    out = tmp_path / "prep"
    with pytest.raises(StorageError) as exc:
        prepare_source(idx_dir, out)
    assert str(exc.value) == (f"cannot write the prepared dataset in {out}: No space left on device "
                              "(<free of prep> free on that disk); no partial dataset was left")
    monkeypatch.setattr(Path, "mkdir", full_disk)  # the folder itself cannot be made: the parent's space
    with pytest.raises(StorageError) as exc:
        prepare_source(idx_dir, tmp_path / "new")
    assert f"(<free of {tmp_path.name}> free on that disk)" in str(exc.value)
    monkeypatch.undo()
    monkeypatch.setattr(prep, "free_space", lambda path: "?")
    def bare_error(*args):
        raise OSError("bare")  # no errno: the message is the exception's text

    monkeypatch.setattr(os, "replace", bare_error)
    with pytest.raises(StorageError) as exc:
        prepare_source(idx_dir, tmp_path / "prep")
    assert str(exc.value).startswith(f"cannot write the prepared dataset in {tmp_path / 'prep'}: bare (? free")


def test_a_refusal_names_the_folder_to_prepare_again(prepared_idx):
    (prepared_idx / "manifest.json").write_text("{not json")
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx)
    try:
        json.loads("{not json")
    except json.JSONDecodeError as error:
        reason = str(error)
    assert str(exc.value) == (f"{prepared_idx / 'manifest.json'}: unreadable manifest ({reason}); prepare it again: "
                              f"steadygan prepare SRC -o {prepared_idx} --force")
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx / "nope")
    assert str(exc.value).endswith("to a folder written by `steadygan prepare SRC -o FOLDER`")


@pytest.mark.parametrize("key,value", [("num_classes", -1), ("num_classes", True), ("count", 0),
                                       ("files", {"images.npy": "abc", "labels.npy": {"sha256": "x"}})])
def test_manifest_fields_at_their_edges_are_refused(prepared_idx, key, value):
    path = prepared_idx / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest[key] = value
    if key == "num_classes":
        manifest["files"].pop("labels.npy")  # unlabelled, so only the value of num_classes is wrong
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx)
    assert str(exc.value) == (f"{path}: manifest is incomplete or garbled (shape, count, num_classes, files); "
                              f"prepare it again: steadygan prepare SRC -o {prepared_idx} --force")


def test_npy_files_of_format_version_2_load_and_other_versions_are_refused(prepared_idx):
    images = prepared_idx / "images.npy"
    array = np.load(images)
    with open(images, "wb") as f:
        np.lib.format.write_array(f, array, version=(2, 0))
    # Rewritten, the file no longer has the sha256 its manifest recorded: the format alone is tested.
    loaded = load_prepared(prepared_idx, verify=False)
    assert torch.equal(loaded.samples.permute(0, 2, 3, 1), torch.from_numpy(array))
    raw = bytearray(images.read_bytes())
    raw[6] = 3  # the major version byte after the magic
    images.write_bytes(bytes(raw))
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx)
    assert str(exc.value).startswith(f"{images}: not a readable .npy file (unsupported .npy version (3, 0))")


def test_a_fortran_order_array_is_refused_by_name(prepared_idx):
    images = prepared_idx / "images.npy"
    np.save(images, np.asfortranarray(np.load(images)))
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx)
    assert "holds uint8 (Fortran order), expected uint8 in C order" in str(exc.value)


def test_a_header_whose_element_count_overflows_int64_is_refused_as_truncated(prepared_idx):
    # 2**32 x 2**16 x 2**16 x 1 bytes wraps to 0 in int64: the size check must count exactly.
    images = prepared_idx / "images.npy"
    with open(images, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                 "shape": (2 ** 32, 2 ** 16, 2 ** 16, 1)})
    path = prepared_idx / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(count=2 ** 32, shape=[1, 2 ** 16, 2 ** 16], num_classes=0)
    manifest["files"].pop("labels.npy")
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx)
    assert f"{images}: is {images.stat().st_size} bytes, expected " in str(exc.value)
    assert "for its shape; the file is truncated or corrupt" in str(exc.value)


def test_an_unmappable_file_is_a_one_line_refusal(prepared_idx, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("mmap failed\nsecond line")

    monkeypatch.setattr(np, "load", broken)
    with pytest.raises(DataError) as exc:
        load_prepared(prepared_idx)
    assert str(exc.value) == (f"{prepared_idx / 'images.npy'}: cannot be read (mmap failed); prepare it again: "
                              f"steadygan prepare SRC -o {prepared_idx} --force")

"""Training a translation pair (pix2pix) on paired data: config checks before any data is read,
exact resume with R1, the L1 term, EMA and the health probe, a picture of input | output |
target, a short run that beats the best input-blind prediction, and `steadygan translate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from steadygan.cli import main
from steadygan.core.pair import generate
from steadygan.data import load_dataset
from steadygan.errors import ConfigError
from steadygan.metrics.translation import paired_scores
from steadygan.training.build import build_pair, load_config
from steadygan.training.checkpoint import latest_checkpoint, load_checkpoint
from steadygan.training.sampling import load_generator
from steadygan.training.trainer import train


def _cfg(tmp_path, root, *sets):
    return load_config(None, [
        "data.name=edges2fashion", f"data.root={root}", "data.batch_size=16", "model.arch=pix2pix", "model.width=8",
        "model.z_dim=8", "train.steps=6", "train.sample_every=3", "train.checkpoint_every=3", "train.progress=false",
        f"train.out_dir={tmp_path / 'runs'}", *sets])


def test_paired_data_with_a_model_that_ignores_the_inputs_warns(tmp_path):
    with pytest.warns(UserWarning, match="learns the targets alone; to translate, start from configs/edges2fashion"):
        _cfg(tmp_path, tmp_path, "model.arch=dcgan")


@pytest.mark.parametrize(("sets", "message"), [
    (["data.name=idx"], "model 'pix2pix' translates input images: it needs paired data (data.name: edges2fashion, "
                        "pairs)"),
    (["model.arch=dcgan", "g.penalties=[l1-target]"], "l1-target pulls each output towards its input's own target"),
    (["model.conditional=true"], "conditioned on its input image; set model.conditional=false"),
])
def test_what_does_not_fit_a_translation_run_is_refused_before_data_is_read(tmp_path, sets, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _cfg(tmp_path, tmp_path / "no-such-folder", *sets)


@pytest.mark.slow
@pytest.mark.parametrize("augment", [[], ["train.augment=diffaugment:p=0.5"]])
def test_resume_is_bit_exact_for_a_translation_run(tmp_path, idx_dir, resume_matches_straight, augment):
    sets = ["d.penalties=[r1:gamma=1]", "g.penalties=[l1-target]", "train.ema=0.5", "train.health_every=2", *augment]
    resume_matches_straight(_cfg(tmp_path, idx_dir, *sets), _cfg(tmp_path, idx_dir, *sets, "train.steps=3"))


@pytest.mark.parametrize("compile_mode", ["none", "default"])
def test_an_augmented_pix2pix_d_moves_each_input_with_its_output(tmp_path, idx_dir, compile_mode):
    """Also under torch.compile, which compiles D inside its augmentation (training/fast_paths.py)."""
    from steadygan.core.augment import AugmentedDiscriminator
    from steadygan.training.trainer import Trainer

    trainer = Trainer(_cfg(tmp_path, idx_dir, "train.augment=diffaugment", f"train.compile={compile_mode}"), None)
    d = trainer.d.net
    assert isinstance(d, AugmentedDiscriminator) and (d.paired, d.slots) == (True, 1)
    assert (d.discriminator is trainer.pair.discriminator) == (compile_mode == "none")


@pytest.mark.slow
def test_the_run_records_the_input_shape_probes_health_and_draws_input_output_target(tmp_path, idx_dir):
    cfg = _cfg(tmp_path, idx_dir, "train.health_every=2", "train.log_every=1", "train.samples=8")
    result = train(cfg)
    payload = load_checkpoint(latest_checkpoint(result.run_dir))
    assert payload["data"]["condition_shape"] == [1, 28, 28]
    rows = [line for line in (result.run_dir / "stats.jsonl").read_text().splitlines() if "Health/diversity" in line]
    assert rows
    # The picture: rows of (input, output, target) triplets, four per row; its inputs are the
    # edge maps of the fixed training pairs (all black or white), its targets their garments.
    picture = np.asarray(Image.open(result.samples).convert("L"))[::2, ::2]  # drawn at twice the size
    pad, side = 2, 28
    tile = [picture[pad:pad + side, pad + k * (side + pad):pad + k * (side + pad) + side] for k in range(3)]
    assert set(np.unique(tile[0])) <= {0, 255} and picture.shape[1] == pad + 12 * (side + pad)
    data = load_dataset("edges2fashion", str(idx_dir), "train", 28, 1)
    matches = [i for i in range(len(data)) if np.array_equal(data.samples[i, 0].numpy(), tile[2])]
    assert matches and all(np.array_equal(data.conditions[i, 0].numpy(), tile[0]) for i in matches)


@pytest.mark.slow
def test_the_periodic_evaluation_scores_the_test_inputs_translations_against_their_targets(tmp_path, idx_dir):
    cfg = _cfg(tmp_path, idx_dir, "train.eval_every=3", "train.eval_n=20", "train.eval_metrics=[fid,pr]")
    result = train(cfg)
    rows = [json.loads(line) for line in (result.run_dir / "stats.jsonl").read_text().splitlines()
            if "Metric/l1" in line]
    assert [r["step"] for r in rows] == [3, 6]
    assert all(r["Metric/fid"] > 0 for r in rows)
    assert (result.run_dir / "checkpoints" / "best.pt").is_file()
    # The logged scores are those of the saved generator's translations of the first 20 test inputs
    # (noise from the run's seed) against their own targets.
    loaded = load_generator(result.run_dir, result.run_dir / "checkpoints" / "ckpt-00000006.pt")
    test = load_dataset("edges2fashion", str(idx_dir), "test", 28, 1)
    pairs = test.batch(torch.arange(20), conditions=True)
    outputs = generate(loaded.generator, torch.randn(20, 8, generator=torch.Generator().manual_seed(0)), pairs.y)
    expected = paired_scores(outputs, pairs.x)
    assert {k: rows[-1][f"Metric/{k}"] for k in expected} == pytest.approx(expected, rel=1e-5)
    # Beside them, the identity map's L1 on the same pairs (the report's failure rule reads it).
    identity = paired_scores(pairs.y, pairs.x)["l1"]
    assert all(r["Metric/l1_identity"] == pytest.approx(identity) for r in rows)


@pytest.mark.slow
def test_a_short_run_beats_every_prediction_that_ignores_the_input(tmp_path, make_idx_dir):
    # The squares' position is set by the class, so the edge map says where the square is. The
    # best input-blind prediction under L1 is the per-pixel median of the training targets;
    # measured: after 300 steps the translation's L1 is 0.18, the median's 0.29, the mean's
    # 0.40, the identity map's 1.68 (pixel range -1..1).
    root = make_idx_dir(tmp_path / "idx", n=512)
    cfg = _cfg(tmp_path, root, "data.batch_size=32", "train.steps=300", "train.ema=0", "g.penalties=[l1-target]",
               "train.sample_every=1000", "train.checkpoint_every=1000", "train.health_every=0")
    result = train(cfg)
    loaded = load_generator(result.run_dir)
    test = load_dataset("edges2fashion", str(root), "test", 28, 1)
    pairs = test.batch(torch.arange(len(test)), conditions=True)
    train_targets = load_dataset("edges2fashion", str(root), "train", 28, 1).batch(torch.arange(512)).x
    with torch.no_grad():
        out = loaded.generator(torch.randn(len(test), 8, generator=torch.Generator().manual_seed(0)), pairs.y)
    l1 = (out - pairs.x).abs().mean().item()
    median = (train_targets.median(0, keepdim=True).values - pairs.x).abs().mean().item()
    identity = (pairs.y - pairs.x).abs().mean().item()
    assert l1 < median < identity


@pytest.mark.slow
def test_translate_writes_an_image_a_folder_and_a_test_picture(tmp_path, idx_dir, capsys):
    result = train(_cfg(tmp_path, idx_dir))
    run = str(result.run_dir)
    edges = tmp_path / "in" / "a.png"
    edges.parent.mkdir()
    Image.fromarray(np.full((40, 30), 255, dtype=np.uint8)).save(edges)  # not square, not 28 px: made so
    assert main(["translate", run, "--image", str(edges), "-o", str(tmp_path / "one.png")]) == 0
    assert Image.open(tmp_path / "one.png").size == (28, 28)
    assert main(["translate", run, "--folder", str(edges.parent), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "a.png").is_file()
    before = edges.read_bytes()
    for inside in (edges.parent, edges.parent / "sub"):  # never into the inputs
        assert main(["translate", run, "--folder", str(edges.parent), "-o", str(inside)]) == 2
        assert "is inside --folder" in capsys.readouterr().err
    Image.fromarray(np.full((28, 28), 255, dtype=np.uint8)).save(edges.with_suffix(".jpg"))
    assert main(["translate", run, "--folder", str(edges.parent), "-o", str(tmp_path / "out2")]) == 2
    assert "several inputs would be written to one file" in capsys.readouterr().err
    assert edges.read_bytes() == before and not (tmp_path / "out2").exists()
    edges.with_suffix(".jpg").unlink()
    # The same seed, the same translation.
    one, again = (np.asarray(Image.open(tmp_path / name)) for name in ("one.png", "out/a.png"))
    assert np.array_equal(one, again)
    assert main(["translate", run, "--test", "4", "-o", str(tmp_path / "pairs.png")]) == 0
    out = capsys.readouterr().out
    assert "4 test pairs: input | output | target" in out and "the identity map's" in out
    # The printed L1 is paired_scores' (pixel range 0..1), as eval and the stats have it.
    test = load_dataset("edges2fashion", str(idx_dir), "test", 28, 1)
    pairs = test.batch(torch.arange(4), conditions=True)
    loaded = load_generator(result.run_dir)
    outputs = generate(loaded.generator, torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), pairs.y)
    assert f"L1 {paired_scores(outputs, pairs.x)['l1']:.4f} (the identity map's" in out
    assert main(["sample", run, "-o", str(tmp_path / "s.png")]) == 2
    assert "translates input images: it has no samples of its own" in capsys.readouterr().err
    assert main(["translate", run, "-o", "x.png"]) == 2
    capsys.readouterr()
    assert main(["complete", run, "--test", "2", "-o", str(tmp_path / "c.png")]) == 2
    assert "translates input images; completion searches" in capsys.readouterr().err
    assert main(["eval", run, "--save-stats", str(tmp_path / "s.pt")]) == 2
    assert "--save-stats saves a dataset's statistics" in capsys.readouterr().err
    assert not (tmp_path / "s.pt").exists()


def test_translate_refuses_a_run_that_does_not_translate(tmp_path, idx_dir, image_cfg, capsys):
    result = train(image_cfg(tmp_path, idx_dir, "train.steps=1"))
    assert main(["translate", str(result.run_dir), "--test", "2", "-o", str(tmp_path / "p.png")]) == 2
    assert "does not translate images" in capsys.readouterr().err


def test_a_translation_pair_is_built_for_the_datas_input_shape(tmp_path, idx_dir):
    cfg = _cfg(tmp_path, idx_dir)
    info = load_dataset("edges2fashion", str(idx_dir), "train", 28, 3).info  # RGB targets, 1-channel edge maps
    assert info.condition_shape == (1, 28, 28) and info.sample_shape == (3, 28, 28)
    pair = build_pair(cfg, info)
    b = pair.generate(torch.randn(2, 8), torch.zeros(2, 1, 28, 28))
    assert b.shape == (2, 3, 28, 28)

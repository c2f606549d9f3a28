"""Training a CycleGAN pair on unpaired data: what does not fit is refused before any data is
read, exact resume with the history of generated images and the cycle and identity terms,
and the picture of a | A->B | A->B->A, b | B->A | B->A->B."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from steadygan.errors import ConfigError
from steadygan.training.build import load_config
from steadygan.training.checkpoint import latest_checkpoint, load_checkpoint
from steadygan.training.trainer import train


def _cfg(tmp_path, root, *sets):
    return load_config(None, [
        "data.name=sneakers2boots", f"data.root={root}", "data.batch_size=4", "model.arch=cyclegan", "model.width=8",
        "model.z_dim=8", "loss=least-squares", "g.penalties=[cycle, identity]", "train.fake_history=6",
        "train.steps=6", "train.sample_every=3", "train.checkpoint_every=3", "train.progress=false",
        f"train.out_dir={tmp_path / 'runs'}", *sets])


@pytest.mark.parametrize(("sets", "message"), [
    (["model.arch=dcgan", "g.penalties=[]"], "dataset 'sneakers2boots' holds joint samples of two domains for unpaired "
                                             "translation: train it with model.arch=cyclegan"),
    (["data.name=edges2fashion"], "model 'cyclegan' translates between two unpaired domains: it needs unpaired data "
                                  "(data.name: sneakers2boots, unpaired); dataset 'edges2fashion' has pairs"),
    (["model.arch=pix2pix", "g.penalties=[]"], "model 'pix2pix' translates input images: it needs paired data "
                                               "(data.name: edges2fashion, pairs); dataset 'sneakers2boots' has "
                                               "unpaired domains (model.arch=cyclegan)"),
    (["data.name=edges2fashion", "model.arch=pix2pix"], "cycle, identity translates images back and forth between "
                                                        "two domains: it needs model.arch=cyclegan"),
    (["g.penalties=[l1-target]"], "l1-target pulls each output towards its input's own target: it needs a "
                                  "translation model (model.arch=pix2pix) on paired data"),
    (["train.fake_history=-1"], "train.fake_history must be >= 0 images (got -1)"),
])
def test_what_does_not_fit_a_cycle_run_is_refused_before_data_is_read(tmp_path, sets, message):
    with pytest.raises(ConfigError) as exc:
        _cfg(tmp_path, tmp_path / "no-such-folder", *sets)
    assert str(exc.value).startswith(message)


@pytest.mark.slow
@pytest.mark.parametrize("augment", [[], ["train.augment=diffaugment:p=0.5"]])
def test_resume_is_bit_exact_with_the_history_and_the_cycle_terms(tmp_path, idx_dir, resume_matches_straight, augment):
    sets = ["d.penalties=[r1:gamma=1]", "train.ema=0.5", "train.health_every=2", *augment]
    resume_matches_straight(_cfg(tmp_path, idx_dir, *sets), _cfg(tmp_path, idx_dir, *sets, "train.steps=3"))


def test_an_augmented_cycle_d_jitters_the_two_domains_apart(tmp_path, idx_dir):
    from steadygan.core.augment import AugmentedDiscriminator
    from steadygan.training.trainer import Trainer

    d = Trainer(_cfg(tmp_path, idx_dir, "train.augment=diffaugment"), None).d.net
    assert isinstance(d, AugmentedDiscriminator) and (d.paired, d.slots) == (False, 2)


@pytest.mark.slow
def test_the_history_is_checkpointed_and_changes_what_d_learns(tmp_path, idx_dir):
    with_history = train(_cfg(tmp_path, idx_dir, "train.steps=4"))
    saved = load_checkpoint(latest_checkpoint(with_history.run_dir))["fake_history"]
    assert saved["filled"] == 6 and saved["images"].shape == (6, 2, 28, 28)
    without = train(_cfg(tmp_path, idx_dir, "train.steps=4", "train.fake_history=0"))
    d_with = load_checkpoint(latest_checkpoint(with_history.run_dir))["discriminator"]
    d_without = load_checkpoint(latest_checkpoint(without.run_dir))["discriminator"]
    assert any(not torch.equal(d_with[k], d_without[k]) for k in d_with)
    assert load_checkpoint(latest_checkpoint(without.run_dir))["fake_history"] is None


@pytest.mark.slow
def test_the_picture_shows_both_cycles(tmp_path, idx_dir):
    result = train(_cfg(tmp_path, idx_dir, "train.samples=4", "train.steps=3"))
    picture = np.asarray(Image.open(result.run_dir / "samples" / "step-00000003.png"))
    # 4 joint samples: 4 triplets a | A->B | A->B->A in the first row, 4 of b in the second;
    # 28-px images drawn at 2x, 4 px of border between and around them.
    assert picture.shape[:2] == (2 * (56 + 4) + 4, 12 * (56 + 4) + 4)


@pytest.mark.slow
def test_translate_runs_one_way_and_draws_both_cycles_with_their_l1(tmp_path, idx_dir, capsys):
    import re

    from steadygan.cli import main
    from steadygan.data import load_dataset
    from steadygan.metrics.translation import paired_scores
    from steadygan.models import domain_slots, translate_one_way
    from steadygan.training.sampling import load_generator

    run = train(_cfg(tmp_path, idx_dir, "train.steps=3")).run_dir
    loaded = load_generator(run)
    test = load_dataset("sneakers2boots", str(idx_dir), "test", 28, 1)
    joint = test.batch(torch.arange(2), conditions=True).y
    capsys.readouterr()
    assert main(["translate", str(run), "--test", "2", "-o", str(tmp_path / "cycles.png")]) == 0
    printed = capsys.readouterr().out
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        back_a, back_b = domain_slots(loaded.generator(z, loaded.generator(z, joint)))
    a, b = domain_slots(joint)
    expected = f"L1 A->B->A {paired_scores(back_a, a)['l1']:.4f}, B->A->B {paired_scores(back_b, b)['l1']:.4f}"
    assert expected in printed
    picture = np.asarray(Image.open(tmp_path / "cycles.png"))
    # one row of 4 triplets (a0, a1, b0, b1), 28-px images at --scale's default 2, 4 px of border
    assert picture.shape[:2] == (56 + 2 * 4, 12 * (56 + 4) + 4)

    Image.fromarray(a[0, 0].add(1).mul(127.5).round().byte().numpy()).save(tmp_path / "a.png")
    assert main(["translate", str(run), "--image", str(tmp_path / "a.png"), "--direction", "AtoB",
                 "-o", str(tmp_path / "b.png")]) == 0
    read_back = torch.from_numpy(np.asarray(Image.open(tmp_path / "a.png"), dtype=np.float32)) / 127.5 - 1
    with torch.no_grad():
        one_z = torch.randn(1, 8, generator=torch.Generator().manual_seed(0))  # --seed 0's noise for one image
        expected_b = translate_one_way(loaded.generator, one_z, read_back.view(1, 1, 28, 28), "AtoB")
    written = torch.from_numpy(np.asarray(Image.open(tmp_path / "b.png"), dtype=np.float32))
    assert (written - expected_b[0, 0].add(1).mul(127.5)).abs().max() <= 0.5 + 1e-3  # rounded to a grey level
    capsys.readouterr()
    assert main(["translate", str(run), "--image", str(tmp_path / "a.png"), "-o", str(tmp_path / "x.png")]) == 2
    assert re.search(r"translates between two domains \(CycleGAN\): give --direction AtoB or BtoA\n$",
                     capsys.readouterr().err)


@pytest.mark.slow
def test_periodic_evaluation_and_eval_score_each_direction_as_recomputed_by_hand(tmp_path, idx_dir):
    import json

    from steadygan.data import load_dataset
    from steadygan.metrics.features import build_extractor_for
    from steadygan.metrics.unpaired import silhouette_iou
    from steadygan.models import domain_slots, translate_one_way
    from steadygan.training.evaluation import evaluate_run
    from steadygan.training.sampling import load_generator

    cfg = _cfg(tmp_path, idx_dir, "train.steps=3", "train.eval_every=3", "train.eval_n=8")
    run = train(cfg).run_dir
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    (row,) = [r for r in rows if "Metric/fid_AtoB" in r]
    loaded = load_generator(run, use_ema=False)
    test = load_dataset("sneakers2boots", str(idx_dir), "test", 28, 1)
    # Domain A's distinct test images (joint samples repeat the smaller domain), a seeded order.
    distinct = torch.unique(domain_slots(test.samples)[0], dim=0)
    order = torch.randperm(len(distinct), generator=torch.Generator().manual_seed(cfg.train.seed))
    a = distinct[order][:8].float() / 127.5 - 1
    z = torch.randn(len(a), 8, generator=torch.Generator().manual_seed(cfg.train.seed))
    with torch.no_grad():
        to_b = translate_one_way(loaded.generator, z, a, "AtoB")
        back_a = translate_one_way(loaded.generator, z, to_b, "BtoA")
    classifier = build_extractor_for("classifier", dataset="fashion-mnist", root=str(idx_dir))
    as_uint8 = to_b.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    assert row["Metric/target_share_AtoB"] == pytest.approx((classifier.predict(as_uint8) == 9).double().mean().item())
    source_uint8 = a.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    assert row["Metric/identity_target_share_AtoB"] == pytest.approx(
        (classifier.predict(source_uint8) == 9).double().mean().item())
    assert row["Metric/cycle_l1_AtoB"] == pytest.approx((back_a - a).abs().mean().item() / 2, rel=1e-5)
    result = evaluate_run(run, use_ema=False, n=8, seed=cfg.train.seed)  # the same scores, from the checkpoint
    for key in ("fid_AtoB", "target_share_BtoA", "cycle_l1_BtoA", "silhouette_iou_AtoB"):
        assert result["metrics"][key] == pytest.approx(row[f"Metric/{key}"], rel=1e-6), key
    assert result["baselines"]["identity"]["target_share_AtoB"] == row["Metric/identity_target_share_AtoB"]
    # The nearest-neighbour baseline: each test image's nearest training image of the other domain
    # (pixels, searched one by one here), and that image's nearest of the first domain on the way back.
    train_set = load_dataset("sneakers2boots", str(idx_dir), "train", 28, 1)
    pools = [torch.unique(side, dim=0).double() for side in domain_slots(train_set.samples)]
    tests = [torch.unique(side, dim=0) for side in domain_slots(test.samples)]

    def nearest(image, pool):
        return pool[min(range(len(pool)), key=lambda i: (pool[i] - image).pow(2).sum().item())]

    baseline = result["baselines"]["nearest"]
    for direction, src, tgt, target_class in (("AtoB", 0, 1, 9), ("BtoA", 1, 0, 7)):
        source = tests[src].double()
        lookups = torch.stack([nearest(x, pools[tgt]) for x in source])
        backs = torch.stack([nearest(y, pools[src]) for y in lookups])
        assert baseline[f"target_share_{direction}"] == pytest.approx(
            (classifier.predict(lookups.to(torch.uint8)) == target_class).double().mean().item())
        assert baseline[f"cycle_l1_{direction}"] == pytest.approx((backs - source).abs().mean().item() / 255)
        assert baseline[f"silhouette_iou_{direction}"] == pytest.approx(
            silhouette_iou(source / 127.5 - 1, lookups / 127.5 - 1))
    assert 0 < baseline["silhouette_iou_AtoB"] < 1 and baseline["cycle_l1_AtoB"] > 0  # not the identity's 1 and 0


@pytest.mark.slow
def test_a_cycle_run_keeps_its_best_checkpoint_by_the_mean_fid_and_pixels_give_no_target_share(tmp_path, idx_dir):
    import json

    run = train(_cfg(tmp_path, idx_dir, "train.steps=3", "train.eval_every=3", "train.eval_n=8",
                     "train.eval_extractor=pixels")).run_dir
    row = next(r for r in map(json.loads, (run / "stats.jsonl").read_text().splitlines()) if "Metric/fid" in r)
    assert row["Metric/fid"] == pytest.approx((row["Metric/fid_AtoB"] + row["Metric/fid_BtoA"]) / 2)
    assert not any(k.startswith("Metric/target_share") for k in row)  # pixels make no class decisions
    assert json.loads((run / "checkpoints" / "best.json").read_text())["step"] == 3


def test_unpaired_folders_without_classes_train_and_are_scored_with_pixels_only(tmp_path):
    from steadygan.training.build import build_run
    from steadygan.training.distributed import ProcessContext

    for side, level in (("trainA", 30), ("trainB", 200), ("testA", 40), ("testB", 210)):
        (tmp_path / "u" / side).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((12, 12), level + i, np.uint8)).save(tmp_path / "u" / side / f"{i}.png")
    sets = ["data.name=unpaired", "data.resolution=32", "g.penalties=[cycle]"]
    parts = build_run(_cfg(tmp_path, tmp_path / "u", *sets), ProcessContext.current())  # no evaluation: trains
    assert parts.periodic_eval.cycle is None
    with pytest.raises(ConfigError, match="names no labelled set to train the feature classifier on: score it with "
                                          r"the pixels \(or inception\) extractor \(eval --extractor pixels; "
                                          r"train.eval_extractor=pixels\)"):
        build_run(_cfg(tmp_path, tmp_path / "u", *sets, "train.eval_every=3"), ProcessContext.current())


def test_translate_refuses_a_direction_with_the_test_picture(tmp_path, idx_dir, capsys):
    from steadygan.cli import main

    run = train(_cfg(tmp_path, idx_dir, "train.steps=1", "train.sample_every=1000")).run_dir
    capsys.readouterr()
    assert main(["translate", str(run), "--test", "2", "--direction", "AtoB", "-o", str(tmp_path / "x.png")]) == 2
    assert "--test draws both directions of a CycleGAN run's test samples; --direction is for --image and --folder" \
        in capsys.readouterr().err


def test_a_cyclegan_without_its_cycle_term_warns_and_the_term_takes_the_papers_lambda(tmp_path):
    with pytest.warns(UserWarning, match="without the cycle term .* is two unrelated GANs"):
        _cfg(tmp_path, tmp_path, "g.penalties=[identity]")
    cfg = _cfg(tmp_path, tmp_path, "g.penalties=[cycle:lambda=3]")
    from steadygan.core.penalties import build_penalty

    assert build_penalty(cfg.g.penalties[0], "g").weight == 3.0


@pytest.mark.slow
def test_translate_never_writes_over_its_input_or_an_existing_file(tmp_path, idx_dir, capsys):
    from steadygan.cli import main

    run = train(_cfg(tmp_path, idx_dir, "train.steps=1", "train.sample_every=1000")).run_dir
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "in" / "a.png")
    capsys.readouterr()
    assert main(["translate", str(run), "--image", str(tmp_path / "in" / "a.png"), "--direction", "AtoB",
                 "-o", str(tmp_path / "in" / "a.png")]) == 2
    assert "is the input image: the translation would overwrite it" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"mine")
    assert main(["translate", str(run), "--folder", str(tmp_path / "in"), "--direction", "AtoB",
                 "-o", str(tmp_path / "out")]) == 2
    assert "a.png exists (1 of the 1 translations would replace files)" in capsys.readouterr().err
    assert (tmp_path / "out" / "a.png").read_bytes() == b"mine"

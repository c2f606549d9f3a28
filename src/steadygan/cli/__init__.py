"""Command line: ``steadygan train | sample | complete | eval | methods | compare | report | dirac``
(also ``python -m steadygan``)."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import textwrap
from pathlib import Path

import torch

from ..errors import CheckpointError, StorageError
from ..config import load_config
from ..data import DataError
from ..errors import ConfigError

TRAIN_EXAMPLES = """\
examples:
  steadygan train --config configs/demo-fashion-mnist.yaml
  steadygan train --config configs/r1.yaml --set d.penalties=[r1:gamma=10,every=16]
  steadygan train --set loss=wasserstein --set d.penalties=[wgan-gp] --set train.n_critic=5
  steadygan train --config configs/gc-gan.yaml --set d.clip=value:eps=0.05 --time 600
  steadygan train --config configs/ring8.yaml --steps 5000 --eval-every 500
  steadygan train --config configs/demo-fashion-mnist.yaml --eval-seconds 60   # FID curve over time
  steadygan train --resume runs/00003-demo --steps 20000     # continue to 20k steps
  steadygan train --init-from runs/00003-demo --data-dir my-idx/ --set data.name=idx --steps 500  # fine-tune

Penalties and clippers are specs: 'name' or 'name:key=value,...', e.g. r1:gamma=10,every=16,
seed-param:lambda=0.1,target=output, value:eps=0.01, norm:max_norm=1, agc:clipping=0.02.
`steadygan methods` lists every name; unknown keys and names are errors that list the choices.
"""


def _train_overrides(args: argparse.Namespace) -> list[str]:
    sets = list(args.set or [])
    for flag, key in (("data_dir", "data.root"), ("steps", "train.steps"), ("time", "train.time"),
                      ("out", "train.out_dir"), ("name", "train.name"), ("device", "train.device"),
                      ("seed", "train.seed"), ("eval_every", "train.eval_every"),
                      ("eval_seconds", "train.eval_seconds"), ("init_from", "train.init_from"),
                      ("on_nan", "train.on_nan")):
        value = getattr(args, flag)
        if value is not None:
            sets.append(f"{key}={value}")
    if args.no_progress:
        sets.append("train.progress=false")
    return sets


def cmd_train(args: argparse.Namespace) -> int:
    from ..errors import CollectiveError
    from ..training.distributed import init_from_environment, launched_by_torchrun, shutdown
    from ..errors import TrainingDiverged

    if args.nproc is not None:
        if args.nproc < 1:
            raise ConfigError(f"--nproc must be >= 1 (got {args.nproc})")
        if args.nproc > 1 and not launched_by_torchrun():
            if not args.resume:
                load_config(args.config, _train_overrides(args))  # a bad config: one line here, not N
            return _launch_local(args.nproc, args.argv)
    ctx = init_from_environment(args.device or "auto", args.dist_timeout)
    agreed = False  # every rank ends the same way: they may wait for each other before leaving
    try:
        code = _train_in_context(args, ctx)
        agreed = code == 0  # a rank returning an error code left rank 0 reporting one
        return code
    except TrainingDiverged:
        agreed = True  # divergence is decided collectively
        raise
    except CollectiveError as exc:  # the trainer's message names the run and its last checkpoint
        print(f"steadygan train: error: {exc}", file=sys.stderr)
        return 4
    finally:
        # After an error on this rank alone, leave at once: the others then see the closed
        # connection and stop (waiting for them here would hang until --dist-timeout).
        shutdown(wait_s=30.0 if agreed else 0.0)


def _train_in_context(args: argparse.Namespace, ctx) -> int:
    """Rank 0 reads the config (and, resuming, the run's checkpoint) and hands both to the
    other ranks, which never read the run directory: only rank 0 needs to see it."""
    from ..config import from_dict
    from ..training.trainer import train

    overrides = _train_overrides(args)
    resolved, error = None, None
    if ctx.is_main:
        try:
            if args.resume:
                from ..training.guards import check_unlocked
                from ..training.resume import resume_config

                check_unlocked(Path(args.resume))  # a live run's PID before anything about its checkpoints
                cfg, payload = resume_config(Path(args.resume), args.config, overrides, args.allow_config_change,
                                             ctx.world_size)
            else:
                cfg, payload = load_config(args.config, overrides), None
            resolved = (cfg.to_dict(), payload)
        except (ConfigError, DataError, CheckpointError, StorageError) as exc:
            error = exc
    if ctx.distributed:
        shared = ctx.broadcast_object(("error", str(error)) if error is not None else ("ok", resolved))
        if shared[0] == "error" and not ctx.is_main:
            return 2  # rank 0 reports it
        resolved = shared[1]
    if error is not None:
        raise error
    config, payload = resolved
    cfg = from_dict(config)
    result = train(cfg, run_dir=Path(args.resume) if args.resume else None, resume=payload)
    if not ctx.is_main:
        return 0
    print(f"run directory: {result.run_dir}")
    if ctx.distributed:
        print(f"{ctx.world_size} processes x batch {cfg.data.batch_size} = global batch "
              f"{ctx.world_size * cfg.data.batch_size}")
    print(f"stopped after {result.step} steps ({result.stopped}); checkpoint: {result.checkpoint}")
    print(f"samples: {result.samples}")
    if result.stopped == "interrupted":
        launch = f"steadygan train --nproc {ctx.world_size}" if ctx.distributed else "steadygan train"
        print(f"resume with: {launch} --resume {result.run_dir}")
    return 0


def _launch_local(nproc: int, argv: list[str]) -> int:
    """``steadygan train --nproc N ...``: N processes of ``steadygan train ...`` on this machine
    with torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT on loopback). Each runs
    in its own session: a Ctrl-C in the terminal reaches this process only, which passes
    SIGTERM to every process once (each then stops at the same step with a checkpoint).
    Returns rank 0's exit code (or another rank's, if rank 0 succeeded and it did not)."""
    import signal
    import socket
    import subprocess
    import time

    rest, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--nproc":
            skip = True
        elif not token.startswith("--nproc="):
            rest.append(token)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    threads = str(max(1, (os.cpu_count() or 1) // nproc))  # the cores shared, not oversubscribed
    if nproc > (os.cpu_count() or 1):
        print(f"warning: {nproc} processes on {os.cpu_count()} cores: they will share them and run slowly",
              file=sys.stderr)
    procs = []
    for rank in range(nproc):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        env.setdefault("OMP_NUM_THREADS", threads)
        procs.append(subprocess.Popen([sys.executable, "-m", "steadygan", *rest], env=env, start_new_session=True,
                                      preexec_fn=_stop_with_parent))

    def forward(signum, frame):  # the first signal stops every process at a step boundary; a second aborts
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        # A failed process makes the others fail within seconds (closed connections); one
        # that outlives that by a minute is stopped.
        deadline = None
        while any(p.poll() is None for p in procs):
            if deadline is None and any(p.poll() not in (None, 0) for p in procs):
                deadline = time.monotonic() + 60
            if deadline is not None and time.monotonic() > deadline:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.05)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    codes = [128 - p.returncode if p.returncode < 0 else p.returncode for p in procs]  # killed by signal N: 128+N
    code = codes[0] if codes[0] != 0 else next((c for c in codes if c != 0), 0)
    if code > 128 and all(c > 128 for c in codes):
        print("steadygan train: every process was stopped by a signal before it could write a checkpoint",
              file=sys.stderr)
    return code


def _stop_with_parent() -> None:
    """In a launched process (Linux): SIGTERM when the launcher dies (a closed terminal, kill -9), so
    no process trains on unseen; it then stops at a step boundary with a checkpoint."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def cmd_sample(args: argparse.Namespace) -> int:
    from ..data import mixture
    from ..apps.pictures import save_grid, save_scatter
    from ..training.sampling import load_generator

    if args.n < 1:
        raise ConfigError(f"-n must be >= 1 (got {args.n})")
    loaded = load_generator(args.run_dir, args.checkpoint, use_ema=not args.raw)
    k, n, nrow, labels, what = loaded.num_classes, args.n, None, None, f"{args.n} samples"
    if args.cls is not None:
        if not loaded.conditional:
            raise ConfigError(f"{args.run_dir} is unconditional: --class needs a run trained with model.conditional=true")
        if not 0 <= args.cls < k:
            raise ConfigError(f"--class must be in 0..{k - 1} for this run (got {args.cls})")
        labels, what = torch.full((n,), args.cls), f"{n} samples of class {args.cls}"
    elif loaded.conditional:  # one row per class
        nrow = math.ceil(n / k)
        n, labels = nrow * k, torch.arange(k).repeat_interleave(nrow)
        what = f"{k} classes x {nrow} samples, one row per class"
    fake = loaded.sample(n, seed=args.seed, labels=labels)
    out = Path(args.output)
    if loaded.info.protocol == "mixture":
        save_scatter(fake, mixture(loaded.info.name)[0], out, title=f"{Path(args.run_dir).name} step {loaded.step}")
    else:
        save_grid(fake, out, scale=args.scale, nrow=nrow)
    print(f"wrote {out} ({what} from {loaded.checkpoint.name}, {'EMA' if loaded.ema else 'raw'} generator)")
    return 0


COMPLETE_EXAMPLES = """\
examples:
  steadygan complete runs/00000-demo --test 8 --mask center -o completed.png --strip strip.png
  steadygan complete runs/00000-demo --image shirt.png --mask left -o shirt-completed.png
  steadygan complete runs/00000-demo --folder photos/ --mask hole.png -o completed.png
  steadygan complete runs/00001-conditional --test 8 --class 3 -o threes.png

Searches the generator's latent space for the image that matches the known pixels and that the
discriminator finds realistic (Yeh et al. 2017), then fills the unknown pixels from it; the known
pixels are kept exactly. Masks: center, left, random, or a PNG of the run's size whose dark pixels
(< 128) mark the region to fill. A conditional run tries every class unless --class is given.
"""


def _completion_inputs(args: argparse.Namespace, loaded) -> torch.Tensor:
    from ..training.build import build_data
    from ..apps.completion import read_image
    from ..data.folder import list_images

    shape = loaded.info.sample_shape
    if loaded.info.kind != "image":
        raise ConfigError(f"{args.run_dir} generates 2-D points, not images: nothing to complete")
    given = [x for x in (args.image, args.folder, args.test) if x is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one of --image PATH, --folder DIR or --test N")
    if args.image:
        return read_image(args.image, shape[1], shape[0])
    if args.folder:
        return torch.cat([read_image(f, shape[1], shape[0]) for f in list_images(args.folder)])
    if args.test < 1:
        raise ConfigError(f"--test must be >= 1 (got {args.test})")
    data = build_data(loaded.config, split="test")
    return data.samples[:args.test]


def cmd_complete(args: argparse.Namespace) -> int:
    from ..apps.completion import complete, make_mask, masked_error
    from ..data import to_float_images
    from ..apps.pictures import save_grid
    from ..training.sampling import load_networks

    loaded, D = load_networks(args.run_dir, args.checkpoint, use_ema=not args.raw, device=args.device)
    images = _completion_inputs(args, loaded)
    mask = make_mask(args.mask, images.shape[-1], args.seed)
    labels = None
    if args.cls is not None:
        if not loaded.conditional or not 0 <= args.cls < loaded.num_classes:
            raise ConfigError(f"--class needs a conditional run and a class in 0..{max(loaded.num_classes - 1, 0)}")
        labels = torch.full((len(images),), args.cls, dtype=torch.long)
    result = complete(loaded.generator, images, mask, loaded.config.model.z_dim, D, labels, loaded.num_classes,
                      steps=args.steps, restarts=args.restarts, prior_weight=args.prior_weight, seed=args.seed)
    out = Path(args.output)
    save_grid(to_float_images(result.completed), out, scale=args.scale)
    err = masked_error(result.completed, images, mask)
    print(f"wrote {out} ({len(images)} completed images, {loaded.checkpoint.name}); mean absolute error on the "
          f"masked pixels against the input: {err.mean().item():.4f} (pixel range 0..1)")
    if args.strip:
        masked = torch.where(mask.bool().expand_as(images), images, torch.full_like(images, 128))
        rows = torch.cat([masked, result.completed, images])
        save_grid(to_float_images(rows), args.strip, scale=args.scale, nrow=len(images))
        print(f"wrote {args.strip} (rows: masked, completed, original)")
    return 0


EVAL_EXAMPLES = """\
examples:
  steadygan eval runs/00000-demo                      # FID, KID, precision/recall, density/coverage
  steadygan eval runs/00000-demo --metrics fid,kid --n 5000
  steadygan eval runs/00000-demo --checkpoint runs/00000-demo/checkpoints/best.pt --raw
  steadygan eval runs/00004-ring8                     # 2-D data: modes, high-quality share, KL
  steadygan eval runs/00009-cifar --extractor inception --weights pt_inception-2015-12-05-6726825d.pth
  steadygan eval my-samples/ --ref fashion-mnist      # a folder of PNG/JPEG files against a dataset
  steadygan eval samples.npz --ref my-idx/ --extractor pixels --json
  steadygan eval --ref fashion-mnist --save-stats fm-stats.pt    # compute a reference once ...
  steadygan eval my-samples/ --ref fm-stats.pt                   # ... score any samples against it
  steadygan eval runs/00000-demo --ref fm-stats.pt
  steadygan eval my-samples/ --ref real-images/ --classifier-data fashion-mnist
  steadygan eval my-samples/ --ref real.npy --extractor inception --weights pt_inception-2015-12-05-6726825d.pth

SAMPLES is a run directory (its generator draws --n samples), a folder of images (PNG/JPEG/BMP/WebP,
searched recursively, all of one size), or an .npy/.npz array: uint8 (N, H, W, C) with values
0..255, or float (N, C, H, W) with values in [-1, 1], C = 1 or 3. REF is a dataset name (with
--data-dir when it has no default folder), an MNIST-format IDX folder, a CIFAR-10 folder, a folder
of images, an array, or a file written by --save-stats. A run without --ref is scored against its
own data and metrics.json is written into it; otherwise only the output (and --save-stats) is
written.

A dataset REF is loaded at the samples' size and channels, as training with that data.resolution and
data.channels would; other REFs keep theirs: grayscale samples are repeated to RGB for a colour REF,
RGB files with three equal channels count as grayscale, and real colour against a grayscale REF, or
another image size, is an error (--extractor inception allows other sizes: it resizes both sides to
299x299).

Features: 'classifier' (default) is a small CNN trained once on a labelled train split and cached
(STEADYGAN_CACHE or ~/.cache/steadygan): the dataset REF's, or a run's own data; a folder or array
REF has no labels, so other SAMPLES need --classifier-data DATA (or --extractor pixels / inception).
'inception' is the standard FID network, read from a local pytorch-fid weights file. A statistics
file is scored with the extractor that made it; another one is refused. When REF is a dataset, every
number is printed beside the same metric between two real samples (train split vs test split), the
floor a perfect generator would reach; a folder, array or statistics file has no floor, and the
column is left out.
"""


def _eval_options(args: argparse.Namespace, name: str) -> dict:
    return {"weights": args.weights, "device": args.device} if name == "inception" else {}


def _emit(args: argparse.Namespace, result: dict | None, notes: list[str]) -> None:
    """The table (or one JSON object with --json, notes then going to stderr). A result
    without metrics (statistics saved, nothing scored) is shown by its notes alone."""
    import json

    from ..metrics import format_table, json_safe

    if args.json:
        if result is not None:
            print(json.dumps(json_safe(result), allow_nan=False))
        for note in notes:
            print(note, file=sys.stderr)
        return
    if result is not None and "metrics" in result:
        print(format_table(result))
    for note in notes:
        print(note)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..metrics import evaluate_run
    from ..metrics.evaluate import DEFAULT_SAMPLES, IMAGE_SAMPLES, check_metrics, check_sample_count
    from ..metrics.reference import ExtractorChoice, build_reference, fit_samples, reference_shape, score_images
    from ..metrics.sources import (DatasetRef, ImageSet, read_classifier_data, read_reference, read_samples,
        samples_from_run)
    from ..metrics.stats import save_stats

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if args.samples is None and (args.ref is None or args.save_stats is None):
        raise ConfigError("give SAMPLES to score (a run directory, a folder of images or an .npy/.npz array), "
                          "or --ref REF --save-stats FILE to save a reference's statistics")
    samples = read_samples(args.samples) if args.samples is not None else None
    if isinstance(samples, Path) and args.ref is None:
        # A run against its own data: the evaluation training does, written to RUN/metrics.json.
        if args.data_dir or args.classifier_data:
            raise ConfigError("--data-dir and --classifier-data go with --ref; without it a run is scored "
                              "against its own data")
        name = args.extractor or "classifier"
        result = evaluate_run(samples, args.checkpoint, use_ema=not args.raw, device=args.device,
                              stats_file=args.save_stats, metrics=metrics, n=args.n, extractor=name,
                              seed=args.seed, extractor_options=_eval_options(args, name))
        notes = [f"wrote {samples / 'metrics.json'} ({result['seconds']:.1f} s)"]
        if args.save_stats:
            notes.append(f"wrote {args.save_stats} (statistics of the run's data, {result['samples']['real']} images)")
        _emit(args, result, notes)
        return 0
    if args.ref is None:
        raise ConfigError(f"{args.samples} is not a run directory: give --ref REF to score it against (a dataset, "
                          "a folder of images, an array or a statistics file)")
    if not isinstance(samples, Path) and (args.checkpoint or args.raw):
        raise ConfigError("--checkpoint and --raw are for a run directory")
    metrics = check_metrics(metrics, "--metrics")
    check_sample_count(args.n, metrics)
    ref = read_reference(args.ref, args.data_dir)
    choice = ExtractorChoice(args.extractor, args.weights, args.device,
                             read_classifier_data(args.classifier_data) if args.classifier_data else None)
    origin: dict = {}
    if isinstance(samples, Path):
        n = args.n or (DEFAULT_SAMPLES[ref.protocol] if isinstance(ref, DatasetRef) else IMAGE_SAMPLES)
        samples, run_data, origin = samples_from_run(samples, n, args.seed, args.checkpoint, not args.raw,
                                                     args.device)
        if isinstance(ref, ImageSet) and choice.classifier_data is None:
            choice.classifier_data = run_data  # an unlabelled reference: the classifier of the run's own data
    # Without --n, the reference (and its floor) uses as many images as there are samples:
    # FID's bias grows as the sample count falls, so 300 samples against a 10,000-image
    # floor would make even real images look poor.
    n_ref = args.n if args.n is not None or samples is None else len(samples)
    reference = build_reference(ref, reference_shape(ref, samples), choice, metrics, n_ref, args.seed)
    notes, result = [], None
    if args.save_stats:
        path = save_stats(args.save_stats, reference.stats())
        notes.append(f"wrote {path} ({len(reference.features)} reference features, "
                     f"{reference.extractor.name} extractor)")
        result = {"stats_file": str(path), "reference": reference.source, "features": len(reference.features),
                  "extractor": reference.extractor.record()}
    if samples is not None:
        samples = fit_samples(samples, reference, "the reference")
        result = {**score_images(samples, reference, metrics, args.n, args.seed), **origin}
    _emit(args, result, notes)
    return 0


MODEL_OPTIONS = (
    ("model.conditional=true", "class-conditional pair on labelled data: G gets a class embedding joined to z "
                               "(Mirza & Osindero 2014), D a projection head (Miyato & Koyama 2018); "
                               "samples and grids then take a class (sample --class K)"),
    ("model.spectral_norm=true", "spectral normalisation on every D layer (Miyato et al. 2018)"),
    ("model.g_norm, d_norm", "none | batch | layer | instance (default: the architecture's)"),
    ("model.z_dim", "latent size (default 100)"),
)


def cmd_methods(args: argparse.Namespace) -> int:
    from ..core.augment import AUGMENTS
    from ..core.clipping import CLIPPERS
    from ..data import DATASETS
    from ..core.losses import LOSSES
    from ..metrics import EXTRACTORS
    from ..models import MODELS
    from ..core.optim import OPTIMIZERS
    from ..core.penalties import PENALTIES

    sections = (("losses (loss=NAME)", LOSSES),
                ("gradient penalties (d.penalties=[SPEC,...] / g.penalties=[SPEC,...])", PENALTIES),
                ("clippers (d.clip=SPEC / g.clip=SPEC)", CLIPPERS),
                ("augmentations of D's inputs (train.augment=SPEC)", AUGMENTS), ("models (model.arch=NAME, or package.module:factory for your own networks: see README)", MODELS),
                ("optimisers (d.optimizer / g.optimizer)", OPTIMIZERS), ("datasets (data.name=NAME)", DATASETS),
                ("feature extractors for metrics (steadygan eval --extractor NAME / train.eval_extractor)", EXTRACTORS))
    for title, registry in sections:
        print(f"{title}:")
        for e in registry.entries():
            print(f"  {e.name:<15} {e.summary}")
            details = []
            if registry is PENALTIES:
                cls = e.factory
                details.append(f"for {'+'.join(cls.players).upper()}; {cls.weight_alias}={cls.default_weight:g}")
                details += [f"{k}={v}" for k, v in e.parameters().items() if k != "weight"]
            elif registry is CLIPPERS or registry is AUGMENTS:
                details += [f"{k}={v}" for k, v in e.parameters().items()]
            elif registry is MODELS:
                details += [f"model.{k}={v}" for k, v in e.parameters().items() if k in ("width", "depth")]
            elif registry is OPTIMIZERS:
                details += [f"{k}={v}" for k, v in e.parameters().items() if k not in ("params", "lr")]
            if details:
                print(f"  {'':<15} options: {', '.join(details)}")
            if e.paper:
                print(f"  {'':<15} {e.paper}")
        print()
    print("model options (every architecture):")
    for key, text in MODEL_OPTIONS:
        print(f"  {key:<22} {text}")
    print()
    print("A spec is NAME or NAME:key=value,... e.g. r1:gamma=10,every=16 or value:eps=0.01")
    return 0


PREPARE_EXAMPLES = """\
examples:
  steadygan prepare /usr/share/datasets/fashion-mnist -o prepared/fashion-mnist
  steadygan prepare cifar-10-batches-py/ -o prepared/cifar10-test --split test
  steadygan prepare photos/ -o prepared/photos --resolution 64 --channels 3
  steadygan train --set data.name=prepared --data-dir prepared/photos \\
      --set data.resolution=64 --set data.channels=3

SRC is detected: IDX files -> idx, data_batch_1 -> cifar10, anything else -> a folder of
images (first-level sub-folders are the classes). OUT holds images.npy (uint8 NHWC),
labels.npy and manifest.json; training memory-maps images.npy instead of loading it.
"""


def cmd_prepare(args: argparse.Namespace) -> int:
    from ..data.prepared import describe, prepare_source

    manifest = prepare_source(args.src, args.output, args.kind, args.split, args.resolution, args.channels,
                              args.force)
    c, h, _ = manifest["shape"]
    print(describe(manifest, args.output))
    print(f"train on it: steadygan train --set data.name=prepared --data-dir {args.output} "
          f"--set data.resolution={h} --set data.channels={c}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steadygan",
        description="Train image GANs with gradient penalties or gradient clipping, and measure which stabiliser works.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `steadygan COMMAND --help` for each command's options and examples.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a GAN (or resume one)", epilog=TRAIN_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a GAN from a YAML config plus --set overrides. Writes a numbered run "
                                   "directory (config.yaml, stats.jsonl, tensorboard/, samples/, checkpoints/).")
    p.add_argument("--config", "-c", help="YAML config file (see configs/); defaults apply to missing keys")
    p.add_argument("--set", "-s", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set d.lr=1e-4 (repeatable; values are YAML)")
    p.add_argument("--data-dir", help="dataset folder (same as --set data.root=...)")
    p.add_argument("--steps", type=int, help="generator steps to train (train.steps)")
    p.add_argument("--time", type=float, help="wall-clock budget in seconds (train.time)")
    p.add_argument("--out", help="parent folder of run directories (train.out_dir, default runs/)")
    p.add_argument("--name", help="suffix of the run directory name (train.name)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (train.device)")
    p.add_argument("--seed", type=int, help="random seed (train.seed)")
    p.add_argument("--eval-every", type=int, metavar="N",
                   help="score the generator every N steps (FID/KID/PR, or modes for 2-D data) into "
                        "stats.jsonl and keep checkpoints/best.pt (train.eval_every; see train.eval_*)")
    p.add_argument("--eval-seconds", type=float, metavar="S", help="or every S seconds of training (train.eval_seconds)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its newest checkpoint, exactly")
    p.add_argument("--init-from", metavar="RUN", help="fine-tune: start a new run from RUN's G, D and EMA weights "
                                                      "(a run directory or checkpoint file; fresh optimisers)")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: accept a config that differs from the checkpoint's")
    p.add_argument("--on-nan", choices=("stop", "rollback"),
                   help="when a loss or weight turns NaN/inf: stop (default), or reload the last good checkpoint "
                        "with learning rates x train.rollback_lr_factor, at most train.max_rollbacks times")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train on N processes of this machine (each with torchrun's environment, on loopback); "
                        "data.batch_size is per process, the global batch N times it. Several machines: run "
                        "`torchrun --nnodes ... -m steadygan train ...` on each (README: Scaling out)")
    p.add_argument("--dist-timeout", type=float, default=600.0, metavar="S",
                   help="distributed runs: a process that waits S seconds for another (hung, or lost without a "
                        "closed connection) stops with an error instead of waiting forever (default 600)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="write a grid of samples from a trained run",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  steadygan sample runs/00000-demo -n 64 -o grid.png\n"
                              "  steadygan sample runs/00001-conditional -o classes.png       # one row per class\n"
                              "  steadygan sample runs/00001-conditional --class 3 -n 16 -o threes.png")
    p.add_argument("run_dir", help="a run directory written by `steadygan train`")
    p.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("-o", "--output", default="samples.png", help="output PNG (default samples.png)")
    p.add_argument("--checkpoint", help="a specific checkpoint file (default: the run's newest)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--raw", action="store_true", help="use the raw generator even if the run kept an EMA")
    p.add_argument("--scale", type=int, default=2, help="pixel upscaling of the grid (default 2)")
    p.add_argument("--class", dest="cls", type=int, metavar="K",
                   help="conditional runs: draw every sample of class K (default: a grid with one row per class)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("eval", help="score a run, a folder of images or an array: FID/KID/PR/DC (images) or "
                                    "modes (2-D), with the real-vs-real floor",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EVAL_EXAMPLES,
                       usage="%(prog)s [SAMPLES] [--ref REF] [--save-stats FILE] [--json] [options]",
                       description="Score generated samples against a reference. A run directory alone is scored "
                                   "against its own data (its newest or a given checkpoint) and metrics.json is "
                                   "written into it; any SAMPLES can be scored against --ref REF.")
    p.add_argument("samples", nargs="?", metavar="SAMPLES",
                   help="a run directory, a folder of images, or an .npy/.npz array (see below)")
    p.add_argument("--ref", metavar="REF",
                   help="what to score against: a dataset name, an IDX or CIFAR-10 folder, a folder of images, "
                        "an .npy/.npz array, or a --save-stats file (default for a run: its own data)")
    p.add_argument("--data-dir", metavar="DIR", help="the folder of a dataset named by --ref, when it has no default")
    p.add_argument("--save-stats", metavar="FILE",
                   help="save the reference's features, mean and covariance (and its extractor) to FILE, to score "
                        "many sample sets against it with --ref FILE; SAMPLES may then be left out")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--checkpoint", help="a specific checkpoint file (default: the run's newest)")
    p.add_argument("--metrics", default="fid,kid,pr,dc",
                   help="comma-separated image metrics from fid, kid, pr, dc (default all); 2-D data always "
                        "gets modes / high-quality share / KL")
    p.add_argument("--n", type=int, help="samples used from each side, a seeded subset when there are more "
                                         "(default 10000 images, 26000 stacked, 2500 for 2-D data)")
    p.add_argument("--extractor", help="feature extractor: classifier (default), inception, pixels; against a "
                                       "statistics file, default: the file's")
    p.add_argument("--weights", help="weights file for --extractor inception (pytorch-fid's pt_inception-2015-12-05)")
    p.add_argument("--classifier-data", metavar="DATA",
                   help="labelled data to train the classifier on when REF is a folder or an array (a dataset "
                        "name, an IDX or CIFAR-10 folder, or an image folder with one sub-folder per class)")
    p.add_argument("--seed", type=int, default=0, help="noise and subset seed (default 0)")
    p.add_argument("--raw", action="store_true", help="score the raw generator even if the run kept an EMA")
    p.add_argument("--device", default="cpu", help="device for sampling and features (default cpu)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("complete", help="fill masked regions of images with a trained generator (inpainting)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=COMPLETE_EXAMPLES,
                       description="Complete images with a trained run's generator: latent search with a "
                                   "contextual and a discriminator prior loss, known pixels kept exactly.")
    p.add_argument("run_dir", help="a run directory written by `steadygan train`")
    p.add_argument("--image", help="one image of the run's size")
    p.add_argument("--folder", help="every image in this folder (recursive)")
    p.add_argument("--test", type=int, metavar="N", help="the first N images of the run's dataset test split")
    p.add_argument("--mask", default="center", help="center (default), left, random, or a mask PNG")
    p.add_argument("--class", dest="cls", type=int, metavar="K", help="conditional runs: complete as class K")
    p.add_argument("-o", "--output", default="completed.png", help="grid of completed images (default completed.png)")
    p.add_argument("--strip", help="also write a strip: masked / completed / original rows")
    p.add_argument("--steps", type=int, default=500, help="optimisation steps per image (default 500)")
    p.add_argument("--restarts", type=int, default=4, help="latent starts per image (and class), best kept (default 4)")
    p.add_argument("--prior-weight", type=float, default=0.003,
                   help="weight of the discriminator prior term (default 0.003; 0 = match pixels only)")
    p.add_argument("--checkpoint", help="a specific checkpoint file (default: the run's newest)")
    p.add_argument("--raw", action="store_true", help="use the raw generator even if the run kept an EMA")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent starts and the random mask")
    p.add_argument("--scale", type=int, default=2, help="pixel upscaling of the written grids (default 2)")
    p.add_argument("--device", default="cpu", help="device (default cpu)")
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("prepare", help="convert an image, IDX or CIFAR-10 folder into a memory-mapped dataset",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=PREPARE_EXAMPLES,
                       description="Write SRC as one uint8 array (OUT/images.npy), its labels and a manifest\n"
                                   "for data.name=prepared: datasets larger than memory train from it.")
    p.add_argument("src", metavar="SRC", help="an image folder, an MNIST-format IDX folder or CIFAR-10 python batches")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="folder to write (new or empty)")
    p.add_argument("--kind", default="auto", choices=("auto", "folder", "idx", "cifar10"),
                   help="what SRC holds (default: detected)")
    p.add_argument("--split", default="train", choices=("train", "test"), help="IDX/CIFAR-10 split (default train)")
    p.add_argument("--resolution", type=int, metavar="R",
                   help="resize to R x R (required for a folder; default: the IDX/CIFAR size)")
    p.add_argument("--channels", type=int, choices=(1, 3), metavar="C",
                   help="1 or 3 (default: the source's; 3 for a folder)")
    p.add_argument("--force", action="store_true", help="replace the prepared dataset already in OUT")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("methods", help="list losses, penalties, clippers, models, optimisers and datasets")
    p.set_defaults(func=cmd_methods)

    from ..lab.dirac import add_dirac_parser
    from .lab import add_compare_parser, add_report_parser

    add_compare_parser(sub)
    add_report_parser(sub)
    add_dirac_parser(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.formatwarning = _one_line_warning  # what went wrong, not which source line said so
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --nproc` launches it again
    try:
        return args.func(args)
    except (ConfigError, DataError, CheckpointError, StorageError) as exc:
        print(f"steadygan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        from ..errors import TrainingDiverged

        if isinstance(exc, TrainingDiverged):
            print(f"steadygan {args.command}: {textwrap.fill(str(exc), 100)}", file=sys.stderr)
            return 3
        raise
    except KeyboardInterrupt:  # a second Ctrl-C / SIGTERM: abort without the final checkpoint
        print(f"steadygan {args.command}: aborted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `steadygan methods | head`: the reader left; nothing more to say
        sys.stdout = open(os.devnull, "w")  # the interpreter's final flush must not fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())

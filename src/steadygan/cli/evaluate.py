"""``steadygan eval``: score a run, a folder of images or an array against a reference, with the floor."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from .common import add_checkpoint_flags, add_device_flag, add_progress_flag, add_seed_flag, checked_device

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


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="score a run, a folder of images or an array: FID/KID/PR/DC (images) or "
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
                        "many sample sets against it with --ref FILE; SAMPLES may then be left out; missing folders "
                        "are created")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--metrics", default="fid,kid,pr,dc",
                   help="comma-separated image metrics from fid, kid, pr, dc (default all); 2-D data always "
                        "gets modes / high-quality share / KL, a CycleGAN run its scores in each direction")
    p.add_argument("--n", type=int, help="samples used from each side, a seeded subset when there are more "
                                         "(default 10000 images, 26000 stacked, 2500 for 2-D data)")
    p.add_argument("--extractor", help="feature extractor: classifier (default), inception, pixels; against a "
                                       "statistics file, default: the file's")
    p.add_argument("--weights", help="weights file for --extractor inception (pytorch-fid's pt_inception-2015-12-05)")
    p.add_argument("--classifier-data", metavar="DATA",
                   help="labelled data to train the classifier on when REF is a folder or an array (a dataset "
                        "name, an IDX or CIFAR-10 folder, or an image folder with one sub-folder per class)")
    add_checkpoint_flags(p, "score the raw generator even if the run kept an EMA")
    add_seed_flag(p, "noise and subset seed")
    add_device_flag(p, "cpu", "device for sampling and features")
    add_progress_flag(p)
    p.set_defaults(func=cmd_eval)
    return p


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
    from ..metrics.sources import read_samples

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    args.device = checked_device(args.device)
    if args.samples is None and (args.ref is None or args.save_stats is None):
        raise ConfigError("give SAMPLES to score (a run directory, a folder of images or an .npy/.npz array), "
                          "or --ref REF --save-stats FILE to save a reference's statistics")
    samples = read_samples(args.samples) if args.samples is not None else None
    if isinstance(samples, Path) and args.ref is None:
        return _eval_run_against_its_data(args, samples, metrics)
    if args.ref is None:
        raise ConfigError(f"{args.samples} is not a run directory: give --ref REF to score it against (a dataset, "
                          "a folder of images, an array or a statistics file)")
    if not isinstance(samples, Path) and (args.checkpoint or args.raw):
        raise ConfigError("--checkpoint and --raw are for a run directory")
    return _eval_against_reference(args, samples, metrics)


def _eval_run_against_its_data(args: argparse.Namespace, run_dir: Path, metrics: list[str]) -> int:
    """A run against its own data: the evaluation training does, written to RUN/metrics.json."""
    from ..training.evaluation import evaluate_run

    if args.data_dir or args.classifier_data:
        raise ConfigError("--data-dir and --classifier-data go with --ref; without it a run is scored "
                          "against its own data")
    name = args.extractor or "classifier"
    result = evaluate_run(run_dir, args.checkpoint, use_ema=not args.raw, device=args.device,
                          stats_file=args.save_stats, metrics=metrics, n=args.n, extractor=name,
                          seed=args.seed, extractor_options=_eval_options(args, name))
    notes = [f"wrote {run_dir / 'metrics.json'} ({result['seconds']:.1f} s)"]
    if args.save_stats:
        notes.append(f"wrote {args.save_stats} (statistics of the run's data, {result['samples']['real']} images)")
    _emit(args, result, notes)
    return 0


def _eval_against_reference(args: argparse.Namespace, samples, metrics: list[str]) -> int:
    """Any samples (a run's, a folder's, an array's; or none, to save statistics) against --ref."""
    from ..metrics.evaluate import DEFAULT_SAMPLES, IMAGE_SAMPLES, check_metrics, check_sample_count
    from ..metrics.reference import ExtractorChoice, build_reference, fit_samples, reference_shape, score_images
    from ..metrics.sources import DatasetRef, ImageSet, read_classifier_data, read_reference
    from ..metrics.stats import save_stats
    from ..training.evaluation import samples_from_run

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

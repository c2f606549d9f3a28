"""``steadygan prepare``: an image, IDX or CIFAR-10 folder as one memory-mapped dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.crops import REGIONS, CropSpec
from ..data.prepared import PREPARED_TEST
from ..errors import ConfigError
from .common import add_progress_flag

PREPARE_EXAMPLES = """\
examples:
  steadygan prepare /usr/share/datasets/fashion-mnist -o prepared/fashion-mnist
  steadygan prepare cifar-10-batches-py/ -o prepared/cifar10-test --split test
  steadygan prepare photos/ -o prepared/photos --resolution 64 --channels 3
  steadygan train --set data.name=prepared --data-dir prepared/photos \\
      --set data.resolution=64 --set data.channels=3
  steadygan prepare --verify prepared/photos     # read every file and check it against the manifest
  steadygan prepare photos/ -o prepared/crops --crops 20000 --crop-size 64 --region train --flip
  steadygan prepare photos/ -o prepared/crops/test --crops 2000 --crop-size 64 --region test
                                                 # crops of pixels training never sees: the test split

--crops N cuts N random crops from the images of a folder instead of resizing each image: a
crop's image is drawn in proportion to its region's area, its position uniformly inside it.
--region test is the last --test-share (default 1/4) of each image along its longer side,
--region train the rest: the two never share a pixel. Each crop is labelled with the index of
its source image (a proxy class for the feature classifier). The manifest records the sources'
sha256, the seed and the positions' sha256: the same command on the same files gives the same
set. A prepared folder with a prepared test/ inside uses it as its test split (the evaluator's
reference and floor, the feature classifier's held-out accuracy).

SRC is detected: IDX files -> idx, data_batch_1 -> cifar10, anything else -> a folder of
images (first-level sub-folders are the classes). OUT holds images.npy (uint8 NHWC),
labels.npy and manifest.json; training memory-maps images.npy instead of loading it.

Every training start checks the files' sizes and headers; the first one on a machine also reads
each file whole and checks its sha256 against the manifest, and remembers that (with the file's
modification time) in the cache, so an unchanged set is not read again and a changed one is.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("prepare", help="convert an image, IDX or CIFAR-10 folder into a memory-mapped dataset",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=PREPARE_EXAMPLES,
                       description="Write SRC as one uint8 array (OUT/images.npy), its labels and a manifest\n"
                                   "for data.name=prepared: datasets larger than memory train from it.")
    p.add_argument("src", metavar="SRC", nargs="?",
                   help="an image folder, an MNIST-format IDX folder or CIFAR-10 python batches")
    p.add_argument("-o", "--output", metavar="OUT", help="folder to write (new or empty)")
    p.add_argument("--verify", metavar="DIR", help="check a prepared folder instead: every file's sha256 against "
                                                   "its manifest (reads every byte)")
    p.add_argument("--kind", default="auto", choices=("auto", "folder", "idx", "cifar10"),
                   help="what SRC holds (default: detected)")
    p.add_argument("--split", choices=("train", "test"), help="IDX/CIFAR-10 split (default train)")
    p.add_argument("--resolution", type=int, metavar="R",
                   help="resize to R x R (required for a folder; default: the IDX/CIFAR size)")
    p.add_argument("--channels", type=int, choices=(1, 3), metavar="C",
                   help="1 or 3 (default: the source's; 3 for a folder)")
    p.add_argument("--force", action="store_true", help="replace the prepared dataset already in OUT")
    crops = p.add_argument_group("random crops of a folder of images (patch and texture sets)")
    crops.add_argument("--crops", type=int, metavar="N", help="cut N random crops instead of resizing each image")
    crops.add_argument("--crop-size", type=int, metavar="S", help="crop side in pixels (default 64)")
    crops.add_argument("--seed", type=int, help="the crops' positions (default 0)")
    crops.add_argument("--region", choices=REGIONS, help="all (default), train or test: disjoint parts of "
                                                         "each image")
    crops.add_argument("--test-share", type=float, metavar="F",
                       help="the test region's share of each image's longer side (default 0.25)")
    crops.add_argument("--flip", action="store_true", help="flip half of the crops horizontally")
    add_progress_flag(p)
    p.set_defaults(func=cmd_prepare)
    return p


def cmd_prepare(args: argparse.Namespace) -> int:
    from ..data.prepared import describe, prepare_source

    if args.verify is not None:
        return _verify(args)
    if args.src is None or args.output is None:
        raise ConfigError("give SRC and -o OUT to prepare a dataset, or --verify DIR to check one")
    manifest = prepare_source(args.src, args.output, args.kind, args.split, args.resolution, args.channels,
                              args.force, _crop_spec(args))
    c, h, _ = manifest["shape"]
    print(describe(manifest, args.output))
    out = Path(args.output)
    if out.name == PREPARED_TEST:
        print(f"this is the test split of {out.parent}: evaluation reads it when training on {out.parent}")
    else:
        print(f"train on it: steadygan train --set data.name=prepared --data-dir {args.output} "
              f"--set data.resolution={h} --set data.channels={c}")
    return 0


def _crop_spec(args: argparse.Namespace) -> CropSpec | None:
    """The crops asked for, or None; a crop option without --crops is an error, not ignored."""
    options = {"crop_size": "--crop-size", "seed": "--seed", "region": "--region", "test_share": "--test-share",
               "flip": "--flip"}
    given = [flag for key, flag in options.items() if (args.flip if key == "flip" else getattr(args, key) is not None)]
    if args.crops is None:
        if given:
            raise ConfigError(f"{', '.join(given)} {'apply' if len(given) > 1 else 'applies'} only with --crops N")
        return None
    fields = {"crop_size": "size"}  # the flag --crop-size is CropSpec.size
    spec = CropSpec(args.crops, **{fields.get(key, key): getattr(args, key) for key in options
                                   if getattr(args, key) is not None and key != "flip"}, flip=args.flip)
    spec.check()
    return spec


def _verify(args: argparse.Namespace) -> int:
    from ..data.prepared import read_manifest, verify_files

    if args.src is not None or args.output is not None or args.force or args.crops is not None:
        raise ConfigError("--verify DIR checks a prepared folder: give it alone (no SRC, -o, --force or --crops)")
    manifest = read_manifest(args.verify)
    names = verify_files(args.verify, manifest, cached=False)
    size = sum(record["bytes"] for record in manifest["files"].values())
    print(f"verified {args.verify}: {', '.join(names)} match the manifest's sha256 ({size / 2 ** 20:.1f} MiB read)")
    return 0

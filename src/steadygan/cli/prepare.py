"""``steadygan prepare``: an image, IDX or CIFAR-10 folder as one memory-mapped dataset."""

from __future__ import annotations

import argparse

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


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("prepare", help="convert an image, IDX or CIFAR-10 folder into a memory-mapped dataset",
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
    return p


def cmd_prepare(args: argparse.Namespace) -> int:
    from ..data.prepared import describe, prepare_source

    manifest = prepare_source(args.src, args.output, args.kind, args.split, args.resolution, args.channels,
                              args.force)
    c, h, _ = manifest["shape"]
    print(describe(manifest, args.output))
    print(f"train on it: steadygan train --set data.name=prepared --data-dir {args.output} "
          f"--set data.resolution={h} --set data.channels={c}")
    return 0

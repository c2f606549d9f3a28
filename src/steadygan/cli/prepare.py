"""``steadygan prepare``: an image, IDX or CIFAR-10 folder as one memory-mapped dataset."""

from __future__ import annotations

import argparse

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
    p.add_argument("--split", default="train", choices=("train", "test"), help="IDX/CIFAR-10 split (default train)")
    p.add_argument("--resolution", type=int, metavar="R",
                   help="resize to R x R (required for a folder; default: the IDX/CIFAR size)")
    p.add_argument("--channels", type=int, choices=(1, 3), metavar="C",
                   help="1 or 3 (default: the source's; 3 for a folder)")
    p.add_argument("--force", action="store_true", help="replace the prepared dataset already in OUT")
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
                              args.force)
    c, h, _ = manifest["shape"]
    print(describe(manifest, args.output))
    print(f"train on it: steadygan train --set data.name=prepared --data-dir {args.output} "
          f"--set data.resolution={h} --set data.channels={c}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..data.prepared import read_manifest, verify_files

    if args.src is not None or args.output is not None or args.force:
        raise ConfigError("--verify DIR checks a prepared folder: give it alone (no SRC, -o or --force)")
    manifest = read_manifest(args.verify)
    names = verify_files(args.verify, manifest, cached=False)
    size = sum(record["bytes"] for record in manifest["files"].values())
    print(f"verified {args.verify}: {', '.join(names)} match the manifest's sha256 ({size / 2 ** 20:.1f} MiB read)")
    return 0

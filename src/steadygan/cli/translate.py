"""``steadygan translate``: a trained translation run (pix2pix, or CycleGAN in one direction)
applied to images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..errors import ConfigError
from .common import (
    add_checkpoint_flags,
    add_device_flag,
    add_output_flag,
    add_scale_flag,
    add_seed_flag,
    check_at_least_one,
    checked_device,
)

TRANSLATE_EXAMPLES = """\
examples:
  steadygan translate runs/00000-edges2fashion --test 8 -o pairs.png    # input | output | target, and the L1
  steadygan translate runs/00000-edges2fashion --image edges.png -o garment.png
  steadygan translate runs/00000-edges2fashion --folder sketches/ -o garments/

  steadygan translate runs/00001-sneakers2boots --test 8 -o cycles.png   # a | A->B | A->B->A, b | B->A | B->A->B
  steadygan translate runs/00001-sneakers2boots --image sneaker.png --direction AtoB -o boot.png

Inputs are made square (centre crop) and resized to the run's size and channels, as training data
is. The noise z of each image comes from --seed: the same seed gives the same translation. A
CycleGAN run (model.arch=cyclegan) translates --image and --folder one way, --direction AtoB
(domain A, e.g. trainA/, to B) or BtoA; its --test picture shows both cycles.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("translate", help="apply a trained translation run (pix2pix, cyclegan) to images",
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TRANSLATE_EXAMPLES,
                              description="Translate input images with a trained run's generator (model.arch=pix2pix "
                                          "or cyclegan).")
    p.add_argument("run_dir", help="a run directory written by `steadygan train` with model.arch=pix2pix or cyclegan")
    p.add_argument("--image", help="one input image: -o is the translated image")
    p.add_argument("--folder", help="every image in this folder (recursive): -o is a folder of translations")
    p.add_argument("--test", type=int, metavar="N", help="the first N pairs of the run's test split: -o is a picture "
                                                         "of input | output | target triplets (a CycleGAN run: N "
                                                         "test samples of each domain, a | A->B | A->B->A triplets, "
                                                         "then b | B->A | B->A->B)")
    p.add_argument("--direction", choices=("AtoB", "BtoA"),
                   help="a CycleGAN run: translate --image / --folder from domain A to B, or from B to A")
    add_output_flag(p, None, "the image, folder or picture to write")
    add_checkpoint_flags(p, "use the raw generator even if the run kept an EMA")
    add_seed_flag(p, "seed of the noise z")
    add_scale_flag(p, "the --test picture")
    add_device_flag(p, "cpu")
    p.set_defaults(func=cmd_translate)
    return p


def _read(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    from ..data import to_float_images
    from ..data.folder import read_square_image

    pixels = read_square_image(path, shape[1], shape[0])
    return to_float_images(torch.from_numpy(pixels.copy()).permute(2, 0, 1).unsqueeze(0))


def cmd_translate(args: argparse.Namespace) -> int:
    from ..apps.pictures import save_grid, translation_picture
    from ..core.pair import generate
    from ..data.folder import list_images
    from ..metrics.translation import as_output, paired_scores
    from ..models import translate_one_way
    from ..training.build import build_data
    from ..training.sampling import load_generator

    given = [x for x in (args.image, args.folder, args.test) if x is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one of --image PATH, --folder DIR or --test N")
    if args.output is None:
        raise ConfigError("give -o OUT: the translated image (--image), a folder (--folder) or a picture (--test)")
    check_at_least_one(test=args.test, scale=args.scale)
    loaded = load_generator(args.run_dir, args.checkpoint, use_ema=not args.raw, device=checked_device(args.device))
    shape = loaded.info.condition_shape if loaded.info is not None else None
    if not loaded.translates or shape is None:
        raise ConfigError(f"{args.run_dir} does not translate images (model.arch={loaded.config.model.arch}); "
                          "`steadygan sample` draws from it")
    device = next(loaded.generator.parameters()).device
    cycle = loaded.two_domains
    if cycle and args.test is None and args.direction is None:
        raise ConfigError(f"{args.run_dir} translates between two domains (CycleGAN): give --direction AtoB or BtoA")
    if args.direction is not None and not cycle:
        raise ConfigError(f"--direction is for CycleGAN runs; {args.run_dir} translates one way "
                          f"(model.arch={loaded.config.model.arch})")
    if args.direction is not None and args.test is not None:
        raise ConfigError("--test draws both directions of a CycleGAN run's test samples; --direction is for "
                          "--image and --folder")
    if cycle:
        shape = (shape[0] // 2, *shape[1:])  # one domain's images

    def translate(inputs: torch.Tensor) -> torch.Tensor:
        z = torch.randn(len(inputs), loaded.z_dim, generator=torch.Generator().manual_seed(args.seed)).to(device)
        if cycle and args.direction is not None:
            return translate_one_way(loaded.generator, z, inputs.to(device), args.direction).cpu()
        return generate(loaded.generator, z, inputs.to(device)).cpu()

    out = Path(args.output)
    if args.image and out.resolve() == Path(args.image).resolve():
        raise ConfigError(f"-o {out} is the input image: the translation would overwrite it; write it elsewhere")
    if args.image:
        save_grid(translate(_read(Path(args.image), shape)), out, padding=0)
        print(f"wrote {out} ({args.image} translated by {loaded.checkpoint.name})")
    elif args.folder:
        source = Path(args.folder).resolve()
        if out.resolve() == source or source in out.resolve().parents:
            raise ConfigError(f"-o {out} is inside --folder {args.folder}: the translations would overwrite or mix "
                              "with their inputs; write them to another folder")
        files = list_images(args.folder)
        targets = [(out / f.relative_to(args.folder)).with_suffix(".png") for f in files]
        present = [t for t in targets if t.exists()]
        if present:
            raise ConfigError(f"{present[0]} exists ({len(present)} of the {len(targets)} translations would replace "
                              "files): write them to a new or empty folder")
        clashes = sorted({str(t) for t in targets if targets.count(t) > 1})
        if clashes:
            raise ConfigError(f"{args.folder}: several inputs would be written to one file ({clashes[0]}: the same "
                              "name with other extensions); rename them")
        outputs = translate(torch.cat([_read(f, shape) for f in files]))
        for target, image in zip(targets, outputs):
            save_grid(image.unsqueeze(0), target, padding=0)
        print(f"wrote {out}: {len(files)} image(s) of {args.folder} translated ({loaded.checkpoint.name})")
    else:
        data = build_data(loaded.config, split="test")
        index = torch.arange(min(args.test, len(data)))
        if len(index) < args.test:
            print(f"note: the test split holds {len(data)} pairs (data.limit applies to it too); translating those",
                  file=sys.stderr)
        train = build_data(loaded.config)
        if len(train) == len(data) and torch.equal(train.samples, data.samples):
            print("note: the data has no test split: these test pairs are training pairs", file=sys.stderr)
        pairs = data.batch(index, conditions=True)
        outputs = translate(pairs.y)
        if cycle:
            _cycle_test(args, loaded, pairs.y, outputs, translate(outputs), out)
            return 0
        images, columns = translation_picture(pairs.y, outputs, pairs.x)
        save_grid(images, out, scale=args.scale, nrow=columns)
        model, identity = paired_scores(outputs, pairs.x), paired_scores(as_output(pairs.y, pairs.x), pairs.x)
        print(f"wrote {out} ({len(index)} test pairs: input | output | target); against the targets: L1 "
              f"{model['l1']:.4f} (the identity map's {identity['l1']:.4f}; pixel range 0..1), PSNR "
              f"{model['psnr']:.2f} dB, SSIM {model['ssim']:.3f}")
    return 0


def _cycle_test(args: argparse.Namespace, loaded, joint: torch.Tensor, outputs: torch.Tensor, cycled: torch.Tensor,
                out: Path) -> None:
    """The --test picture of a CycleGAN run, and each cycle's L1 back to its start."""
    from ..apps.pictures import cycle_picture, save_grid
    from ..metrics.translation import paired_scores
    from ..models import domain_slots

    images, columns = cycle_picture(joint, outputs, cycled)
    save_grid(images, out, scale=args.scale, nrow=columns)
    (a, b), (back_a, back_b) = domain_slots(joint), domain_slots(cycled)
    print(f"wrote {out} ({len(joint)} test sample(s) of each domain: a | A->B | A->B->A triplets, then b | B->A | "
          f"B->A->B, {columns // 3} to a row); back to the start, L1 A->B->A {paired_scores(back_a, a)['l1']:.4f}, "
          f"B->A->B {paired_scores(back_b, b)['l1']:.4f} (pixel range 0..1)")

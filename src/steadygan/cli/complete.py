"""``steadygan complete``: fill masked regions of images with a trained generator (inpainting)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from ..errors import ConfigError
from .common import (
    add_checkpoint_flags,
    add_class_flag,
    add_device_flag,
    add_output_flag,
    add_progress_flag,
    add_scale_flag,
    add_seed_flag,
    check_at_least_one,
    check_class,
    checked_device,
)

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


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("complete", help="fill masked regions of images with a trained generator (inpainting)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=COMPLETE_EXAMPLES,
                       description="Complete images with a trained run's generator: latent search with a "
                                   "contextual and a discriminator prior loss, known pixels kept exactly.")
    p.add_argument("run_dir", help="a run directory written by `steadygan train`")
    p.add_argument("--image", help="one image of the run's size")
    p.add_argument("--folder", help="every image in this folder (recursive)")
    p.add_argument("--test", type=int, metavar="N", help="the first N images of the run's dataset test split")
    p.add_argument("--mask", default="center", help="center (default), left, random, or a mask PNG")
    add_class_flag(p, "complete as class K")
    add_output_flag(p, "completed.png", "grid of completed images")
    add_output_flag(p, None, "also write a strip: masked / completed / original rows", "--strip")
    p.add_argument("--steps", type=int, default=500, help="optimisation steps per image (default 500)")
    p.add_argument("--restarts", type=int, default=4, help="latent starts per image (and class), best kept (default 4)")
    p.add_argument("--prior-weight", type=float, default=0.003,
                   help="weight of the discriminator prior term (default 0.003; 0 = match pixels only)")
    add_checkpoint_flags(p, "use the raw generator even if the run kept an EMA")
    add_seed_flag(p, "seed of the latent starts and the random mask")
    add_scale_flag(p, "the written grids")
    add_device_flag(p, "cpu")
    add_progress_flag(p)
    p.set_defaults(func=cmd_complete)
    return p


def _completion_inputs(args: argparse.Namespace, loaded) -> torch.Tensor:
    from ..apps.completion import read_image
    from ..data.folder import list_images
    from ..training.build import build_data

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
    data = build_data(loaded.config, split="test")
    if args.test > len(data):
        print(f"note: the test split of {loaded.config.data.name} has {len(data)} images; completing all of them "
              f"(--test {args.test} asked for more)", file=sys.stderr)
    return data.samples[:args.test]


def cmd_complete(args: argparse.Namespace) -> int:
    from ..apps.completion import complete, make_mask, masked_error
    from ..apps.pictures import save_grid
    from ..data import to_float_images
    from ..training.sampling import load_networks

    check_at_least_one(test=args.test, steps=args.steps, restarts=args.restarts, scale=args.scale)
    if not (args.prior_weight >= 0 and math.isfinite(args.prior_weight)):
        raise ConfigError(f"--prior-weight must be a finite number >= 0 (got {args.prior_weight:g})")
    device = checked_device(args.device)
    loaded, D = load_networks(args.run_dir, args.checkpoint, use_ema=not args.raw, device=device)
    if loaded.translates:
        raise ConfigError(f"{args.run_dir} translates input images; completion searches a generator's noise for an "
                          "image: use `steadygan translate` with this run")
    check_class(args.cls, loaded, args.run_dir)
    images = _completion_inputs(args, loaded)
    mask = make_mask(args.mask, images.shape[-1], args.seed)
    labels = None if args.cls is None else torch.full((len(images),), args.cls, dtype=torch.long)
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

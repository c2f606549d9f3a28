"""Image completion against two baselines on a run's test split (results in BENCHMARKS.md).

For the first N test images with the chosen mask: mean absolute error on the masked pixels
(pixel range 0..1) of
  * the GAN: `steadygan.apps.completion.complete` (latent search, Yeh et al. 2017), the class given
    (the image's label) or searched over every class, for a conditional run;
  * the training mean: the hole filled with the mean training image;
  * the nearest training image by the visible pixels (L2), its pixels pasted into the hole.

    python benchmarks/completion.py RUN [--n 100] [--mask center] [--steps 300] [--restarts 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from steadygan.apps.completion import complete, make_mask, masked_error
from steadygan.training.build import build_data
from steadygan.training.sampling import load_networks


def nearest_fill(train: torch.Tensor, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Paste the hole of the training image closest to each image on its visible pixels."""
    known = mask.bool().flatten()
    t = train.float().flatten(1)[:, known]
    out = images.clone()
    for i, img in enumerate(images):
        d = ((t - img.float().flatten()[known]) ** 2).sum(1)
        out[i] = torch.where(mask.bool()[0], images[i], train[d.argmin()])
    return out


def summary(errors: torch.Tensor) -> str:
    e = errors.tolist()
    return f"{statistics.fmean(e):.4f} ± {statistics.stdev(e):.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--mask", default="center")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--search-n", type=int, default=50, help="images for the class-searched variant (0: skip)")
    ap.add_argument("--prior-weight", type=float, default=0.003, help="weight of D's realism term")
    args = ap.parse_args()
    loaded, D = load_networks(args.run)
    test = build_data(loaded.config, split="test")
    train = build_data(loaded.config, split="train")
    images, labels = test.samples[:args.n], test.labels[:args.n]
    mask = make_mask(args.mask, images.shape[-1])
    rows = []
    mean_img = train.samples.float().mean(0).round().to(torch.uint8)
    rows.append(("training mean", masked_error(torch.where(mask.bool()[0], images, mean_img), images, mask)))
    rows.append(("nearest training image (visible pixels)", masked_error(nearest_fill(train.samples, images, mask),
                                                                          images, mask)))
    variants = [("GAN, class given" if loaded.conditional else "GAN", images, labels if loaded.conditional else None,
                 args.restarts)]
    if loaded.conditional and args.search_n > 0:
        variants.append(("GAN, class searched", images[:args.search_n], None, 1))
    for name, imgs, y, restarts in variants:
        start = time.perf_counter()
        result = complete(loaded.generator, imgs, mask, loaded.config.model.z_dim, D, y, loaded.num_classes,
                          steps=args.steps, restarts=restarts, prior_weight=args.prior_weight)
        err = masked_error(result.completed, imgs, mask)
        classes = "" if y is not None or not loaded.conditional else " x 10 classes"
        rows.append((f"{name} ({len(imgs)} images, {restarts} start(s){classes}, "
                     f"{args.steps} steps, {time.perf_counter() - start:.0f} s)", err))
        if name == "GAN, class searched":
            agree = (result.labels == labels[:args.search_n]).float().mean().item()
            print(f"class searched: the chosen class is the label for {agree:.0%} of images")
    print(f"run {args.run} (step {loaded.step}), {args.n} test images, mask {args.mask}, "
          f"prior weight {args.prior_weight}")
    print("| method | masked-pixel MAE (mean ± std over images) |\n|---|---|")
    for name, err in rows:
        print(f"| {name} | {summary(err)} |")


if __name__ == "__main__":
    main()

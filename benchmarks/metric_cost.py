"""Cost of the sample-quality metrics on CPU: classifier training, then scoring n samples.

Trains (or loads from the cache) the Fashion-MNIST feature classifier, then scores n
"generated-like" samples (the test split stands in for a generator's output) against n
train images with FID, KID, precision/recall and density/coverage, timing each stage.

    python benchmarks/metric_cost.py                              # Fashion-MNIST, n=10,000
    python benchmarks/metric_cost.py --cache-dir /tmp/fresh       # force a fresh training
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from steadygan.data import load_dataset
from steadygan.metrics import build_extractor, fid, kid, prdc


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--root", default=None)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--cache-dir", default=None, help="extractor cache (default: the usual one)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, n={args.n}")
    opts = dict(dataset=args.dataset, root=args.root, cache_dir=args.cache_dir)
    extractor, build_s = timed(build_extractor, "classifier", **opts)
    rec = extractor.record()
    print(f"classifier: test accuracy {rec['test_accuracy']:.4f}, trained in {rec['train_seconds']:.1f} s "
          f"({rec['training']['epochs']} epochs); this build took {build_s:.1f} s; sha256 {rec['weights_sha256'][:16]}")
    _, load_s = timed(build_extractor, "classifier", **opts)
    print(f"cached load (incl. dataset fingerprint): {load_s:.2f} s")

    train = load_dataset(args.dataset, args.root, "train")
    test = load_dataset(args.dataset, args.root, "test")
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:args.n]
    real_x, fake_x = train.samples[idx], test.samples[:args.n]

    real, real_s = timed(extractor, real_x, args.batch_size)
    fake, fake_s = timed(extractor, fake_x, args.batch_size)
    fid_v, fid_s = timed(fid, real, fake)
    (kid_m, kid_sd), kid_s = timed(kid, real, fake)
    scores, prdc_s = timed(prdc, real, fake)
    total = real_s + fake_s + fid_s + kid_s + prdc_s
    rows = [("features, real", real_s), ("features, generated", fake_s), ("FID", fid_s),
            ("KID (100 x 1000)", kid_s), ("PR + DC (k=3, 5)", prdc_s)]
    print(f"\nscoring {len(fake)} samples against {len(real)} train images (features {real.shape[1]}-d):")
    for name, s in rows:
        print(f"  {name:<22} {s:7.2f} s")
    print(f"  {'total':<22} {total:7.2f} s   (a GAN eval adds one more feature pass for its floor, once)")
    print(f"\nvalues (test split as 'generated' = the real-vs-real floor): FID {fid_v:.3f}, "
          f"KID {kid_m:.5f} +- {kid_sd:.5f}, " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()

"""Each class's recall, for conditional and unconditional runs alike, at an equal sample count.

`steadygan eval` gives a conditional run's per-class recall on its requested classes (1,000
samples a class at its default n). An unconditional run has no requested classes: here its
samples take the class the run's cached classifier predicts, so the two kinds can be set side
by side on one measure. k-NN recall grows with the number of generated samples, and an
unconditional generator draws its classes unevenly, so every class (and the real-vs-real
floor) is scored on the same number of samples, ``--per-class`` (the first that many of the
class in a seeded draw of ``--n``).

    python benchmarks/class_recall.py RUN [RUN ...] [--per-class 400] [--n 10000]

Prints a markdown table: one row per run (each class's recall, their mean and minimum) and a
last row for the floor (the training split against the test split, the same count a class).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from steadygan.core.pair import balanced_labels
from steadygan.data import to_uint8_images
from steadygan.metrics.diversity import per_class_prdc
from steadygan.training.build import build_evaluator
from steadygan.training.sampling import load_generator


def first_of_each_class(labels: torch.Tensor, num_classes: int, count: int) -> torch.Tensor:
    """Indices of the first ``count`` samples of every class (an error when a class has fewer)."""
    picked = []
    for k in range(num_classes):
        idx = (labels == k).nonzero().flatten()
        if len(idx) < count:
            raise SystemExit(f"class {k} has {len(idx)} samples, fewer than --per-class {count}: lower it "
                             "or raise --n")
        picked.append(idx[:count])
    return torch.cat(picked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--per-class", type=int, default=400, help="samples scored in each class")
    parser.add_argument("--n", type=int, default=10000, help="samples drawn from each run (seed 0)")
    args = parser.parse_args()
    if args.per_class < 6:  # coverage's k-NN balls reach the 5th neighbour
        parser.error("--per-class must be at least 6")
    rows, data, evaluator = [], None, None
    for run in args.runs:
        generator = load_generator(run)
        run_data = (generator.config.data.name, generator.config.data.root)
        if data is not None and run_data != data:  # one reference and floor row: every run must share them
            raise SystemExit(f"{run} trained on {run_data}, the runs before it on {data}: give runs of one dataset")
        if evaluator is None:  # the real features, computed once for all runs
            data = run_data
            evaluator = build_evaluator(generator.config, metrics=("fid",), n=args.n)
            evaluator.conditional = True  # the per-class reference (real labels, floors) for either kind of run
            ref = evaluator.reference()
            num_classes = ref["num_classes"]
        images = to_uint8_images(generator.sample(args.n, 0, 500).cpu())
        features = evaluator.features(images)
        labels = (balanced_labels(args.n, num_classes) if generator.num_classes
                  else evaluator.extractor.predict(images).cpu())
        keep = first_of_each_class(labels, num_classes, args.per_class)
        scores = per_class_prdc(ref["real"], ref["real_labels"], features[keep], labels[keep], num_classes)
        rows.append((run.name, [s["recall"] for s in scores]))
    # The floor: the test split's images of each class, the same count as the samples.
    test_features, test_labels = ref["floor_set"]
    keep = first_of_each_class(test_labels, num_classes, args.per_class)
    scores = per_class_prdc(ref["real"], ref["real_labels"], test_features[keep], test_labels[keep], num_classes)
    floor = [s["recall"] for s in scores]
    classes = range(len(floor))
    print("| run | " + " | ".join(f"class {k}" for k in classes) + " | mean | min |")
    print("|---|" + "---|" * (len(floor) + 2))
    for name, recall in [*rows, ("real vs real (floor)", floor)]:
        print(f"| {name} | " + " | ".join(f"{r:.3f}" for r in recall)
              + f" | {sum(recall) / len(recall):.3f} | {min(recall):.3f} |")


if __name__ == "__main__":
    main()

"""``steadygan report``: aggregate a lab folder's runs into report.md, report.html and plots.

The numbers come from :mod:`.aggregate` (pure functions, definitions in its docstring), the
figures from :mod:`.plots`, the two documents from one :class:`.document.Document`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ...errors import ConfigError
from .aggregate import (  # noqa: F401 - re-exported: the aggregation API is steadygan.lab.report's
    BLOWUP,
    COLLAPSE_CLASS_DIVERSITY,
    COLLAPSE_MODES,
    COLLAPSE_RECALL,
    COLLAPSE_RULE_VERSION,
    COLLAPSE_SHARE_MARGIN,
    LOSS_KEYS,
    MARKER,
    METRIC_DIRECTIONS,
    PLAN_FILE,
    REPORT_DIR,
    Run,
    VariantSummary,
    collapse_reason,
    default_threshold,
    divergence_reason,
    final_value,
    load_plan,
    load_runs,
    mean_std,
    parse_metric,
    pick_main_metric,
    read_stats,
    step_time,
    summarize,
    time_to_threshold,
    variants_in_order,
)
from .document import Document, fmt, fmt_pm
from .health import first_warning
from .plots import plot_metric, plot_samples, plot_step_keys


def _setup_section(doc: Document, plan: dict[str, Any], runs: list[Run]) -> None:
    doc.heading("Setup")
    items = [f"base config: `{plan.get('base_config') or '(defaults)'}`"]
    if plan.get("base_overrides"):
        items.append("overrides: " + " ".join(f"`{o}`" for o in plan["base_overrides"]))
    items.append(f"seeds: {', '.join(str(s) for s in plan.get('seeds') or sorted({r.seed for r in runs}))}")
    budget = [b for b in (f"{plan['steps']} steps" if plan.get("steps") else None,
                          f"{plan['time']:g} s" if plan.get("time") else None) if b]
    if budget:
        items.append("budget per run: " + " or ".join(budget) + (", whichever comes first" if len(budget) > 1 else ""))
    parallel = max([(r.marker or {}).get("parallel") or 1 for r in runs], default=1)
    if parallel > 1:
        items.append(f"up to {parallel} runs trained at a time, sharing the cores: their step times are a rough "
                     "guide; measure a stabiliser's cost with `benchmarks/step_speed.py`")
    doc.bullets(items)
    if plan.get("variants"):
        doc.table(["variant", "spec", "config overrides"],
                  [[v["label"], f"`{v['spec']}`", " ".join(f"`{o}`" for o in v["overrides"]) or "(none)"]
                   for v in plan["variants"]])


def _summary_section(doc: Document, summaries: list[VariantSummary], metric: str | None, higher: bool | None,
                     threshold: float | None, baseline: str | None) -> None:
    doc.heading("Summary")
    header = ["variant", "runs"]
    if metric:
        header += [f"final {metric}", f"best {metric}"]
        if threshold is not None:
            header += ["reached threshold", "steps to threshold", "seconds to threshold"]
    header += ["diverged", "collapsed", "s/step", f"x {baseline}" if baseline else "x baseline"]
    rows = []
    for s in summaries:
        row = [s.variant, str(s.runs)]
        if metric:
            row += [fmt_pm(s.final_mean, s.final_std), fmt_pm(s.best_mean, s.best_std)]
            if threshold is not None:
                row += [f"{s.reached}/{s.runs}", fmt(s.steps_to_threshold), fmt(s.seconds_to_threshold)]
        row += [f"{s.diverged}/{s.runs}", f"{s.collapsed}/{s.runs}", fmt(s.step_time, 3), fmt(s.step_time_ratio, 3)]
        rows.append(row)
    doc.table(header, rows)
    if metric:
        better = "higher" if higher else "lower"
        doc.para(f"Main metric `{metric}` ({better} is better): mean ± sample standard deviation over seeds."
                 + (f" Threshold {threshold:g}: first evaluation at least as good; mean over the runs that "
                    "reached it." if threshold is not None else " No threshold given (--threshold), so no "
                    "time-to-quality columns."))
    else:
        doc.para("No evaluation metric was recorded in any run (train with evaluation enabled to record "
                 "`Metric/*` rows), so this report covers losses, gradients, step time and divergence only.")


CLASS_METRICS = ("Metric/class_agreement", "Metric/intra_fid", "Metric/class_recall", "Metric/class_recall_min",
                 "Metric/class_diversity")


def _final_metrics_table(doc: Document, runs: list[Run], metrics: tuple[str, ...], heading: str) -> list[str]:
    """A table of each variant's final ``metrics`` (those any run recorded), mean ± sample std
    over seeds; returns the metrics tabled (none, and nothing written, when no run recorded any)."""
    recorded = [m for m in metrics if any(final_value(r, m) is not None for r in runs)]
    if not recorded:
        return recorded
    doc.heading(heading)
    rows = []
    for variant in variants_in_order(runs):
        group = [r for r in runs if r.variant == variant]
        cells = [variant]
        for m in recorded:
            mean, std, n = mean_std(final_value(r, m) for r in group)
            cells.append(fmt_pm(mean, std) + (f" ({n} of {len(group)} runs)" if n < len(group) else ""))
        rows.append(cells)
    doc.table(["variant"] + [f"final {m}" for m in recorded], rows)
    return recorded


def _class_section(doc: Document, runs: list[Run]) -> None:
    """Conditional runs: class agreement and intra-class FID per variant (final, over seeds)."""
    if not _final_metrics_table(doc, runs, CLASS_METRICS, "Class-conditional metrics"):
        return
    doc.para("Class agreement: share of samples of class k that the feature classifier puts in class k "
             "(higher is better; a perfect generator scores the classifier's accuracy). Intra-class FID: FID "
             "per class, averaged (lower is better). Class recall: recall between each class's generated and "
             "real features, averaged (and its lowest class). Class diversity: the mean distance between two "
             "samples of a class over the same for its real images, averaged over classes (1: as varied as the "
             "data; 0: one image per class). Mean ± sample standard deviation over seeds.")


PAIRED_METRICS = ("Metric/l1", "Metric/psnr", "Metric/ssim")
UNPAIRED_METRICS = tuple(f"Metric/{name}_{direction}" for direction in ("AtoB", "BtoA")
                         for name in ("target_share", "fid", "cycle_l1", "silhouette_iou"))
# The baselines a translation run is judged against, the same for every run of a lab (they
# depend on the test split alone): shown once, from the first run that recorded them.
TRANSLATION_BASELINES = ("Metric/l1_identity", "Metric/identity_target_share_AtoB", "Metric/identity_target_share_BtoA")


def _translation_section(doc: Document, runs: list[Run]) -> None:
    """Translation runs: the paired scores against each input's target, or each direction's
    scores of an unpaired run, per variant (final, over seeds), with the identity map's."""
    recorded = set(_final_metrics_table(doc, runs, PAIRED_METRICS + UNPAIRED_METRICS, "Translation metrics"))
    if not recorded:
        return
    baselines = []
    for m in TRANSLATION_BASELINES:
        value = next((v for v in (final_value(r, m) for r in runs) if v is not None), None)
        if value is not None:
            baselines.append(f"`{m}` {fmt(value)}")
    said = []
    if recorded & set(PAIRED_METRICS):
        said.append("L1 (0..1, lower is better), PSNR (dB) and SSIM of each test input's translation against its "
                    "own target.")
    if recorded & set(UNPAIRED_METRICS):
        said.append("Per direction: the share of outputs the feature classifier puts in the target class, FID "
                    "against the target domain's test images, the L1 of the cycle back to the input, and the "
                    "silhouette IoU of output and input (how much of the input's outline survives).")
    said.append("Mean ± sample standard deviation over seeds. The identity map (output = input), which a run "
                "must beat: " + (", ".join(baselines) or "not recorded") + ".")
    doc.para(" ".join(said))


def _runs_section(doc: Document, runs: list[Run], metric: str | None, higher: bool | None) -> None:
    doc.heading("Runs")
    header = ["variant", "seed", "status", "steps", "seconds"]
    header += [f"final {metric}"] if metric else []
    header += ["diverged", "collapsed", "first warning", "directory"]
    rows = []
    for r in runs:
        row = [r.variant, str(r.seed), r.status, str(r.last_step), fmt(r.last_seconds, 3)]
        row += [fmt(final_value(r, metric))] if metric else []
        row += [divergence_reason(r, metric, higher) or "no", collapse_reason(r) or "no", first_warning(r),
                f"`{r.run_dir.name}`"]
        rows.append(row)
    doc.table(header, rows)


def _plots_section(doc: Document, runs: list[Run], metric: str | None, threshold: float | None,
                   report_dir: Path) -> None:
    doc.heading("Plots")
    if metric:
        doc.image(plot_metric(runs, metric, threshold, report_dir / "metric_vs_steps.png", "steps"),
                  f"{metric} vs generator steps (where seeds were scored at different steps, as with "
                  "evaluation by wall-clock, the mean covers the span that all seeds of a variant reached)")
        doc.image(plot_metric(runs, metric, threshold, report_dir / "metric_vs_seconds.png", "seconds"),
                  f"{metric} vs training seconds, the cost of each stabiliser included (the mean and its "
                  "min..max band cover the span that all seeds of a variant reached)")
    doc.image(plot_step_keys(runs, list(LOSS_KEYS), report_dir / "losses.png", "losses (moving average)"),
              "discriminator and generator losses, smoothed per run; band: min..max over seeds")
    doc.image(plot_step_keys(runs, ["Grad/D/norm", "Grad/G/norm", "Grad/D/clipped", "Grad/G/clipped"],
                             report_dir / "gradients.png", "gradient norms (before clipping) and clipped fractions",
                             log_keys=("Grad/D/norm", "Grad/G/norm")),
              "gradient norms before clipping and the fraction of values the clipper changed")
    samples = plot_samples(runs, report_dir / "samples.png")
    if samples is not None:
        doc.image(samples, "samples of each run's newest checkpoint: variants in rows, seeds in columns")


def _definitions_section(doc: Document) -> None:
    doc.heading("Definitions")
    doc.bullets([
        "final / best: the last / best evaluation of a run; per variant, mean ± sample std over seeds.",
        "time to quality: steps and training seconds at the first evaluation at least as good as the threshold.",
        f"diverged: stopped on a NaN/inf, a non-finite logged loss or main metric, or a final FID more than "
        f"{BLOWUP:g}x the run's best.",
        f"collapsed (rule version {COLLAPSE_RULE_VERSION}): final `Metric/modes` <= {COLLAPSE_MODES} (2-D "
        "data); labelled images: final `Metric/class_kl` > ln 2, the KL divergence of the classes a classifier "
        "sees in the samples from the data's class histogram (as concentrated as half the classes drawn "
        "evenly), or, for a conditional run, final `Metric/class_diversity_min` < "
        f"{COLLAPSE_CLASS_DIVERSITY:g} (some class's samples less than a quarter as varied as its real images: "
        f"the classes are drawn, their variety is gone); other images: final `Metric/recall` < "
        f"{COLLAPSE_RECALL:g}. Early in training recall is that low without any collapse: read the recall rule "
        "with the sample grids. A paired translation run, first: final `Metric/l1` at least the identity "
        "map's (`Metric/l1_identity`): its outputs are no closer to their targets than its inputs are. An "
        "unpaired (CycleGAN) run, first: in either direction, final `Metric/target_share_*` (the share of "
        "outputs the classifier puts in the target domain's class) less than "
        f"{COLLAPSE_SHARE_MARGIN:g} above the identity map's (`Metric/identity_target_share_*`): hardly more "
        "of its outputs in the target class than of its inputs (not applied where the identity map's share is "
        "within that margin of 1: the classifier cannot tell the domains apart).",
        "first warning: the step and signal at which the health status (the one `train` shows, "
        "`steadygan health RUN` for one run) first left healthy; none if it never did.",
        "s/step: per run the median elapsed seconds between consecutive logged steps (leaving out the "
        "spikes of sample grids, checkpoints and evaluation), mean over seeds; x baseline: ratio to the "
        "baseline variant's. Total wall-clock cost shows in the seconds column and the time plot.",
    ])


def write_report(out_dir: Path, main_metric: str | None = None, threshold: float | None = None,
                 preface: Callable[[Document], None] | None = None) -> Path:
    """Write report/report.md, report/report.html and the PNG plots; returns report.md's path.
    ``preface`` adds sections before the lab's own (``steadygan tune``'s ranking)."""
    out_dir = Path(out_dir)
    plan = load_plan(out_dir)
    runs = load_runs(out_dir)
    if not runs:
        raise ConfigError(f"{out_dir}: none of the planned runs has started yet; run `steadygan compare` first")
    report_dir = out_dir / REPORT_DIR
    report_dir.mkdir(parents=True, exist_ok=True)

    metric, higher = (parse_metric(main_metric) if main_metric else (pick_main_metric(runs), None))
    if metric is not None and higher is None:
        higher = METRIC_DIRECTIONS[metric]
    if metric is not None and not any(metric in row for r in runs for row in r.eval_rows):
        metric_missing, metric = metric, None
    else:
        metric_missing = None
    if threshold is None:
        threshold = default_threshold(runs, metric)
    baseline = plan.get("baseline")
    if baseline not in {r.variant for r in runs}:
        baseline = runs[0].variant  # step-time ratios need some reference: the first variant
    summaries = summarize(runs, metric, higher, threshold, baseline)

    doc = Document()
    doc.heading(f"Stability lab: {out_dir.name}", 1)
    planned = len(plan.get("runs", []))
    unfinished = [r for r in runs if r.marker is None]
    notes = [f"{len(runs)} of {planned} planned runs found"]
    if unfinished:
        notes.append(f"{len(unfinished)} not finished (rerun the same `steadygan compare` to resume)")
    doc.para("; ".join(notes) + ".")
    if metric_missing:
        doc.para(f"No run recorded `{metric_missing}`; reporting without a main metric.")
    if preface is not None:
        preface(doc)
    _setup_section(doc, plan, runs)
    _summary_section(doc, summaries, metric, higher, threshold, baseline)
    _class_section(doc, runs)
    _translation_section(doc, runs)

    _plots_section(doc, runs, metric, threshold, report_dir)
    _runs_section(doc, runs, metric, higher)

    _definitions_section(doc)
    md = report_dir / "report.md"
    md.write_text(doc.markdown())
    (report_dir / "report.html").write_text(doc.html(f"steadygan report: {out_dir.name}"))
    return md

"""Is this run going wrong? Health signals, a probe of the generator's variety, and a status.

Signals, all logged as ``Health/*`` rows of stats.jsonl (and TensorBoard):

* from what every D update already returns: the share of real samples D calls real
  (``Health/d_real_acc``, from E[sign D(real)]) and of generated ones it calls generated
  (``Health/d_fake_acc``), the logit gap; with the losses and the gradient norms the step logs;
* from a small fixed probe every ``train.health_every`` steps (:class:`Probe`): the variety of
  the generator's output against the real data's, in pixels and in D's own penultimate
  features (``Health/diversity``, ``Health/diversity_d``), within each class for a conditional
  generator (``Health/class_diversity_min``). It draws from a generator of its own and runs
  in eval mode with no gradient: it moves neither the training RNG nor any weight or
  statistic, so a run trains the same parameters with or without it; where the data has a
  test split, also whether D tells the real images it trains on from real images it never
  saw (``Health/memorisation``, :func:`memorisation`: 0.5 when it cannot, 1 when it has
  memorised its training set: the limited-data failure, Karras et al. 2020); and where the
  run evaluates on labelled data anyway (so the feature classifier exists), the classes an
  unconditional generator draws against the data's (``Health/class_kl``, the report's class
  KL on a fixed batch of 256);
* the periodic evaluation's rows where there are any (FID, recall, class KL, class diversity).

The status (:class:`HealthJudge`) is a pure function of those rows, read in order: the
monitor applies it as a run goes, and ``steadygan health RUN`` applies the same function to
any run's stats.jsonl afterwards. Healthy, warning or failing, each with the signal that said
so and the reason in words; the thresholds are :class:`HealthRule`'s.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..core.pair import balanced_labels, call
from ..data import InMemoryData
from ..metrics.diversity import class_diversity, diversity_ratio

HEALTHY, WARNING, FAILING = "healthy", "warning", "failing"
LEVELS = (HEALTHY, WARNING, FAILING)


@dataclass(frozen=True)
class HealthStatus:
    level: str                 # healthy | warning | failing
    signal: str | None = None  # the stats key that said so
    reason: str = ""           # in words
    step: int = 0

    def __str__(self) -> str:
        return self.level if self.level == HEALTHY else f"{self.level}: {self.reason}"


# --- the probe -------------------------------------------------------------------------------------


def d_features(D: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """D's penultimate features of ``x`` (``embed``, of a projection D's base too); the samples
    themselves, flattened, for a D that exposes none."""
    net = getattr(D, "base", D)
    if hasattr(net, "embed"):
        return net.embed(x).flatten(1)
    return x.flatten(1)


def memorisation(train_scores: torch.Tensor, heldout_scores: torch.Tensor) -> float:
    """P(D scores a training image above a held-out one), ties counting one half (the
    Mann-Whitney statistic, an AUC): 0.5 when D's scores do not tell them apart, 1 when every
    training image scores above every held-out one. Scale-free, so the same for every loss."""
    a, b = train_scores.double().flatten(), heldout_scores.double().flatten()
    above = (a[:, None] > b[None, :]).double() + 0.5 * (a[:, None] == b[None, :]).double()
    return above.mean().item()


def sample_scores(D: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """D's score of each sample (a score map's mean: a PatchGAN's per-sample score)."""
    return call(D, x, y).float().reshape(len(x), -1).mean(1)


class Probe:
    """A fixed noise batch and a fixed real batch, and what they say of the generator's variety."""

    def __init__(self, data: InMemoryData, z_dim: int, num_classes: int, device: torch.device, n: int = 64,
                 seed: int = 12_345, translates: bool = False, heldout: InMemoryData | None = None,
                 class_kl: Callable[[torch.Tensor], float | None] | None = None, class_n: int = 256) -> None:
        """``translates``: the generator translates input images; it is probed on the real
        batch's own inputs, its output's variety measured against their targets'. ``heldout``:
        real samples training never sees (the test split), for ``Health/memorisation``.
        ``class_kl``: the class KL of generated images against the data's classes (the
        evaluator's :meth:`~steadygan.metrics.Evaluator.class_kl`, where the run evaluates on
        labelled data anyway), measured for an unconditional generator on ``class_n`` samples of
        a fixed noise batch of their own: ``Health/class_kl``."""
        g = torch.Generator().manual_seed(seed)  # its own stream: the training RNG never moves
        self.z = torch.randn(n, z_dim, generator=g).to(device)
        self.labels = None if not num_classes else balanced_labels(n, num_classes).to(device)
        index = torch.randperm(len(data), generator=g)[:n].to(device)
        real = data.batch(index, labels=bool(num_classes), conditions=translates)
        self.real, self.real_labels = real.x, real.y
        self.heldout = None
        if heldout is not None:
            index = torch.randperm(len(heldout), generator=g)[:len(self.real)].to(heldout.samples.device)
            held = heldout.batch(index, labels=bool(num_classes), conditions=translates)
            self.heldout = (held.x.to(device), None if held.y is None else held.y.to(device))
        if translates:
            self.labels = real.y  # the condition G and D are called with: the inputs
            self.z = self.z[:len(real.y)]  # a set smaller than the probe: one translation per input
        self.num_classes = num_classes
        # Drawn after everything above, so the other probes' batches are those of runs without it.
        # 256 samples: the plug-in KL's bias on a uniform 10-class generator is about 9/512 nats.
        self.class_kl = class_kl if not num_classes and not translates else None
        self.class_z = torch.randn(class_n, z_dim, generator=g).to(device) if self.class_kl else None

    @torch.no_grad()
    def measure(self, G: nn.Module, D: nn.Module, classes: bool = True) -> dict[str, float]:
        """``Health/diversity`` (pixels), ``Health/diversity_d`` (D's features) and, for a
        conditional generator, ``Health/class_diversity_min``; with ``classes``, also
        ``Health/class_kl`` where the probe has a classifier. The networks' modes are restored."""
        modes = G.training, D.training
        G.eval(), D.eval()
        try:
            fake = call(G, self.z, self.labels)
            out = {"Health/diversity": diversity_ratio(fake.float(), self.real.float())}
            fake_f, real_f = d_features(D, fake, self.labels), d_features(D, self.real, self.real_labels)
            out["Health/diversity_d"] = diversity_ratio(fake_f.float(), real_f.float())
            if self.num_classes:
                within = class_diversity(fake.float().flatten(1), self.labels, self.real.float().flatten(1),
                                         self.real_labels, self.num_classes)
                out["Health/class_diversity_min"] = within["class_diversity_min"]
            if classes and self.class_kl is not None:
                # In chunks of the variety batch's size: no larger a forward than the probe's own.
                images = torch.cat([call(G, z, None).float() for z in self.class_z.split(len(self.z))])
                class_kl = self.class_kl(images)
                if class_kl is None:
                    self.class_kl = None  # the data has no classes to compare with: never generate for it again
                else:
                    out["Health/class_kl"] = class_kl
            if self.heldout is not None:
                out["Health/memorisation"] = memorisation(sample_scores(D, self.real, self.real_labels),
                                                            sample_scores(D, *self.heldout))
            return out
        finally:
            G.train(modes[0]), D.train(modes[1])


def step_signals(row: dict[str, float]) -> dict[str, float]:
    """The signals of one step's stats row: D's accuracy on each side and the logit gap."""
    out = {}
    if "Logits/real_sign" in row:
        out["Health/d_real_acc"] = (1.0 + row["Logits/real_sign"]) / 2.0
    if "Logits/fake_sign" in row:
        out["Health/d_fake_acc"] = (1.0 - row["Logits/fake_sign"]) / 2.0
    if "Logits/real" in row and "Logits/fake" in row:
        out["Health/logit_gap"] = row["Logits/real"] - row["Logits/fake"]
    return out


# --- the rule ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthRule:
    """Thresholds of the status (benchmarks/health_eval.py scores any rule on a corpus of runs)."""

    collapse_diversity: float = 0.15   # failing: a run of low probes ending under this share of the data's variety
    low_diversity: float = 0.35        # warning: pixel variety under this share ...
    collapse_probes: int = 2           # ... for this many probes in a row (the last one decides which level)
    d_wins: float = 0.98               # D right on this share of both real and generated samples ...
    d_wins_steps: int = 100            # ... on average over this many steps: G gets no useful signal
    fid_blowup: float = 2.0            # failing: FID above this multiple of the run's best
    fid_rise: float = 1.5              # warning: above this one
    class_kl: float = math.log(2)      # failing: the classes drawn as concentrated as half of them ...
    class_kl_evals: int = 2            # ... at this many evaluations in a row (healthy runs cross it once)
    probe_class_kl: float = math.log(2)  # failing: the same from the probe's classes (labelled data) ...
    class_kl_probes: int = 2           # ... at this many readings in a row (early training jumps for one)
    class_diversity: float = 0.25      # failing: a class under a quarter of its data's variety
    warm_up: int = 200                 # steps before any status but healthy (early training looks like failure)
    # Support, from the evaluation (off by default: the probe measures variety, and a generator
    # varied but off the data passes it; to be fitted on the health corpus before it is on):
    support_modes: float = -1.0        # failing: Metric/modes at most this (2-D data; -1: off)
    support_recall: float = -1.0       # failing: Metric/recall below this (images without classes; -1: off)


class HealthJudge:
    """Reads a run's rows in order and keeps its status: the worst of the signals' current findings.

    Each signal keeps its own finding until a row that measures it again says otherwise: a probe
    row speaks for the probe's variety, a step row (once the window is full) for D winning, an
    evaluation row for each metric it holds. So a healthy probe does not clear a bad FID, a later
    warning does not hide a failure, and one evaluation row can raise several findings.
    """

    def __init__(self, rule: HealthRule | None = None) -> None:
        self.rule = rule or HealthRule()
        self.status = HealthStatus(HEALTHY)
        self.history: list[HealthStatus] = []  # every change of level or signal
        self._start(0)

    def _start(self, step: int) -> None:
        """Judge afresh from ``step``: the run's start, or the state a rollback went back to."""
        self._acc: deque[tuple[float, float]] = deque(maxlen=self.rule.d_wins_steps)
        self._low_probes = 0
        self._high_class_probes = 0
        self._high_class_evals = 0
        self._best_fid = math.inf
        self._since = step  # the warm-up counts from here
        self._findings: dict[str, HealthStatus] = {}  # signal -> its current finding (healthy ones absent)

    def observe(self, row: dict[str, Any]) -> HealthStatus:
        """Take one row (a step's stats, a probe's, an evaluation's); returns the status after it."""
        step = int(row.get("step", 0))
        if "Rollback/count" in row:  # the run went back to a good state and changed: judged afresh
            self._start(step)
            if self.status.level != HEALTHY:
                self.status = HealthStatus(HEALTHY, step=step, reason="rolled back")
                self.history.append(self.status)
            return self.status
        said = {**self._probe(row, step), **self._class_probe(row, step), **self._d_wins(row, step),
                **self._evaluation(row, step)}
        watching = step - self._since >= self.rule.warm_up
        for signal, finding in said.items():
            if finding is None or not watching:
                self._findings.pop(signal, None)
            else:
                self._findings[signal] = finding
        new = self._worst(step)
        if new.level != self.status.level or new.signal != self.status.signal:
            self.status = new
            self.history.append(new)
        return self.status

    def _worst(self, step: int) -> HealthStatus:
        """The worst current finding; of equals, the one already shown (no flicker), else the oldest."""
        if not self._findings:
            return self.status if self.status.level == HEALTHY else HealthStatus(HEALTHY, step=step)
        level = max((f.level for f in self._findings.values()), key=LEVELS.index)
        worst = [f for f in self._findings.values() if f.level == level]
        return next((f for f in worst if f.signal == self.status.signal), worst[0])

    def clean(self, step: int) -> bool:
        """Whether a state of this step is one to go back to: past the warm-up (so the rule is
        watching), no finding, and no signal on its way to one (a low probe, a concentrated one, D winning)."""
        return (not self._findings and step - self._since >= self.rule.warm_up  # no finding: the status is healthy
                and self._low_probes == 0 and self._high_class_probes == 0
                and not (len(self._acc) == self._acc.maxlen and self._winning()))

    # Each signal below returns {signal: finding, or None for healthy} for what the row measures.

    def _probe(self, row: dict[str, Any], step: int) -> dict[str, HealthStatus | None]:
        value = row.get("Health/diversity")
        if value is None:
            return {}
        r = self.rule
        self._low_probes = self._low_probes + 1 if value < r.low_diversity else 0
        if self._low_probes < r.collapse_probes:
            return {"Health/diversity": None}
        level = FAILING if value < r.collapse_diversity else WARNING
        return {"Health/diversity": HealthStatus(level, "Health/diversity", f"the generator's samples are {value:.2f} "
                                                 f"as varied as the data's for {self._low_probes} probes: mode "
                                                 "collapse", step)}

    def _class_probe(self, row: dict[str, Any], step: int) -> dict[str, HealthStatus | None]:
        value = _measured(row, "Health/class_kl")
        if value is None:
            return {}
        r = self.rule
        self._high_class_probes = self._high_class_probes + 1 if value > r.probe_class_kl else 0
        if self._high_class_probes < r.class_kl_probes:
            return {"Health/class_kl": None}
        reason = (f"the classes drawn are as concentrated as half of them at {self._high_class_probes} readings "
                  f"in a row (class KL {value:.3g} > {r.probe_class_kl:.3g})")
        return {"Health/class_kl": HealthStatus(FAILING, "Health/class_kl", reason, step)}

    def _winning(self) -> bool:
        real = sum(a for a, _ in self._acc) / len(self._acc)
        fake = sum(b for _, b in self._acc) / len(self._acc)
        return real > self.rule.d_wins and fake > self.rule.d_wins

    def _d_wins(self, row: dict[str, Any], step: int) -> dict[str, HealthStatus | None]:
        signals = step_signals(row)
        if "Health/d_real_acc" not in signals or "Health/d_fake_acc" not in signals:
            return {}
        self._acc.append((signals["Health/d_real_acc"], signals["Health/d_fake_acc"]))
        if len(self._acc) < self._acc.maxlen:
            return {}  # not measured yet: a window not full says nothing either way
        if not self._winning():
            return {"Health/d_acc": None}
        return {"Health/d_acc": HealthStatus(WARNING, "Health/d_acc", f"D tells real from generated on more than "
                                             f"{self.rule.d_wins:.0%} of both for {len(self._acc)} steps: the "
                                             "generator gets little to learn from", step)}

    def _evaluation(self, row: dict[str, Any], step: int) -> dict[str, HealthStatus | None]:
        r = self.rule
        out: dict[str, HealthStatus | None] = {}
        fid = _measured(row, "Metric/fid")
        if fid is not None and math.isfinite(fid):
            best, self._best_fid = self._best_fid, min(self._best_fid, fid)
            out["Metric/fid"] = None
            if fid > r.fid_blowup * best:
                out["Metric/fid"] = HealthStatus(FAILING, "Metric/fid", f"FID {fid:.3g} is more than "
                                                 f"{r.fid_blowup:g}x the run's best {best:.3g}", step)
            elif fid > r.fid_rise * best:
                out["Metric/fid"] = HealthStatus(WARNING, "Metric/fid", f"FID {fid:.3g} rose above {r.fid_rise:g}x "
                                                 f"the run's best {best:.3g}", step)
        class_kl = _measured(row, "Metric/class_kl")
        if class_kl is not None:
            self._high_class_evals = self._high_class_evals + 1 if class_kl > r.class_kl else 0
            out["Metric/class_kl"] = None if self._high_class_evals < r.class_kl_evals else HealthStatus(
                FAILING, "Metric/class_kl", f"the classes drawn are as concentrated as half of them at "
                f"{self._high_class_evals} evaluations (class KL {class_kl:.3g} > {r.class_kl:.3g})", step)
        modes = _measured(row, "Metric/modes")
        if modes is not None:
            out["Metric/modes"] = None if not modes <= r.support_modes else HealthStatus(
                FAILING, "Metric/modes", f"the samples cover {modes:g} of the data's modes", step)
        recall = _measured(row, "Metric/recall")
        if recall is not None and class_kl is None:
            out["Metric/recall"] = None if not recall < r.support_recall else HealthStatus(
                FAILING, "Metric/recall", f"recall {recall:.3g}: the samples cover almost none of the data (varied "
                "or not)", step)
        within = _measured(row, "Metric/class_diversity_min")
        within = _measured(row, "Health/class_diversity_min") if within is None else within
        if within is not None:
            out["class_diversity"] = None if not within < r.class_diversity else HealthStatus(
                FAILING, "class_diversity", f"a class's samples are {within:.2f} as varied as its real images: the "
                "classes are drawn, z is ignored", step)
        return out


def _measured(row: dict[str, Any], key: str) -> float | None:
    """A row's value of ``key``, None when not measured: a metric not measured is NaN live and
    null in stats.jsonl, and both must read alike so that a replay judges as the run did."""
    value = row.get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def judge_rows(rows: list[dict[str, Any]], rule: HealthRule | None = None) -> HealthJudge:
    """Apply the status to a run's stats rows in order (what ``steadygan health`` does)."""
    judge = HealthJudge(rule)
    for row in sorted(rows, key=lambda r: r.get("step", 0)):
        judge.observe(row)
    return judge


STATUS_CODES = {HEALTHY: 0, WARNING: 1, FAILING: 2}  # Health/status rows: the level as a number


class HealthMonitor:
    """The online side: when to probe, the status to show and act on. Its state is the status
    of the rows so far: a resumed run replays its stats.jsonl (cut back to the checkpoint's
    step) and is where an uninterrupted one would be."""

    # The classes are read at every other probe: classifying 256 samples costs about as much
    # as the rest of the probe, and every 100 steps keeps the monitor under 3% of DCGAN-28's
    # step time (BENCHMARKS.md, "The monitor's cost").
    CLASS_PROBES = 2

    def __init__(self, probe: Probe | None, every: int, rule: HealthRule | None = None) -> None:
        self.probe, self.every = probe, every
        self.judge = HealthJudge(rule)

    def due(self, step: int) -> bool:
        return self.probe is not None and self.every > 0 and step % self.every == 0

    def measure(self, G: nn.Module, D: nn.Module, step: int) -> dict[str, float]:
        """The probe's signals at ``step`` (a due one); by the step, so a resumed run probes the
        classes where an uninterrupted one would."""
        assert self.probe is not None
        return self.probe.measure(G, D, classes=step % (self.CLASS_PROBES * self.every) == 0)

    def observe(self, rows: list[dict[str, Any]]) -> HealthStatus | None:
        """Take new rows; returns the status when it changed, else None."""
        before = self.judge.status
        for row in rows:
            self.judge.observe(row)
        return self.judge.status if self.judge.status != before else None

    def replay(self, rows: list[dict[str, Any]]) -> None:
        """Rebuild the status from a resumed run's rows (already in the file)."""
        self.judge = judge_rows(rows, self.judge.rule)

    @property
    def status(self) -> HealthStatus:
        return self.judge.status

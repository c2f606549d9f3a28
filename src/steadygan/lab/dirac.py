"""The Dirac-GAN (Mescheder et al. 2018, "Which training methods for GANs do actually converge?").

The smallest GAN that shows whether a training method converges:

* data: a point mass at 0;
* generator: a point mass at ``theta`` (``G(z) = theta`` for every z);
* discriminator: ``D(x) = psi * x`` (a logit; high means "real", the project's convention).

The only equilibrium is ``(theta, psi) = (0, 0)``. Near it the unregularised game is a pure
rotation (the Jacobian's eigenvalues are +-i/2), so gradient descent circles or spirals
out instead of converging; a method stabilises training on this problem only if it adds
damping at the equilibrium.

Every method here runs through the project's own code path: two one-parameter
``nn.Module`` players, :class:`steadygan.core.step.Player`, :func:`steadygan.core.step.d_step` and
:func:`steadygan.core.step.g_step`, the registered losses, penalties and clippers, and
``torch.optim.SGD``. One simulation step is what the trainer does with ``n_critic = 1``:
one discriminator update, then one generator update that sees the updated
discriminator (alternating gradient descent).

Settings (defaults, as in the authors' reference simulation): step size ``h = 0.1`` for both
players, start ``(theta, psi) = (1, 1)``, 500 steps (50 time units: about four turns of
the unregularised rotation, whose period is 4 pi / h = 126 steps near the equilibrium).
A run counts as converged when the final distance to (0, 0) is below ``TOLERANCE = 1e-2``
(one percent of the start distance sqrt(2)).

The "plain" GAN is the paper's unregularised game, f(t) = -log(1 + exp(-t)) for both
players, i.e. the project's ``minimax`` loss; every regularised or clipped method below
uses that same loss, so the regulariser is the only difference. ``non-saturating`` and the
``wgan*`` methods change the loss instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..core.clipping import build_clipper
from ..core.losses import AdversarialLoss, build_loss
from ..core.penalties import build_penalty
from ..core.step import Player, d_step, g_step
from ..errors import ConfigError

DEFAULT_STEPS = 500
DEFAULT_LR = 0.1
START = (1.0, 1.0)
TOLERANCE = 1e-2
DIVERGED_FACTOR = 10.0  # final distance > 10x the start distance (or not finite): diverged

# name -> loss, penalties per player (specs as in configs), clipper per player, one-line summary.
DIRAC_METHODS: dict[str, dict[str, Any]] = {
    "plain": {
        "loss": "minimax", "summary": "unregularised GAN, f(t) = -log(1+e^-t) (minimax loss)",
    },
    "non-saturating": {
        "loss": "non-saturating", "summary": "G maximises log D(G(z)) instead",
    },
    "wgan": {
        "loss": "wasserstein", "summary": "Wasserstein loss, no Lipschitz constraint",
    },
    "wgan-gp": {
        "loss": "wasserstein", "d_penalties": [{"name": "wgan-gp", "lambda": 1.0}],
        "summary": "Wasserstein + lambda (|grad D| - 1)^2, lambda = 1",
    },
    "r1-0.3": {
        "loss": "minimax", "d_penalties": [{"name": "r1", "gamma": 0.3}],
        "summary": "minimax + R1 (gamma/2)|grad D(real)|^2, gamma = 0.3",
    },
    "r1-1": {
        "loss": "minimax", "d_penalties": [{"name": "r1", "gamma": 1.0}],
        "summary": "minimax + R1, gamma = 1",
    },
    "consensus": {
        "loss": "minimax", "d_penalties": [{"name": "consensus", "gamma": 1.0}],
        "g_penalties": [{"name": "consensus", "gamma": 1.0}],
        "summary": "minimax + consensus optimisation (both players), gamma = 1",
    },
    "value-clip": {
        "loss": "minimax", "d_clip": {"name": "value", "eps": 0.01}, "g_clip": {"name": "value", "eps": 0.01},
        "summary": "minimax + gradient value clipping (both players), eps = 0.01",
    },
    "norm-clip": {
        "loss": "minimax", "d_clip": {"name": "norm", "max_norm": 0.1},
        "g_clip": {"name": "norm", "max_norm": 0.1},
        "summary": "minimax + gradient norm clipping (both players), max_norm = 0.1",
    },
    "seed-param": {
        "loss": "minimax", "d_penalties": [{"name": "seed-param", "lambda": 1.0}],
        "g_penalties": [{"name": "seed-param", "lambda": 1.0}],
        "summary": "minimax + the GP-GAN document's lambda |grad_own-params loss|^2 (both), lambda = 1",
    },
    # With the real sample at 0, D(real) = 0: the relativistic pair f(D(fake) - D(real)) is
    # f(psi theta), so RpGAN moves like the non-saturating GAN here (the pairing matters only
    # when real samples differ); R1 and R2 coincide too (grad_x D = psi at every x).
    "rpgan": {
        "loss": "relativistic", "summary": "relativistic pairing loss (RpGAN), no regulariser",
    },
    "r3gan": {
        "loss": "relativistic", "d_penalties": [{"name": "r1", "gamma": 1.0}, {"name": "r2", "gamma": 1.0}],
        "summary": "RpGAN + R1 + R2 (each gamma/2 |grad D|^2), gamma = 1: the R3GAN recipe's regularisers",
    },
}


# --- the two players --------------------------------------------------------------------

class DiracGenerator(nn.Module):
    """G(z) = theta for every z: one scalar parameter, output shape (batch, 1)."""

    def __init__(self, theta: float) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(float(theta)))

    def forward(self, z: Tensor) -> Tensor:
        return self.theta * torch.ones(z.shape[0], 1, dtype=self.theta.dtype, device=self.theta.device)


class DiracDiscriminator(nn.Module):
    """D(x) = psi * x (a logit): one scalar parameter, output shape (batch,)."""

    def __init__(self, psi: float) -> None:
        super().__init__()
        self.psi = nn.Parameter(torch.tensor(float(psi)))

    def forward(self, x: Tensor) -> Tensor:
        return (self.psi * x).reshape(x.shape[0], -1).sum(1)


def method_spec(method: str | Mapping[str, Any]) -> dict[str, Any]:
    """A method by name (a key of ``DIRAC_METHODS``) or an explicit spec, with every key filled."""
    if isinstance(method, str):
        if method not in DIRAC_METHODS:
            raise ConfigError(f"unknown Dirac-GAN method '{method}'; choose from: {', '.join(DIRAC_METHODS)}")
        method = DIRAC_METHODS[method]
    unknown = set(method) - {"loss", "d_penalties", "g_penalties", "d_clip", "g_clip", "summary"}
    if unknown:
        raise ConfigError(f"Dirac-GAN method spec has unknown keys: {', '.join(sorted(unknown))}")
    return {"loss": method.get("loss", "minimax"), "d_penalties": list(method.get("d_penalties", [])),
            "g_penalties": list(method.get("g_penalties", [])), "d_clip": method.get("d_clip"),
            "g_clip": method.get("g_clip"), "summary": method.get("summary", "")}


def dirac_players(method: str | Mapping[str, Any], lr: float = DEFAULT_LR,
                  start: Sequence[float] = START) -> tuple[Player, Player, AdversarialLoss]:
    """(D player, G player, loss) for one method, at ``start = (theta, psi)``, with SGD(lr)."""
    spec = method_spec(method)
    if not lr > 0 or not math.isfinite(lr):
        raise ConfigError(f"Dirac-GAN: the learning rate must be a finite number > 0 (got {lr})")
    theta, psi = (float(v) for v in start)
    g_net, d_net = DiracGenerator(theta), DiracDiscriminator(psi)

    def player(tag: str, net: nn.Module, role: str) -> Player:
        return Player(tag, net, torch.optim.SGD(net.parameters(), lr=lr),
                      [build_penalty(dict(p), role) for p in spec[f"{role}_penalties"]],
                      build_clipper(None if spec[f"{role}_clip"] is None else dict(spec[f"{role}_clip"])))

    return player("D", d_net, "d"), player("G", g_net, "g"), build_loss(spec["loss"])


def _point(d: Player, g: Player) -> Tensor:
    return torch.stack([g.net.theta.detach(), d.net.psi.detach()]).double()


def simulate(method: str | Mapping[str, Any], steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR,
             start: Sequence[float] = START, batch: int = 1, seed: int = 0) -> Tensor:
    """Alternating SGD on the Dirac-GAN: ``(steps + 1, 2)`` float64 rows ``(theta, psi)``.

    Row 0 is ``start``; row k is the point after k (d_step, g_step) pairs. Deterministic:
    the global RNG (used only by wgan-gp's interpolation weights, which cannot change the
    gradient of a linear D) is seeded with ``seed`` inside a forked RNG state, so the
    caller's random stream is untouched. A trajectory that leaves the finite numbers is
    padded with NaN from there on.
    """
    if int(steps) != steps or steps < 0:
        raise ConfigError(f"Dirac-GAN: steps must be an integer >= 0 (got {steps})")
    d, g, loss = dirac_players(method, lr, start)
    real = torch.zeros(batch, 1)  # the data: a point mass at 0
    z = torch.zeros(batch, 1)     # ignored by G
    traj = torch.full((int(steps) + 1, 2), float("nan"), dtype=torch.float64)
    traj[0] = _point(d, g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for k in range(int(steps)):
            d_step(d, g, loss, real, z, step=k)
            g_step(g, d, loss, real, z, step=k)
            traj[k + 1] = _point(d, g)
            if not torch.isfinite(traj[k + 1]).all():
                break
    return traj


def distance_to_equilibrium(traj: Tensor) -> Tensor:
    """Euclidean distance of each ``(theta, psi)`` row to the equilibrium (0, 0)."""
    return torch.linalg.vector_norm(traj, dim=-1)


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def summarize(traj: Tensor, tol: float = TOLERANCE) -> dict[str, Any]:
    """Start/final/min distance, final point, and a verdict for one trajectory."""
    dist = distance_to_equilibrium(traj)
    start, final = float(dist[0]), float(dist[-1])
    finite = dist[torch.isfinite(dist)]
    converged = math.isfinite(final) and final < tol
    diverged = not math.isfinite(final) or final > DIVERGED_FACTOR * start
    verdict = "converged" if converged else "diverged" if diverged else "not converged"
    return {
        "start_distance": start,
        "final_distance": _finite_or_none(final),
        "min_distance": float(finite.min()) if finite.numel() else None,
        "final_over_start": _finite_or_none(final / start) if start > 0 else None,
        "final_point": [_finite_or_none(float(v)) for v in traj[-1]],
        "converged": converged,
        "verdict": verdict,
    }


# --- plotting ---------------------------------------------------------------------------

def plot_dirac(trajectories: Mapping[str, Tensor], path: str | Path, tol: float | None = TOLERANCE,
               title: str | None = None) -> Path:
    """Left: trajectories in the (theta, psi) plane; right: distance to (0, 0) per step (log)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5.8), dpi=110)
    FigureCanvasAgg(fig)
    ax_phase, ax_dist = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    cmap = matplotlib.colormaps["tab10"]
    styles = ["-", "--", "-."]  # overlapping orbits (plain, wgan) stay visible

    span = 0.0
    for i, (name, traj) in enumerate(trajectories.items()):
        t = traj.detach().double().cpu()
        color, ls = cmap(i % 10), styles[i % len(styles)]
        ok = torch.isfinite(t).all(1)
        pts = t[ok].numpy()
        ax_phase.plot(pts[:, 0], pts[:, 1], ls, color=color, lw=1.2, alpha=0.85, label=name)
        ax_phase.plot(pts[-1, 0], pts[-1, 1], "o", color=color, ms=4)
        if pts.size:
            span = max(span, float(abs(pts).max()))
        dist = distance_to_equilibrium(t).clamp_min(1e-12).numpy()
        ax_dist.plot(range(len(dist)), dist, ls, color=color, lw=1.4, label=name)

    lim = min(max(span * 1.08, 1.2), 3.0)  # the interesting region, even if a run diverges
    _mark_off_view(ax_phase, trajectories, lim, cmap)
    ax_phase.set_xlim(-lim, lim)
    ax_phase.set_ylim(-lim, lim)
    ax_phase.set_aspect("equal")
    ax_phase.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax_phase.axvline(0, color="0.85", lw=0.8, zorder=0)
    if trajectories:
        start = next(iter(trajectories.values()))[0].detach().double().cpu().numpy()
        ax_phase.plot(start[0], start[1], "s", color="black", ms=8, label="start", zorder=5)
    ax_phase.plot(0, 0, "*", color="gold", mec="black", ms=15, label="equilibrium (0, 0)", zorder=5)
    ax_phase.set_xlabel(r"generator $\theta$")
    ax_phase.set_ylabel(r"discriminator $\psi$")
    ax_phase.set_title("trajectories (colours as in the legend; dot = final point, X = off view)", fontsize=10)

    if tol is not None:
        ax_dist.axhline(tol, color="0.4", lw=1, ls=":", label=f"tolerance {tol:g}")
    ax_dist.set_yscale("log")
    ax_dist.set_xlabel("step (one D update + one G update)")
    ax_dist.set_ylabel(r"distance to equilibrium $\sqrt{\theta^2 + \psi^2}$")
    ax_dist.set_title("distance to equilibrium", fontsize=10)
    ax_dist.grid(True, which="major", alpha=0.3)
    ax_dist.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.suptitle(title or "Dirac-GAN (Mescheder et al. 2018): alternating SGD from (1, 1)", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _mark_off_view(ax, trajectories: Mapping[str, Tensor], lim: float, cmap) -> None:
    """Mark where the runs that leave the view end, at its edge."""
    for i, (name, traj) in enumerate(trajectories.items()):
        t = traj.detach().double().cpu()
        last = t[torch.isfinite(t).all(1)][-1]
        if bool((last.abs() > lim).any()):
            edge = last.clamp(-0.97 * lim, 0.97 * lim).tolist()
            ax.plot(*edge, "X", color=cmap(i % 10), ms=8)
            ax.annotate(f"{name} ends at ({last[0]:.2g}, {last[1]:.2g})", edge, fontsize=8,
                        color=cmap(i % 10), xytext=(6, 6), textcoords="offset points")


# --- one run of every method -------------------------------------------------------------

def run_dirac(out_dir: str | Path, steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR,
              methods: Sequence[str] | None = None, start: Sequence[float] = START,
              tol: float = TOLERANCE) -> dict[str, Any]:
    """Simulate ``methods`` (default: all), write ``dirac.png`` and ``dirac.json`` in ``out_dir``.

    Returns what ``dirac.json`` holds: the settings, one summary per method (final and
    minimum distance, converged?) and the two file paths.
    """
    names = list(DIRAC_METHODS) if not methods else list(methods)
    for name in names:
        method_spec(name)  # unknown names fail before any work
    if not all(math.isfinite(float(v)) for v in start):
        raise ConfigError(f"--start must be two finite numbers (got {start[0]:g} {start[1]:g})")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; -o names the folder for dirac.png and dirac.json")
    out.mkdir(parents=True, exist_ok=True)
    trajectories = {name: simulate(name, steps=steps, lr=lr, start=start) for name in names}
    png = plot_dirac(trajectories, out / "dirac.png", tol=tol,
                     title=f"Dirac-GAN (Mescheder et al. 2018): alternating SGD, h = {lr:g}, "
                           f"{steps} steps from ({start[0]:g}, {start[1]:g})")
    result: dict[str, Any] = {
        "settings": {
            "steps": int(steps), "lr": float(lr), "start": [float(v) for v in start], "tolerance": float(tol),
            "equilibrium": [0.0, 0.0], "optimizer": "SGD (no momentum), same lr for both players",
            "update": "alternating: steadygan.core.step.d_step, then g_step on the updated D, per step",
            "converged": f"final distance to (0, 0) < {tol:g}",
            "diverged": f"final distance not finite or > {DIVERGED_FACTOR:g} x start distance",
        },
        "methods": {},
        "files": {"png": str(png), "json": str(out / "dirac.json")},
    }
    for name, traj in trajectories.items():
        spec = method_spec(name)
        result["methods"][name] = {**spec, **summarize(traj, tol)}
    (out / "dirac.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


__all__ = [
    "DIRAC_METHODS", "DEFAULT_LR", "DEFAULT_STEPS", "START", "TOLERANCE", "DiracDiscriminator",
    "DiracGenerator", "dirac_players", "distance_to_equilibrium",
    "method_spec", "plot_dirac", "run_dirac", "simulate", "summarize",
]

"""The Dirac-GAN (Mescheder et al. 2018) through the project's own d_step/g_step.

Known qualitative results, turned into numbers. Notation: h = learning rate, r0 = sqrt(2)
the start distance from (1, 1), N = steps. Near (0, 0) every unregularised loss here is
a rotation (Jacobian eigenvalues +-i f'(0)); alternating gradient descent on a rotation is
area-preserving, so it neither converges nor diverges.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from steadygan.cli.dirac import add_parser as add_dirac_parser
from steadygan.cli.dirac import cmd_dirac
from steadygan.core.step import d_step, g_step
from steadygan.errors import ConfigError
from steadygan.lab.dirac import (
    DIRAC_METHODS,
    START,
    TOLERANCE,
    dirac_players,
    distance_to_equilibrium,
    run_dirac,
    simulate,
    summarize,
)

H = 0.1
N = 500
R0 = math.hypot(*START)


@pytest.mark.slow
def test_plain_gan_does_not_approach_the_equilibrium():
    # Minimax (the paper's f(t) = -log(1 + e^-t)): in continuous time d/dt (theta^2 + psi^2) = 0
    # exactly. Alternating steps of size h * sigmoid(psi*theta) <= h keep a quadratic
    # invariant theta^2 + psi^2 - c*theta*psi with |c| <= h, so the distance can dip at most
    # by a factor sqrt((1 - h/2) / (1 + h/2)) = 0.951 for h = 0.1: 0.9 leaves margin, and a
    # damped method (R1 below) falls under it within ~10 steps.
    dist = distance_to_equilibrium(simulate("plain", steps=N, lr=H))
    assert float(dist[0]) == pytest.approx(R0)
    assert float(dist[-1]) >= 0.9 * R0
    assert float(dist.min()) >= 0.9 * R0
    assert float(dist.max()) <= 1.1 * R0  # ...and it circles rather than spiralling out


@pytest.mark.slow
def test_r1_gamma_1_converges_at_the_linearised_rate():
    # Linearise minimax + R1 at (0, 0): D step psi' = (1 - h*gamma) psi - (h/2) theta, then
    # G step theta' = theta + (h/2) psi'. Its spectral radius is 0.960 for gamma = 1, h = 0.1,
    # so after N = 500 steps the distance should be about ||M^N|| r0 = 8e-9. Allow 10x for the
    # nonlinear start (sigmoid(psi*theta) != 1/2 at (1, 1)); the rate with half the damping
    # (gamma = 0.5, radius 0.975) would leave ~1e-5, far above this bound.
    gamma = 1.0
    m = torch.tensor([[1 - H * H / 4, H / 2 * (1 - H * gamma)], [-H / 2, 1 - H * gamma]], dtype=torch.float64)
    assert float(torch.linalg.eigvals(m).abs().max()) == pytest.approx(0.960, abs=1e-3)
    predicted = float(torch.linalg.matrix_norm(torch.linalg.matrix_power(m, N), 2)) * R0
    final = float(distance_to_equilibrium(simulate("r1-1", steps=N, lr=H))[-1])
    assert final < TOLERANCE
    assert final <= 10 * predicted


@pytest.mark.slow
def test_wgan_without_constraint_circles_forever():
    # Wasserstein: D minimises psi*theta, G minimises -psi*theta. With D updated first,
    # psi' = psi - h theta, theta' = theta + h psi' conserves Q = theta^2 + psi^2 - h theta psi
    # exactly; float32 rounding only. Q bounds the distance between 0.951 and 1.05 x r0.
    traj = simulate("wgan", steps=N, lr=H)
    theta, psi = traj[:, 0], traj[:, 1]
    q = theta**2 + psi**2 - H * theta * psi
    assert float((q / q[0] - 1).abs().max()) < 1e-4
    dist = distance_to_equilibrium(traj)
    assert float(dist[-1]) >= 0.9 * R0
    assert float(dist.min()) >= 0.9 * R0


@pytest.mark.parametrize("gamma", [0.3, 1.0])
def test_r1_term_inside_the_step_is_the_closed_form(gamma):
    # 1-D data and D(x) = psi x: grad_x D = psi, so R1 = (gamma/2) psi^2, and the D update
    # is psi - h * (theta * sigmoid(psi theta) + gamma psi) (minimax D loss softplus(psi theta)).
    theta, psi = 0.7, -1.3
    d, g, loss = dirac_players({"loss": "minimax", "d_penalties": [{"name": "r1", "gamma": gamma}]},
                               lr=H, start=(theta, psi))
    real, z = torch.zeros(1, 1), torch.zeros(1, 1)
    stats = d_step(d, g, loss, real, z, step=0)
    penalty = d.penalties[0]
    assert float(penalty.weight * stats["Penalty/D/r1"]) == pytest.approx(gamma / 2 * psi**2, rel=1e-6)
    u = torch.tensor(psi * theta, dtype=torch.float64)
    expected_psi = psi - H * (theta * float(torch.sigmoid(u)) + gamma * psi)
    assert float(d.net.psi.detach()) == pytest.approx(expected_psi, rel=1e-6)
    assert float(g.net.theta.detach()) == pytest.approx(theta, rel=1e-7)  # the D step leaves G alone
    # The G step that follows sees the updated psi: theta' = theta + h * psi' * sigmoid(psi' theta).
    g_step(g, d, loss, real, z, step=0)
    u2 = torch.tensor(expected_psi * theta, dtype=torch.float64)
    assert float(g.net.theta.detach()) == pytest.approx(theta + H * expected_psi * float(torch.sigmoid(u2)), rel=1e-5)


def test_simulation_is_deterministic_and_leaves_the_global_rng_alone():
    # wgan-gp draws interpolation weights from the global RNG; consensus takes double backwards.
    for method in ("wgan-gp", "consensus"):
        a, b = simulate(method, steps=40), simulate(method, steps=40)
        assert torch.equal(a, b)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    simulate("wgan-gp", steps=5)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.slow
def test_value_clipping_only_slows_the_orbit_down():
    # Every |gradient| > eps, so each player moves by exactly h*eps per step: sign descent on a
    # rotation, which conserves |theta| + |psi| (here 2) instead of shrinking it.
    traj = simulate("value-clip", steps=N, lr=H)
    l1 = traj.abs().sum(1)
    assert float((l1 - 2).abs().max()) < 1e-3
    assert float(distance_to_equilibrium(traj)[-1]) >= R0


@pytest.mark.slow
def test_seed_param_penalty_does_not_stabilise_the_dirac_gan():
    # The document's lambda ||grad_own-params loss||^2 is cubic in (theta, psi) for this game, so
    # it adds no damping at (0, 0); at lambda = 1 the generator's term outweighs its loss once
    # psi^2 > 2 and the discriminator then runs off: the distance grows.
    dist = distance_to_equilibrium(simulate("seed-param", steps=N, lr=H))
    assert float(dist[-1]) > 2 * R0


def test_unknown_method_is_an_error_that_lists_the_choices():
    with pytest.raises(ConfigError, match="r1-1"):
        simulate("r3", steps=1)


@pytest.mark.slow
def test_run_dirac_writes_plot_and_summary(tmp_path):
    result = run_dirac(tmp_path / "out", steps=30, lr=H, methods=["plain", "r1-1"])
    png, js = tmp_path / "out" / "dirac.png", tmp_path / "out" / "dirac.json"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(js.read_text())
    assert saved == json.loads(json.dumps(result))
    assert list(saved["methods"]) == ["plain", "r1-1"]
    assert saved["settings"]["steps"] == 30 and saved["settings"]["lr"] == H
    plain, r1 = saved["methods"]["plain"], saved["methods"]["r1-1"]
    assert r1["final_distance"] < plain["final_distance"]
    assert plain["converged"] is False and plain["start_distance"] == pytest.approx(R0)


@pytest.mark.slow
def test_cli_subcommand(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="steadygan")
    add_dirac_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["dirac", "--help"])
    help_text = capsys.readouterr().out
    assert "examples:" in help_text and all(name in help_text for name in DIRAC_METHODS)
    with pytest.raises(SystemExit):
        parser.parse_args(["dirac", "--methods", "plain,nope"])
    assert "nope" in capsys.readouterr().err
    args = parser.parse_args(["dirac", "--steps", "10", "--methods", "plain,wgan", "-o", str(tmp_path)])
    assert args.func is cmd_dirac and args.func(args) == 0
    out = capsys.readouterr().out
    assert "plain" in out and "wgan" in out and str(tmp_path / "dirac.png") in out


@pytest.mark.slow
def test_rpgan_alone_orbits_and_rpgan_with_r1_converges():
    """The real sample sits at 0, so D(real) = 0 and the relativistic loss is the
    non-saturating GAN on this game: the same trajectory to the bit, which does not reach the
    equilibrium. With R1 (gamma = 1) it converges like the regularised minimax game."""
    rpgan, non_saturating = simulate("rpgan"), simulate("non-saturating")
    assert torch.equal(rpgan, non_saturating)
    assert summarize(rpgan)["converged"] is False and summarize(rpgan)["final_distance"] > 0.1
    with_r1 = summarize(simulate({"loss": "relativistic", "d_penalties": [{"name": "r1", "gamma": 1.0}]}))
    assert with_r1["converged"] is True and with_r1["final_distance"] < 1e-6
    assert summarize(simulate("r3gan"))["converged"] is True


def test_bad_start_and_output_paths_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="--start must be two finite numbers"):
        run_dirac(tmp_path / "d", steps=3, methods=["plain"], start=(math.nan, 1.0))
    assert not (tmp_path / "d").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        run_dirac(tmp_path / "file", steps=3, methods=["plain"])

"""Bring your own networks: model.arch=package.module:factory, and a GanPair given in Python."""

from __future__ import annotations

import re
import sys
import textwrap

import pytest
import torch

from steadygan.cli import main
from steadygan.errors import ConfigError
from steadygan.models import GanPair, build_models
from steadygan.training.trainer import Trainer, train

NETS = '''
import torch
from torch import nn


class Critic(nn.Module):
    def __init__(self, dim, width):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, width), nn.LeakyReLU(0.2), nn.Linear(width, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


def toy_pair(sample_shape, z_dim, width=24):
    (dim,) = sample_shape
    G = nn.Sequential(nn.Linear(z_dim, width), nn.ReLU(), nn.Linear(width, dim))
    return G, Critic(dim, width)


def wide_logits(sample_shape, z_dim):
    G, D = toy_pair(sample_shape, z_dim)
    return G, D.net  # (N, 1) logits: refused


def wrong_shape(sample_shape, z_dim):
    G, D = toy_pair((3,), z_dim)
    return G, D


def not_a_pair(sample_shape, z_dim):
    return "G and D"
'''


@pytest.fixture
def nets_module(tmp_path, monkeypatch):
    (tmp_path / "my_nets_for_test.py").write_text(textwrap.dedent(NETS))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_nets_for_test"
    sys.modules.pop("my_nets_for_test", None)


@pytest.mark.slow
def test_a_pair_from_an_import_path_trains_resumes_exactly_and_samples(tmp_path, nets_module, toy_cfg, final_state,
                                                                       assert_same_state):
    arch = f"model.arch={nets_module}:toy_pair"
    sets = [arch, "model.width=null", "model.depth=null", "train.ema=0.9"]
    straight = train(toy_cfg(tmp_path, *sets))
    state = final_state(straight.run_dir)
    assert state["config"]["model"]["arch"] == f"{nets_module}:toy_pair"  # the checkpoint records the path
    assert "net.0.weight" in state["discriminator"]  # the user's Critic, not steadygan's MLP
    half = train(toy_cfg(tmp_path, *sets, "train.steps=6"))
    assert main(["train", "--resume", str(half.run_dir), "--steps", "12", "--no-progress"]) == 0
    assert_same_state(state, final_state(half.run_dir))
    assert main(["sample", str(half.run_dir), "-n", "16", "-o", str(tmp_path / "points.png")]) == 0
    assert (tmp_path / "points.png").stat().st_size > 0


def test_options_reach_the_factory_and_ones_it_does_not_take_are_errors(tmp_path, nets_module):
    pair = build_models(f"{nets_module}:toy_pair", (2,), 4, width=7)
    assert pair.discriminator.net[0].out_features == 7
    with pytest.raises(ConfigError, match=r"model.depth does not apply to toy_pair.*\(--set model.depth=null\)"):
        build_models(f"{nets_module}:toy_pair", (2,), 4, depth=3)


@pytest.mark.parametrize("arch,message", [
    ("no_such_module_here:f", "cannot import 'no_such_module_here'"),
    ("{m}:missing", "module '{m}' has no 'missing'"),
    ("{m}:wide_logits", r"returns \(2, 1\) for 2 samples; it must return one logit per sample"),
    ("{m}:wrong_shape", r"maps \(2, 2\) noise to \(2, 3\); the data needs \(2, 2\)"),
    ("{m}:not_a_pair", "the factory returned str"),
    ("{m}:a:b", "an import path is package.module:factory"),
])
def test_a_bad_import_path_or_factory_is_a_one_line_error(tmp_path, nets_module, capsys, arch, message):
    arch, message = arch.format(m=nets_module), message.replace("{m}", nets_module)
    assert main(["train", "--config", "configs/ring8.yaml", "--set", f"model.arch={arch}", "--set",
                 "model.width=null", "--set", "model.depth=null", "--steps", "1", "--out", str(tmp_path / "runs"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err), err


def test_the_trainer_takes_a_pair_of_modules_from_python(tmp_path, toy_cfg):
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    D = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1), torch.nn.Flatten(0))
    before = [p.detach().clone() for p in D.parameters()]
    trainer = Trainer(toy_cfg(tmp_path, "train.steps=3"), tmp_path / "run", pair=GanPair(G, D))
    (tmp_path / "run").mkdir()
    result = trainer.train()
    assert result.step == 3 and trainer.D is D
    assert all(not torch.equal(a, b) for a, b in zip(before, D.parameters()))


MORE_NETS = '''
import not_installed_dependency_xyz
'''


def test_imported_module_errors_name_the_real_problem(tmp_path, nets_module, capsys):
    (tmp_path / "needs_dep_for_test.py").write_text(MORE_NETS)
    (tmp_path / "constant_for_test.py").write_text("toy_pair = 3\n")
    cases = {
        "needs_dep_for_test:f": "'needs_dep_for_test' imports 'not_installed_dependency_xyz', which is not installed",
        "constant_for_test:toy_pair": "'toy_pair' in 'constant_for_test' is a int, not a function or class",
    }
    try:
        for arch, message in cases.items():
            with pytest.raises(ConfigError, match=re.escape(message)):
                build_models(arch, (2,), 4)
        with pytest.raises(ConfigError, match=r"the factory failed for sample_shape=\(1, 28, 28\)"):
            build_models(f"{nets_module}:toy_pair", (1, 28, 28), 4)  # (dim,) = sample_shape fails on images
        with pytest.raises(ConfigError, match="has no embed or head"):
            build_models(f"{nets_module}:toy_pair", (2,), 4, num_classes=3)
    finally:
        for name in ("needs_dep_for_test", "constant_for_test"):
            sys.modules.pop(name, None)


# --- closed from surviving mutants (benchmarks/mutation.sh): paths, sys.path, exact texts ---------

EDGE_NETS = '''
from torch import nn
from steadygan.models import GanPair


def gan_pair(sample_shape, z_dim):
    return GanPair(nn.Linear(z_dim, sample_shape[0]), nn.Sequential(nn.Linear(sample_shape[0], 1), nn.Flatten(0)))


def conditional_pair(sample_shape, z_dim):
    return GanPair(nn.Linear(z_dim, 2), nn.Linear(2, 1), num_classes=3)


def three_modules(sample_shape, z_dim):
    return nn.Linear(z_dim, 2), nn.Sequential(nn.Linear(2, 1), nn.Flatten(0)), nn.Linear(2, 2)


def module_and_text(sample_shape, z_dim):
    return nn.Linear(z_dim, 2), "D"


def no_z_dim(sample_shape):
    return None


def fails(sample_shape, z_dim):
    raise ValueError("no such width")
'''


@pytest.fixture
def edge_module(tmp_path, monkeypatch):
    (tmp_path / "edge_nets_for_test.py").write_text(EDGE_NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "edge_nets_for_test"
    sys.modules.pop("edge_nets_for_test", None)


def test_what_an_imported_factory_returns_is_checked(edge_module):
    from steadygan.models.imported import build_imported

    assert isinstance(build_imported(f"{edge_module}:gan_pair", (2,), 4), GanPair)
    m = edge_module
    returned_tuple = "the factory returned tuple; it must return (generator, discriminator) modules or a GanPair"
    cases = {
        "three_modules": f"model.arch={m}:three_modules: {returned_tuple}",
        "module_and_text": f"model.arch={m}:module_and_text: {returned_tuple}",
        "conditional_pair": f"model.arch={m}:conditional_pair: return an unconditional pair; model.conditional=true "
                            "adds the class conditioning",
        "fails": f"model.arch={m}:fails: the factory failed for sample_shape=(2,), z_dim=4: ValueError: no such width",
        "no_z_dim": f"model.arch={m}:no_z_dim: it must take 'z_dim': no_z_dim(sample_shape)",
    }
    for factory, text in cases.items():
        with pytest.raises(ConfigError) as exc:
            build_imported(f"{m}:{factory}", (2,), 4)
        assert str(exc.value) == text
    with pytest.raises(ConfigError) as exc:
        build_imported("my_nets_for_test_absent:f", (2,), 4)
    assert str(exc.value) == ("model.arch=my_nets_for_test_absent:f: cannot import 'my_nets_for_test_absent' "
                              "(No module named 'my_nets_for_test_absent'); run from the folder that holds it, or add "
                              "that folder to PYTHONPATH")


def test_a_generator_of_the_wrong_shape_is_named_with_its_import_path(nets_module):
    from steadygan.models.imported import build_imported

    with pytest.raises(ConfigError) as exc:
        build_imported(f"{nets_module}:wrong_shape", (2,), 4)
    assert str(exc.value) == (f"model.arch={nets_module}:wrong_shape: the generator maps (2, 4) noise to (2, 3); the "
                              "data needs (2, 2)")


@pytest.mark.parametrize("path", [":f", "module:", "a:b:c"])
def test_an_import_path_needs_a_module_and_a_name(path):
    from steadygan.models.imported import load_factory

    with pytest.raises(ConfigError) as exc:
        load_factory(path)
    assert str(exc.value) == f"model.arch={path}: an import path is package.module:factory"


def test_a_missing_package_and_a_missing_submodule_are_cannot_import(tmp_path, monkeypatch):
    from steadygan.models.imported import load_factory

    (tmp_path / "pkg_for_test").mkdir()
    (tmp_path / "pkg_for_test" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        for module in ("absent_pkg_for_test.nets", "pkg_for_test.absent"):
            with pytest.raises(ConfigError) as exc:
                load_factory(f"{module}:f")
            assert f"cannot import '{module}'" in str(exc.value) and "not installed" not in str(exc.value)
    finally:
        sys.modules.pop("pkg_for_test", None)


def test_a_module_that_raises_while_importing_is_named_with_its_error(tmp_path, monkeypatch):
    from steadygan.models.imported import load_factory

    (tmp_path / "raises_for_test.py").write_text("raise RuntimeError('no GPU here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as exc:
        load_factory("raises_for_test:f")
    assert str(exc.value) == ("model.arch=raises_for_test:f: importing 'raises_for_test' failed: RuntimeError: "
                              "no GPU here")


def test_the_current_folder_is_searched_first_as_python_dash_m_would(tmp_path, monkeypatch):
    from steadygan.models.imported import load_factory

    (tmp_path / "cwd_nets_for_test.py").write_text("def f(sample_shape, z_dim):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    cwd = str(tmp_path)
    try:
        monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", cwd)])
        assert load_factory("cwd_nets_for_test:f").__name__ == "f"
        assert sys.path[0] == cwd and sys.path.count(cwd) == 1
        load_factory("cwd_nets_for_test:f")
        assert sys.path.count(cwd) == 1  # not added twice
        monkeypatch.setattr(sys, "path", ["", *(p for p in sys.path if p != cwd)])
        load_factory("cwd_nets_for_test:f")
        assert cwd not in sys.path  # "" already means the current folder
    finally:
        sys.modules.pop("cwd_nets_for_test", None)

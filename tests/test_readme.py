"""README's custom-loop example runs as written and trains: its generator covers the data."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_the_readme_custom_loop_runs_and_covers_all_eight_modes():
    text = README.read_text()
    section = text[text.index("### Use a stabiliser in your own training loop"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    with torch.no_grad():
        x = namespace["G"](torch.randn(2000, 4))
    radius = x.norm(dim=1)
    assert abs(radius.median().item() - 2.0) < 0.2  # on the circle
    mode = (torch.atan2(x[:, 1], x[:, 0]) / (2 * math.pi / 8)).round().remainder(8).long()
    assert torch.bincount(mode, minlength=8).min().item() > 2000 / 8 / 3  # every mode, roughly evenly


def test_the_readme_custom_networks_train_with_the_readme_command(tmp_path, monkeypatch):
    import shlex
    import sys

    from steadygan.cli import main
    from steadygan.training.checkpoint import latest_checkpoint, load_checkpoint

    text = README.read_text()
    section = text[text.index("### Bring your own networks"):]
    (tmp_path / "my_nets.py").write_text(re.search(r"```python\n(.*?)```", section, re.S).group(1))
    command = shlex.split(re.search(r"```bash\n(.*?)```", section, re.S).group(1))
    assert command[0] == "steadygan"
    args = [str(README.parent / a) if a.startswith("configs/") else a for a in command[1:]]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])  # as the console script
    try:
        assert main([*args, "--steps", "3", "--no-progress", "--out", "runs"]) == 0
    finally:
        sys.modules.pop("my_nets", None)
    (run,) = (tmp_path / "runs").iterdir()
    state = load_checkpoint(latest_checkpoint(run))
    assert state["config"]["model"]["arch"] == "my_nets:toy_pair"
    assert set(state["discriminator"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}  # the README's D

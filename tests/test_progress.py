"""Long steps say what they do on a terminal, and nothing with --no-progress or off a terminal."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from steadygan import progress
from steadygan.apps.completion import complete


@pytest.fixture
def restore_progress():
    yield
    progress.set_enabled(None)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 16)

    def forward(self, z):
        return self.net(z).tanh().view(-1, 1, 4, 4)


def _complete() -> None:
    images = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    mask = torch.ones(4, 4)
    mask[1:3, 1:3] = 0  # the centre is to be filled
    complete(Tiny(), images, mask, 3, steps=3, restarts=1)


def test_a_completion_shows_a_bar_when_progress_is_on_and_nothing_otherwise(capsys, restore_progress):
    progress.set_enabled(True)
    _complete()
    assert "completing 2 image(s) x 1 start(s)" in capsys.readouterr().err
    progress.set_enabled(False)
    _complete()
    assert capsys.readouterr().err == ""
    progress.set_enabled(None)  # the default: on a terminal only; pytest's capture is none
    _complete()
    assert capsys.readouterr().err == ""


def test_notes_follow_the_same_switch(capsys, restore_progress):
    progress.set_enabled(True)
    progress.note("training the feature classifier")
    assert capsys.readouterr().err == "training the feature classifier\n"
    progress.set_enabled(False)
    progress.note("training the feature classifier")
    assert capsys.readouterr().err == ""


def test_no_progress_turns_progress_off_for_the_command(tmp_path, restore_progress):
    from steadygan.cli import main

    progress.set_enabled(True)
    main(["prepare", "--verify", str(tmp_path / "nothing"), "--no-progress"])  # fails: no such folder
    assert not progress.enabled()
    main(["methods"])  # a command without the flag: back to the default
    assert progress.enabled() == progress.sys.stderr.isatty()

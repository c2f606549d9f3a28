"""Tune's machinery tests train ring8 for 20-60 steps, too few to recover its modes: the
report's rule (modes <= 1: collapsed) would fail every trial. These fixtures loosen that one
threshold, in this process or in a ``steadygan`` subprocess, so the search, the finals and
the storage are what such a test checks; the rule's own effect on a trial is tested with it
left as it is."""

from __future__ import annotations

import sys

import pytest

from steadygan.lab.report import aggregate

_LENIENT = ("import sys; from steadygan.lab.report import aggregate; aggregate.COLLAPSE_MODES = -1; "
            "from steadygan.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.fixture
def lenient_rule(monkeypatch):
    """No ring8 run counts as collapsed, in this process."""
    monkeypatch.setattr(aggregate, "COLLAPSE_MODES", -1)


@pytest.fixture
def lenient_steadygan() -> list[str]:
    """The command prefix of a ``steadygan`` subprocess in which no ring8 run counts as collapsed."""
    return [sys.executable, "-c", _LENIENT]

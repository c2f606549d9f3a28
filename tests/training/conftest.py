"""Fixtures of the training tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def scenarios():
    """distributed_scenarios.py: the script every process of a spawned job runs, loaded here by
    its path for the single-process reference values it also computes."""
    spec = importlib.util.spec_from_file_location("distributed_scenarios", HERE / "distributed_scenarios.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def nan_once_at():
    """``nan_once_at(trainer, step)``: make the trainer's loss D NaN once, at ``step`` (a
    divergence the recovery must catch)."""
    return _nan_once_at


def _nan_once_at(trainer, step: int) -> None:
    import math

    import torch

    original, poisoned = trainer._one_step, []

    def poisoned_step():
        stats = original()
        if trainer.step == step and not poisoned:
            poisoned.append(True)
            stats["Loss/D"] = torch.tensor(math.nan)
        return stats

    trainer._one_step = poisoned_step

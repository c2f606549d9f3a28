"""Unconditional training computes what it computed before the core carried batches and labels.

The reference parameters were written by tests/reference/make_reference.py from the code
before that change. The comparison allows 1e-5 absolute: float32 reductions may round
differently on another CPU's kernels (about 1e-7 per step here), while any change in what is
computed (another random draw, batch, loss term or update order) moves parameters by 1e-3 or
more after these few steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))

from make_reference import CASES, run_case  # noqa: E402

REFERENCE = torch.load(Path(__file__).resolve().parent / "reference" / "unconditional.pt", weights_only=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_unconditional_training_matches_the_stored_reference(case, tmp_path):
    got = run_case(case, tmp_path)
    for part, tensors in REFERENCE[case].items():
        assert set(got[part]) == set(tensors), f"{part}: parameter names changed"
        for name, expected in tensors.items():
            torch.testing.assert_close(got[part][name], expected, rtol=0, atol=1e-5, msg=f"{case} {part}.{name}")

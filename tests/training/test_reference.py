"""Unconditional training computes what it computed before the core carried batches and labels.

The reference parameters were written by tests/training/reference/make_reference.py (the
cases: ``REFERENCE_CASES`` in tests/conftest.py) from the code
before that change. The comparison allows 1e-5 absolute: float32 reductions may round
differently on another CPU's kernels (about 1e-7 per step here), while any change in what is
computed (another random draw, batch, loss term or update order) moves parameters by 1e-3 or
more after these few steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REFERENCE = torch.load(Path(__file__).resolve().parent / "reference" / "unconditional.pt", weights_only=True)


@pytest.mark.parametrize("case", ["image", "toy"])
def test_unconditional_training_matches_the_stored_reference(case, tmp_path, run_reference_case):
    got = run_reference_case(case, tmp_path)
    for part, tensors in REFERENCE[case].items():
        assert set(got[part]) == set(tensors), f"{part}: parameter names changed"
        for name, expected in tensors.items():
            torch.testing.assert_close(got[part][name], expected, rtol=0, atol=1e-5, msg=f"{case} {part}.{name}")

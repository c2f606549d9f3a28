"""Write tests/training/reference/unconditional.pt: parameters after a few steps of two small runs.

Made once from the code *before* the core carried batches and labels (commit of 2026-11-26),
so that tests/training/test_reference.py can check that unconditional training still computes
the same parameters for the same seed. The cases are ``REFERENCE_CASES`` in tests/conftest.py.
Re-running this script overwrites the reference: do that only for a change that is meant to
alter the arithmetic, and say so in the commit.

    python tests/training/reference/make_reference.py
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _conftest():
    """tests/conftest.py, loaded by its path (it is no package module)."""
    spec = importlib.util.spec_from_file_location("steadygan_tests_conftest", HERE.parents[1] / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    conftest = _conftest()
    with tempfile.TemporaryDirectory() as tmp:
        out = {name: conftest._run_reference_case(name, Path(tmp) / name) for name in conftest.REFERENCE_CASES}
    torch.save(out, HERE / "unconditional.pt")
    print(f"wrote {HERE / 'unconditional.pt'}")


if __name__ == "__main__":
    main()

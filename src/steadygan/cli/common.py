"""Flags that several commands share, declared once (each command keeps its own default device), and
the checks of their values that every command makes alike."""

from __future__ import annotations

import argparse

from ..errors import ConfigError


def add_checkpoint_flags(p: argparse.ArgumentParser, raw_help: str) -> None:
    """``--checkpoint FILE`` and ``--raw``: which weights of a run to use."""
    p.add_argument("--checkpoint", help="a specific checkpoint file (default: the run's newest)")
    p.add_argument("--raw", action="store_true", help=raw_help)


def add_seed_flag(p: argparse.ArgumentParser, what: str, default: int | None = 0) -> None:
    shown = f" (default {default})" if default is not None else ""
    p.add_argument("--seed", type=int, default=default, help=f"{what}{shown}")


def add_device_flag(p: argparse.ArgumentParser, default: str | None, what: str = "device") -> None:
    """``--device``: train's default is auto (None: the config's train.device), eval's and complete's cpu."""
    shown = f" (default {default})" if default is not None else ""
    p.add_argument("--device", default=default, help=f"{what}: auto, cpu, cuda or cuda:N{shown}")


def checked_device(name: str) -> str:
    """``--device NAME`` as torch names it, or a one-line error (unknown name, no CUDA here)."""
    from ..training.build import resolve_device

    return str(resolve_device(name, flag="--device "))


def add_output_flag(p: argparse.ArgumentParser, default: str | None, what: str, *flags: str) -> None:
    """A file a command writes (``-o/--output`` unless ``flags`` say otherwise): every command
    creates the missing folders of the files it writes."""
    shown = f" (default {default})" if default is not None else ""
    p.add_argument(*(flags or ("-o", "--output")), default=default, help=f"{what}{shown}; missing folders are created")


def check_at_least_one(**values: int | None) -> None:
    """ConfigError for the first of these integer flags below 1 (None: not given)."""
    for flag, value in values.items():
        if value is not None and value < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1 (got {value})")


def check_class(cls: int | None, loaded, run_dir: str) -> None:
    """``--class K`` for a run: it must be conditional, and K one of its classes."""
    if cls is None:
        return
    if not loaded.conditional:
        raise ConfigError(f"{run_dir} is unconditional: --class needs a run trained with model.conditional=true")
    if not 0 <= cls < loaded.num_classes:
        raise ConfigError(f"--class must be in 0..{loaded.num_classes - 1} for this run (got {cls})")


def add_scale_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--scale", type=int, default=2, help=f"pixel upscaling of {what} (default 2)")


def add_class_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--class", dest="cls", type=int, metavar="K", help=f"conditional runs: {what}")


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar or progress lines (they appear only on a terminal anyway)")

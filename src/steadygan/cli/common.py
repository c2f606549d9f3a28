"""Flags that several commands share, declared once (each command keeps its own default device)."""

from __future__ import annotations

import argparse


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


def add_scale_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--scale", type=int, default=2, help=f"pixel upscaling of {what} (default 2)")


def add_class_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--class", dest="cls", type=int, metavar="K", help=f"conditional runs: {what}")

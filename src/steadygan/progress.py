"""What a long command is doing, on a terminal: one line saying so, and a tqdm bar.

Off when standard error is not a terminal (a log file, a pipe, CI) and when a command was
given ``--no-progress``; training's own bar follows ``train.progress`` the same way. The
library's long steps (training the feature classifier, a completion search, writing a
prepared set) report through here, so every command behaves alike.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

_enabled: list[bool | None] = [None]  # None: on exactly when stderr is a terminal


def set_enabled(on: bool | None) -> None:
    """True or False for this process (``--no-progress`` sets False); None: on a terminal only."""
    _enabled[0] = on


def enabled() -> bool:
    return sys.stderr.isatty() if _enabled[0] is None else _enabled[0]


def note(text: str) -> None:
    """Say what a long step is doing (nothing when progress is off)."""
    if enabled():
        print(text, file=sys.stderr, flush=True)


def bar(total: int, desc: str, unit: str = "step", **kwargs: Any) -> tqdm:
    """A progress bar over ``total`` units; a disabled one (same interface) when progress is off."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled(), leave=False, dynamic_ncols=True, **kwargs)

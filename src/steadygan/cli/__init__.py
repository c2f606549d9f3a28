"""Command line: ``steadygan train | sample | complete | translate | eval | prepare | methods | compare | report
| dirac | health | tune``
(also ``python -m steadygan``).

Each command is a module of this package with ``add_parser(subparsers)`` and a ``cmd_*``
function that parses nothing itself and delegates to the library; this module wires them
together and turns the library's errors into one line and an exit code.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap

from .. import progress
from ..errors import CheckpointError, ConfigError, DataError, StorageError, TrainingDiverged
from . import complete, dirac, evaluate, health, lab, methods, prepare, sample, train, translate, tune


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steadygan",
        description="Train image GANs with gradient penalties or gradient clipping, and measure which stabiliser "
                    "works.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `steadygan COMMAND --help` for each command's options and examples.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (train, sample, evaluate, complete, translate, prepare, methods):
        command.add_parser(sub)
    lab.add_compare_parser(sub)
    lab.add_report_parser(sub)
    dirac.add_parser(sub)
    health.add_parser(sub)
    tune.add_parser(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.formatwarning = _one_line_warning  # what went wrong, not which source line said so
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --nproc` launches it again
    progress.set_enabled(False if getattr(args, "no_progress", False) else None)  # else: on a terminal
    try:
        return args.func(args)
    except (ConfigError, DataError, CheckpointError, StorageError) as exc:
        print(f"steadygan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        text = textwrap.fill(str(exc), 100, break_on_hyphens=False, break_long_words=False)  # paths stay whole
        print(f"steadygan {args.command}: {text}", file=sys.stderr)
        return 3
    except KeyboardInterrupt as exc:  # a second Ctrl-C / SIGTERM: abort without the final checkpoint
        print(f"steadygan {args.command}: aborted", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)
    except BrokenPipeError:  # `steadygan methods | head`: the reader left; nothing more to say
        sys.stdout = open(os.devnull, "w")  # the interpreter's final flush must not fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())

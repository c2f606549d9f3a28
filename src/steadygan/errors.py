"""The errors steadygan raises for things a user can fix, in one place at the bottom of the package.

Each message is one line that says what is wrong and how to fix it; the command line prints
it after ``steadygan COMMAND: error:`` and exits with code 2 (3 for a diverged run, 4 when
another process of a distributed job failed).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value the user can fix: the message says what and how."""


class DataError(ValueError):
    """A dataset file or folder that cannot be used; the message names it and the fix."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, damaged, from another run or another release)."""


class StorageError(OSError):
    """A file could not be written (disk full, permissions); the message names it and the free space."""


class CollectiveError(RuntimeError):
    """Another process of the job failed or stopped answering."""


class TrainingDiverged(RuntimeError):
    """A loss or statistic became NaN/inf; the message says which and where the last good checkpoint is."""


class Interrupted(KeyboardInterrupt):
    """A stop by signal ``signum`` (SIGINT, SIGTERM): the command exits with 128 + signum, the
    shell's convention, after whatever it could save (a run's checkpoint, a lab's finished runs)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum

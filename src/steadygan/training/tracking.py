"""Run statistics: every step's numbers to stats.jsonl and TensorBoard, plus a progress bar.

Steps hand over detached tensors; ``flush`` stacks a whole interval's values and moves
them to the host in one transfer, so logging every step costs one sync per interval.
Non-finite values are detected at flush time (the trainer flushes before every
checkpoint, so a checkpoint never holds a diverged model).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..files import atomic_write_text


class Diverged(RuntimeError):
    def __init__(self, step: int, key: str, value: float) -> None:
        super().__init__(f"training diverged at step {step}: {key} = {value}")
        self.step, self.key, self.value = step, key, value


class Tracker:
    """``writes=False`` (ranks other than 0 of a distributed run): nothing is written or
    shown, but ``flush`` still checks every value, so each rank finds its own divergence."""

    def __init__(self, run_dir: Path, start_step: int, total_steps: int, progress: bool = True,
                 tensorboard: bool = True, writes: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self._stats_file = open(self.run_dir / "stats.jsonl", "a", encoding="utf-8") if writes else None
        self._pending: list[tuple[int, float, dict[str, torch.Tensor]]] = []
        self._writer = None
        progress = progress and writes
        if tensorboard and writes:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=start_step)
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not progress, unit="step",
                        dynamic_ncols=True, desc=self.run_dir.name)
        self.health = ""  # the health status shown beside the losses (warning / failing; empty when healthy)

    def record(self, step: int, elapsed: float, stats: dict[str, torch.Tensor]) -> None:
        self._pending.append((step, elapsed, stats))
        self.bar.update(1)

    def flush(self) -> list[dict[str, float]]:
        """Write pending rows; raise Diverged on a non-finite value. Returns the rows written."""
        if not self._pending:
            return []
        # Every value of the interval in one stacked device-to-host transfer.
        cells = [(i, key, value) for i, (_, _, stats) in enumerate(self._pending) for key, value in stats.items()]
        device = next((v.device for _, _, v in cells if isinstance(v, torch.Tensor)), torch.device("cpu"))
        numbers = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=device).reshape(())
                               for _, _, v in cells]).tolist() if cells else []
        rows: list[dict[str, Any]] = [{"step": step, "elapsed_s": round(elapsed, 4)}
                                      for step, elapsed, _ in self._pending]
        for (i, key, _), number in zip(cells, numbers):
            rows[i][key] = number
        self._pending.clear()
        for row in rows:
            if self._stats_file is not None:
                self._stats_file.write(json.dumps(row) + "\n")
            if self._writer is not None:
                for k, v in row.items():
                    if k != "step" and math.isfinite(v):
                        self._writer.add_scalar(k, v, row["step"])
        if self._stats_file is not None:
            self._stats_file.flush()
        last = rows[-1]
        postfix = {k.split("/", 1)[1]: f"{last[k]:.3g}" for k in ("Loss/D", "Loss/G") if k in last}
        self.bar.set_postfix({**postfix, **({"health": self.health} if self.health else {})}, refresh=False)
        for row in rows:
            for k, v in row.items():
                if not math.isfinite(v):
                    raise Diverged(row["step"], k, v)
        return rows

    def rewind(self, step: int) -> None:
        """Forget pending rows and cut stats.jsonl back to ``step`` (a rollback)."""

        self._pending.clear()
        if self._stats_file is not None:
            self._stats_file.close()
            truncate_stats(self.run_dir / "stats.jsonl", step)
            self._stats_file = open(self.run_dir / "stats.jsonl", "a", encoding="utf-8")
        self.bar.n = step
        self.bar.refresh()

    def log_values(self, step: int, values: dict[str, float]) -> None:
        """Rows outside the per-step stream (e.g. evaluation results)."""
        # NaN (e.g. KL with no high-quality sample) is written as null: stats.jsonl stays strict JSON.
        if self._stats_file is None:
            return
        row = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}
        self._stats_file.write(json.dumps({"step": step, **row}) + "\n")
        self._stats_file.flush()
        if self._writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._writer.add_scalar(k, v, step)

    def say(self, text: str) -> None:
        """A line on stderr that leaves the progress bar whole (rank 0 only)."""
        if self._stats_file is not None:
            tqdm.write(text, file=sys.stderr)

    def image(self, tag: str, image_hwc: np.ndarray, step: int) -> None:
        if self._writer is not None:
            self._writer.add_image(tag, image_hwc, step, dataformats="HWC")

    def close(self) -> None:
        self.bar.close()
        if self._stats_file is not None:
            self._stats_file.close()
        if self._writer is not None:
            self._writer.close()


def truncate_stats(path: Path, last_step: int, rollbacks: int | None = None) -> int:
    """Keep the rows of stats.jsonl up to ``last_step`` (and drop a torn last line); with
    ``rollbacks``, also drop the Rollback rows of later rollbacks (a kill in the middle of one
    leaves its row at a step the checkpoint has). Returns how many rows were removed."""
    path = Path(path)
    if not path.exists():
        return 0
    kept, removed = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            step = int(row["step"])
        except (ValueError, KeyError, TypeError):
            removed += 1  # a line torn by a kill mid-write
            continue
        if step <= last_step and not (rollbacks is not None and row.get("Rollback/count", 0) > rollbacks):
            kept.append(line)
        else:
            removed += 1
    if removed:
        atomic_write_text(path, "".join(line + "\n" for line in kept))
    return removed


def read_stats(path: Path) -> list[dict[str, Any]]:
    """The rows of a stats.jsonl (a torn last line, left by a kill mid-write, is skipped)."""
    rows = []
    if Path(path).exists():
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "step" in row:
                rows.append(row)
    return rows

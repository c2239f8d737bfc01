"""Metrics to TensorBoard, CSV and the console (DESIGN §6). TensorBoard is always on."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

log = logging.getLogger("polytask")


class Logger:
    """Writes ``{prefix}/{name}`` scalars to TensorBoard and one CSV per prefix (``train.csv``,
    ``eval.csv``) in ``run_dir``.

    Args:
        run_dir: the run directory.
        start_step: the step training starts from (0, or the checkpoint's step on resume). CSV rows
            and TensorBoard events after it (written by an earlier, killed or restarted process) are
            dropped, so curves have no duplicates.
    """

    def __init__(self, run_dir: str | Path, start_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=start_step)
        for f in self.run_dir.glob("*.csv"):
            self._truncate_csv(f, start_step)

    @staticmethod
    def _truncate_csv(path: Path, max_step: int) -> None:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return
        keep = [r for r in rows if float(r["step"]) <= max_step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows(keep)

    def log(self, prefix: str, metrics: dict[str, float], step: int, console: bool = True) -> None:
        """Write ``metrics`` at ``step`` under ``prefix`` (``train`` or ``eval``)."""
        for k, v in metrics.items():
            self.tb.add_scalar(f"{prefix}/{k}", v, step)
        self.tb.flush()
        self._append_csv(self.run_dir / f"{prefix}.csv", {"step": step, **metrics})
        self._console(prefix, metrics, step, console)

    @staticmethod
    def _append_csv(path: Path, row: dict) -> None:
        """Append ``row``; if it brings new columns, rewrite the file with the union of columns."""
        rows: list[dict] = []
        if path.exists():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames == list(row):
                    with open(path, "a", newline="") as fa:
                        csv.DictWriter(fa, fieldnames=list(row)).writerow(row)
                    return
                rows = list(reader)
        fields = list(dict.fromkeys([*(rows[0] if rows else {}), *row]))
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows + [row])

    @staticmethod
    def _console(prefix: str, metrics: dict[str, float], step: int, console: bool) -> None:
        if not console:
            return
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}"
                         for k, v in metrics.items() if "/" not in k)
        log.info(f"[{prefix}] step={step} {shown}")

    def close(self) -> None:
        self.tb.close()

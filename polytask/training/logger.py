"""Metrics to TensorBoard, CSV and the console, and the means over a logging window.
TensorBoard is always on."""

from __future__ import annotations

import csv
import fnmatch
import logging
import math
from collections.abc import Iterable
from pathlib import Path

from polytask.errors import PolyTaskError
from polytask.utils import Metric, metric_floats

log = logging.getLogger("polytask")

CSV_FIELDS = ["step", "metric", "value"]


class Logger:
    """Writes ``{prefix}/{name}`` scalars to TensorBoard and one CSV per prefix (``train.csv``,
    ``eval.csv``) in ``run_dir``.

    CSV format: long ("tidy"), the header ``step,metric,value`` and one line per metric of each
    logged row, in the order they were logged, e.g. ``2000,episode_return,412.5``. A row names only
    the metrics it has (training rows gain ``episode_return`` when an episode ended in the window,
    agent losses once updates start), and every log only appends its lines: the file is never
    rewritten while a run goes on, so logging costs the same at any length. To read a file as one
    column per metric: :func:`read_metrics` (a list of rows), or with pandas
    ``pd.read_csv("train.csv").pivot(index="step", columns="metric", values="value")`` (NaN where a
    step lacks a metric).

    Args:
        run_dir: the run directory.
        start_step: the step training starts from (0, or the checkpoint's step on resume). CSV rows
            and TensorBoard events after it (written by an earlier, killed or restarted process) are
            dropped, so curves have no duplicates. A CSV in the earlier wide layout (one column per
            metric) is rewritten in the long one.
    """

    def __init__(self, run_dir: str | Path, start_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=start_step)
        for f in self.run_dir.glob("*.csv"):
            self._truncate_csv(f, start_step)

    @staticmethod
    def _truncate_csv(path: Path, max_step: int) -> None:
        """Drop the rows after ``max_step`` from a metrics CSV (one whose first column is ``step``;
        other CSVs are left alone). The only rewrite, once when a run (re)starts."""
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        if not header or header[0] != "step":
            return
        rows = read_metrics(path)
        keep = [r for r in rows if r["step"] <= max_step]
        if header == CSV_FIELDS and len(keep) == len(rows):
            return
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(CSV_FIELDS)
            w.writerows((r["step"], k, v) for r in keep for k, v in r.items() if k != "step")

    def log(self, prefix: str, metrics: dict[str, float], step: int, console: bool = True) -> None:
        """Write ``metrics`` at ``step`` under ``prefix`` (``train`` or ``eval``)."""
        for k, v in metrics.items():
            self.tb.add_scalar(f"{prefix}/{k}", v, step)
        self.tb.flush()
        self._append_csv(self.run_dir / f"{prefix}.csv", step, metrics)
        self._console(prefix, metrics, step, console)

    @staticmethod
    def _append_csv(path: Path, step: int, metrics: dict[str, float]) -> None:
        """Append one ``step,metric,value`` line per metric (the header first in a new file)."""
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            if f.tell() == 0:
                w.writerow(CSV_FIELDS)
            w.writerows((step, k, v) for k, v in metrics.items())

    @staticmethod
    def _console(prefix: str, metrics: dict[str, float], step: int, console: bool) -> None:
        if not console:
            return
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}"
                         for k, v in metrics.items() if "/" not in k)
        log.info(f"[{prefix}] step={step} {shown}")

    def close(self) -> None:
        self.tb.close()


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The rows of a metrics CSV written by :class:`Logger`, one dict per logged row: ``"step"``
    (int) and each metric the row has (float), in file order. Also reads the earlier wide layout
    (a ``step`` column and one column per metric, empty where a row lacks one).

    Raises:
        PolyTaskError: when the file has no ``step`` column (not a metrics CSV).
    """
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return []
        if header[:1] != ["step"]:
            raise PolyTaskError(f"{path} is not a metrics CSV: its header is {header}, expected "
                                f"{','.join(CSV_FIELDS)} (as Logger writes)")
        if header != CSV_FIELDS:  # the wide layout
            return [{"step": int(float(line[0])), **{k: float(v) for k, v in zip(header[1:], line[1:]) if v != ""}}
                    for line in reader]
        rows: list[dict[str, float]] = []
        for step, metric, value in reader:
            if not rows or rows[-1]["step"] != int(step) or metric in rows[-1]:
                rows.append({"step": int(step)})
            rows[-1][metric] = float(value)
    return rows


class MetricWindow:
    """Per-step training metrics gathered between two logs, summarised as one log row.

    A metric is averaged over the steps that reported it in the window: losses and Q values over
    the updates, episode metrics (reported at episode ends) over the episodes that ended. Running
    totals and counters (``cumulative``: the trainer's ``cumulative_metrics``, e.g. ``frames``,
    ``seconds_*``) keep their last value instead.

    Metrics may be 0-d tensors (agents' updates return them so): they are summed where they are (on
    the GPU, without a host sync) and moved to the host only by :meth:`pop` and :meth:`nonfinite`. A
    NaN or infinite value of any step makes its metric's sum non-finite, so :meth:`nonfinite` at a
    log or before a checkpoint sees every bad step of the window.

    Args:
        cumulative: :mod:`fnmatch` patterns of the metric names that are running totals or counters.
    """

    def __init__(self, cumulative: Iterable[str] = ()):
        self.cumulative = tuple(cumulative)
        self._is_cumulative: dict[str, bool] = {}  # by metric name, matched once
        self._sums: dict[str, Metric] = {}  # the last value for cumulative metrics
        self._counts: dict[str, int] = {}

    def add(self, metrics: dict[str, Metric]) -> None:
        """Add one step's metrics (numbers or 0-d tensors)."""
        for k, v in metrics.items():
            if k not in self._is_cumulative:
                self._is_cumulative[k] = any(fnmatch.fnmatchcase(k, p) for p in self.cumulative)
            if self._is_cumulative[k]:
                self._sums[k], self._counts[k] = v, 1
            else:
                self._sums[k] = v + self._sums[k] if k in self._sums else v
                self._counts[k] = self._counts.get(k, 0) + 1

    def pop(self) -> dict[str, float]:
        """The window's row (means, and last values of cumulative metrics, as floats), in the order
        the metrics first appeared; starts a new window."""
        row = {k: s / self._counts[k] for k, s in metric_floats(self._sums).items()}
        self._sums, self._counts = {}, {}
        return row

    def nonfinite(self) -> dict[str, float]:
        """The metrics of the window whose sum (or last value) is NaN or infinite: some step since
        the last :meth:`pop` reported a non-finite value. Empty if all are finite."""
        return {k: v for k, v in metric_floats(self._sums).items() if not math.isfinite(v)}

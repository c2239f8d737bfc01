"""Gather a sweep's results into one table (CSV + markdown) and plots of eval success and return
against frames (online runs) or updates (offline runs).

    python -m polytask.training.gather exp_local/bc16       # exp_local/bc16/summary.{csv,md}, curves.csv,
                                                            # success.png, return.png
    python -m polytask.training.gather                      # every run under exp_local/
    polytask-gather exp_local/bc16 --out results/

Every run directory below the given folder (one holding ``config.yaml`` and ``eval.csv``) counts.
Runs group by agent, suite, obs_type and settings (the run's ``weights_tag``: its command-line settings
other than seed, task and data, so the seeds of one setting group together and the settings of a sweep
stay apart); per task the final success and return, and their means over each run's evaluations (the
steadier figure for noisy RL curves), are averaged over the runs of a group. Frames are environment
steps: the ``frames`` each evaluation logged (a skill-space step runs several env steps), or for
older logs agent steps × ``suite.env.action_repeat``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from polytask.training.logger import read_metrics

RUN_ROOT = "exp_local"  # where cfgs/config.yaml puts runs (hydra.run.dir / hydra.sweep.dir)


def find_runs(root: Path) -> list[Path]:
    """Run directories below ``root`` (holding ``config.yaml`` and ``eval.csv``), sorted."""
    return sorted(p.parent for p in root.rglob("eval.csv") if (p.parent / "config.yaml").exists())


def read_run(run: Path) -> dict | None:
    """Config essentials, final per-task metrics and the eval curves of one run; None for a run whose
    evaluations score no task (``<task>/success`` and ``<task>/return``: e.g. a skill model's held-out
    reconstruction).

    ``curves[task]`` maps ``"step"``, ``"frames"``, ``"success"`` and ``"return"`` to lists, one entry
    per eval in ``eval.csv``. ``step`` counts agent steps for online runs and updates for offline ones;
    ``frames`` (env steps) is what the evaluation logged, else steps × the suite's action repeat, for
    online runs and empty ("") for offline ones. ``settings`` is the run's ``weights_tag`` ("" for the
    default settings).
    """
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    tasks = [str(t) for t in cfg["suite"]["task"]]
    rows = [r for r in read_metrics(run / "eval.csv") if all(f"{t}/success" in r and f"{t}/return" in r for t in tasks)]
    if not rows:
        return None
    final = json.loads((run / "results.json").read_text()) if (run / "results.json").exists() else {}
    if not all(f"{t}/success" in final and f"{t}/return" in final for t in tasks):
        final = rows[-1]
    steps = [int(r["step"]) for r in rows]
    online = cfg["agent"]["trainer"].endswith("OnlineTrainer")
    repeat = int(cfg["suite"].get("env", {}).get("action_repeat", 1))
    frames = [int(r.get("frames", s * repeat)) if online else "" for r, s in zip(rows, steps)]
    curves = {t: {"step": steps, "frames": frames,
                  "success": [r[f"{t}/success"] for r in rows],
                  "return": [r[f"{t}/return"] for r in rows]} for t in tasks}
    return {"run": run, "agent": cfg["agent"]["name"], "suite": cfg["suite"]["name"], "obs_type": cfg["obs_type"],
            "settings": str(cfg.get("weights_tag") or ""), "seed": cfg["seed"], "tasks": tasks, "final": final,
            "curves": curves, "online": online, "step": int(final.get("step", steps[-1]))}


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (agent, suite, obs_type, settings, task): mean/std over the runs (seeds) of the final
    success and return, and the mean over the runs of each run's mean over its evaluations
    (``success_over_evals``, ``return_over_evals``)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        for t in r["tasks"]:
            c = r["curves"][t]
            groups[(r["agent"], r["suite"], r["obs_type"], r["settings"], t)].append(
                {"success": r["final"][f"{t}/success"], "return": r["final"][f"{t}/return"], "step": r["step"],
                 "success_over_evals": float(np.mean(c["success"])),  # read_run keeps runs with evaluations
                 "return_over_evals": float(np.mean(c["return"]))})
    rows = []
    for (agent, suite, obs_type, settings, task), vals in sorted(groups.items()):
        s = np.array([v["success"] for v in vals])
        ret = np.array([v["return"] for v in vals])
        rows.append({"agent": agent, "suite": suite, "obs_type": obs_type, "settings": settings, "task": task,
                     "runs": len(vals), "step": max(v["step"] for v in vals), "success_mean": float(s.mean()),
                     "success_std": float(s.std()), "return_mean": float(ret.mean()), "return_std": float(ret.std()),
                     "success_over_evals": float(np.mean([v["success_over_evals"] for v in vals])),
                     "return_over_evals": float(np.mean([v["return_over_evals"] for v in vals]))})
    return rows


def write_outputs(rows: list[dict], runs: list[dict], out: Path) -> list[Path]:
    """``summary.csv``, ``summary.md``, ``curves.csv`` (every eval of every run) and the plots
    ``success.png`` and ``return.png`` (against frames) in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["| agent | suite | obs | settings | task | runs | step | success | return | success, return over evals |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['agent']} | {r['suite']} | {r['obs_type']} | {r['settings']} | {r['task']} | {r['runs']} | "
              f"{r['step']} | {r['success_mean']:.2f} ± {r['success_std']:.2f} | "
              f"{r['return_mean']:.1f} ± {r['return_std']:.1f} | "
              f"{r['success_over_evals']:.2f}, {r['return_over_evals']:.2f} |" for r in rows]
    mean, mean_return = np.mean([r["success_mean"] for r in rows]), np.mean([r["return_mean"] for r in rows])
    lines.append(f"| **mean** | | | | {len(rows)} tasks | | | **{mean:.2f}** | **{mean_return:.1f}** | |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")

    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "agent", "settings", "seed", "task", "step", "frames", "success", "return"])
        for r in runs:
            for task, c in r["curves"].items():
                w.writerows([str(r["run"]), r["agent"], r["settings"], r["seed"], task, *row]
                            for row in zip(c["step"], c["frames"], c["success"], c["return"]))
    for metric in ("success", "return"):
        plot_curves(runs, metric, out / f"{metric}.png")
    return [out / "summary.csv", out / "summary.md", out / "curves.csv", out / "success.png", out / "return.png"]


def plot_curves(runs: list[dict], metric: str, path: Path) -> None:
    """One panel per task: ``metric`` (``"success"`` or ``"return"``) of every run against frames
    (online runs) or updates (offline runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    tasks = sorted({t for r in runs for t in r["tasks"]})
    online = [r["online"] for r in runs]
    xlabel = "frames" if all(online) else "updates" if not any(online) else "frames (online) / updates (offline)"
    cols = min(4, len(tasks))
    nrows = int(np.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.4 * nrows), squeeze=False,
                             sharey=metric == "success")
    for ax, task in zip(axes.flat, tasks):
        for i, r in enumerate(runs):
            if task in r["curves"]:
                c = r["curves"][task]
                ax.plot(c["frames"] if r["online"] else c["step"], c[metric], marker="o", ms=3, color=f"C{i % 10}",
                        label=f"{r['agent']} {r['settings'][:40]} s{r['seed']}".replace("  ", " "))
        ax.set_title(task, fontsize=9)
        if metric == "success":
            ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if abs(x) >= 1000 else f"{x:g}"))
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(metric)
    legend = {}  # every run once, whichever panel it is in
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    labels, handles = list(legend), list(legend.values())
    rows_below = int(np.ceil(len(labels) / 2))  # the legend below the panels, two runs a line
    fig.set_figheight(fig.get_figheight() + 0.2 * rows_below)
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.2 * rows_below / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="polytask-gather", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, nargs="?", default=Path(RUN_ROOT),
                        help=f"folder holding the runs (default: {RUN_ROOT}, where train.py writes them; "
                             f"{RUN_ROOT}/<experiment> for one sweep)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the sweep folder)")
    args = parser.parse_args(argv)
    found = find_runs(args.sweep_dir)
    runs = [r for r in map(read_run, found) if r is not None]
    if not runs:
        print(f"error: no runs (folders with config.yaml and an eval.csv that scores their tasks) under "
              f"{args.sweep_dir}", file=sys.stderr)
        return 1
    if len(runs) < len(found):
        print(f"left out {len(found) - len(runs)} run(s) whose evaluations score no task (e.g. skill models)",
              file=sys.stderr)
    rows = summarize(runs)
    paths = write_outputs(rows, runs, args.out or args.sweep_dir)
    print((paths[1]).read_text())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Logger CSVs (long format, append-only, resume truncation) and the window means of train rows."""

import csv

import pytest
from omegaconf import OmegaConf

from polytask.errors import PolyTaskError
from polytask.training import logger as logger_module
from polytask.training.logger import CSV_FIELDS, Logger, MetricWindow, read_metrics
from polytask.training.trainer import Trainer


def _rows(n):
    """``n`` train rows whose columns come and go: ``loss`` always, ``episode_return`` every third
    row, and a metric never seen before every fifth row."""
    rows = []
    for i in range(1, n + 1):
        row = {"loss": 1.0 / i}
        if i % 3 == 0:
            row["episode_return"] = 10.0 * i
        if i % 5 == 0:
            row[f"new_{i}"] = float(i)
        rows.append(row)
    return rows


def test_rows_with_new_columns_only_append(tmp_path, monkeypatch):
    modes = []
    real_open = open

    def recording_open(path, mode="r", *args, **kwargs):
        modes.append(mode)
        return real_open(path, mode, *args, **kwargs)

    logger = Logger(tmp_path)
    monkeypatch.setattr(logger_module, "open", recording_open, raising=False)
    path, before = tmp_path / "train.csv", b""
    rows = _rows(200)
    for step, row in enumerate(rows, start=1):
        logger.log("train", row, step, console=False)
        data = path.read_bytes()
        assert data.startswith(before)  # earlier bytes never change
        before = data
    logger.close()
    assert modes == ["a"] * len(rows)  # one append per row, never a read or a rewrite
    assert read_metrics(path) == [{"step": s, **r} for s, r in enumerate(rows, start=1)]
    with open(path, newline="") as f:  # one header, then step,metric,value lines
        lines = list(csv.reader(f))
    assert lines[0] == CSV_FIELDS
    assert lines[1:5] == [["1", "loss", "1.0"], ["2", "loss", "0.5"], ["3", "loss", str(1 / 3)],
                          ["3", "episode_return", "30.0"]]


def test_resume_drops_rows_after_the_checkpoint_step(tmp_path):
    logger = Logger(tmp_path)
    for step, row in enumerate(_rows(10), start=1):
        logger.log("train", row, step, console=False)
        if step % 4 == 0:
            logger.log("eval", {"success": step / 10, "return": float(step)}, step, console=False)
    logger.close()
    (tmp_path / "summary.csv").write_text("agent,step\nbc,10\n")  # not a metrics CSV: left alone
    Logger(tmp_path, start_step=6).close()
    assert [r["step"] for r in read_metrics(tmp_path / "train.csv")] == [1, 2, 3, 4, 5, 6]
    assert read_metrics(tmp_path / "eval.csv") == [{"step": 4, "success": 0.4, "return": 4.0}]
    assert (tmp_path / "summary.csv").read_text() == "agent,step\nbc,10\n"
    logger = Logger(tmp_path, start_step=6)
    logger.log("train", {"loss": 7.0}, 7, console=False)
    logger.close()
    assert read_metrics(tmp_path / "train.csv")[-2:] == [{"step": 6, "loss": 1 / 6, "episode_return": 60.0},
                                                         {"step": 7, "loss": 7.0}]


def test_wide_csv_of_an_earlier_run_is_read_and_converted_on_resume(tmp_path):
    (tmp_path / "train.csv").write_text("step,loss,episode_return\n100,0.5,\n200,0.25,12.5\n300,0.125,\n")
    expected = [{"step": 100, "loss": 0.5}, {"step": 200, "loss": 0.25, "episode_return": 12.5}]
    assert read_metrics(tmp_path / "train.csv")[:2] == expected
    Logger(tmp_path, start_step=200).close()
    assert (tmp_path / "train.csv").read_text().splitlines()[0] == ",".join(CSV_FIELDS)
    assert read_metrics(tmp_path / "train.csv") == expected


def test_read_metrics_rejects_other_csvs(tmp_path):
    (tmp_path / "summary.csv").write_text("agent,step\nbc,10\n")
    with pytest.raises(PolyTaskError, match="not a metrics CSV"):
        read_metrics(tmp_path / "summary.csv")


def test_window_means_and_cumulative_last_values():
    window = MetricWindow(cumulative=("frames", "seconds_*"))
    window.add({"frames": 2.0, "seconds_env": 0.5})
    window.add({"frames": 4.0, "seconds_env": 0.75, "critic_loss": 3.0})
    window.add({"frames": 6.0, "seconds_env": 1.0, "critic_loss": 1.0, "episode_return": 100.0})
    window.add({"frames": 8.0, "seconds_env": 1.5, "critic_loss": 2.0})
    window.add({"frames": 10.0, "seconds_env": 2.0, "critic_loss": 6.0, "episode_return": 300.0})
    row = window.pop()
    assert row == {"frames": 10.0, "seconds_env": 2.0, "critic_loss": 3.0, "episode_return": 200.0}
    assert list(row) == ["frames", "seconds_env", "critic_loss", "episode_return"]  # first-seen order
    window.add({"critic_loss": 5.0})
    assert window.pop() == {"critic_loss": 5.0}  # a new window
    assert window.pop() == {}


class _CountingTrainer(Trainer):
    """Step t (1-based) reports loss t, the cumulative counter ``frames`` = 2t, and an episode
    (return 10t) every fourth step."""

    cumulative_metrics = ("frames",)

    def train_step(self):
        t = self.step + 1
        return {"loss": float(t), "frames": 2.0 * t, **({"episode_return": 10.0 * t} if t % 4 == 0 else {})}


class _Stub:
    num_episodes = 1

    def train(self, mode):
        pass

    def state_dict(self):
        return {}

    def run(self, policy, video_dir, step):
        return {"success": 0.0, "return": 0.0}


def test_train_rows_log_the_window_means(tmp_path):
    cfg = OmegaConf.create({"num_train_steps": 20, "log_every_steps": 10, "eval_every_steps": 20,
                            "save_every_steps": 20, "resume": "never", "eval": {"video": "off"},
                            "agent": {"name": "stub"}})
    trainer = _CountingTrainer(cfg, tmp_path, _Stub(), _Stub())
    logger = Logger(tmp_path)
    trainer._loop(logger, 20)
    logger.close()
    rows = read_metrics(tmp_path / "train.csv")
    assert [r["step"] for r in rows] == [10, 20]
    assert rows[0]["loss"] == pytest.approx(5.5) and rows[1]["loss"] == pytest.approx(15.5)  # means of 1..10, 11..20
    assert rows[0]["frames"] == 20.0 and rows[1]["frames"] == 40.0  # last values
    assert rows[0]["episode_return"] == pytest.approx(60.0)  # episodes ending at steps 4 and 8
    assert rows[1]["episode_return"] == pytest.approx(160.0)  # steps 12, 16, 20
    assert rows[0]["steps_per_s"] > 0


def test_window_takes_tensor_metrics_and_finds_a_nan_of_any_step():
    """Updates' 0-d tensor metrics are averaged like numbers; one NaN among them shows in
    :meth:`MetricWindow.nonfinite` until the window is popped."""
    import torch

    window = MetricWindow(cumulative=("frames",))
    for t, loss in enumerate([1.0, 2.0, 4.5]):
        window.add({"loss": torch.tensor(loss), "frames": float(t), "lr": 0.5})
    assert window.nonfinite() == {}
    row = window.pop()
    assert row == {"loss": pytest.approx(2.5), "frames": 2.0, "lr": 0.5} and type(row["loss"]) is float
    for loss in (1.0, float("nan"), 3.0):
        window.add({"loss": torch.tensor(loss)})
    assert list(window.nonfinite()) == ["loss"]
    window.pop()
    window.add({"loss": torch.tensor(1.0)})
    assert window.nonfinite() == {}

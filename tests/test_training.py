"""End-to-end runs of train.py, resume after a kill, determinism, checkpoints and errors."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from polytask.training.build import build_trainer
from polytask.training.checkpoint import load_checkpoint
from polytask.training.logger import read_metrics
from polytask.training.trainer import NonFiniteLossError
from polytask.utils import atomic_torch_save
from tests.conftest import DEVICE, ROOT, compose_cfg, online_run_args, run_script


def _overrides(data_dir, run_dir, steps=300, seed=1):
    return [f"data_dir={data_dir}", f"hydra.run.dir={run_dir}", "suite/metaworld_task=drawer-close",
            "num_demos_per_task=3", f"num_train_steps={steps}", "log_every_steps=25", "save_every_steps=50",
            f"eval_every_steps={steps}", "eval.num_episodes=4", "eval.num_envs=4", "eval.video=final",
            "agent.hidden_dim=256", "agent.lr=1e-3", f"seed={seed}", DEVICE]


def _csv(path, column):
    return [(r["step"], r[column]) for r in read_metrics(path)]


def test_train_end_to_end(data_dir, tmp_path):
    run = tmp_path / "run"
    p = run_script("train.py", *_overrides(data_dir, run))
    assert p.returncode == 0, p.stdout + p.stderr
    results = json.loads((run / "results.json").read_text())
    assert results["step"] == 300
    assert results["drawer-close/success"] >= 0.5, results  # BC learns drawer-close from 3 demos
    assert (run / "checkpoints" / "latest.pt").exists() and (run / "checkpoints" / "best.pt").exists()
    assert list((run / "videos").glob("*.mp4")) and list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "config.yaml").exists()
    assert "drawer-close" in p.stderr + p.stdout and "success" in p.stderr + p.stdout
    # re-running the finished command resumes, sees it is done, and reports
    again = run_script("train.py", *_overrides(data_dir, run))
    assert again.returncode == 0 and "already finished" in again.stderr + again.stdout


def test_resume_after_kill_matches_uninterrupted_run(data_dir, tmp_path):
    ref, killed, other = tmp_path / "ref", tmp_path / "killed", tmp_path / "other"
    assert run_script("train.py", *_overrides(data_dir, ref)).returncode == 0

    cmd = [sys.executable, "train.py", *_overrides(data_dir, killed)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpt = killed / "checkpoints" / "latest.pt"
    deadline = time.time() + 300
    while time.time() < deadline:
        if ckpt.exists() and 100 <= load_checkpoint(ckpt)["step"] < 300:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(ckpt)["step"]
    assert 0 < killed_at < 300

    p = run_script("train.py", *_overrides(data_dir, killed))
    assert p.returncode == 0, p.stderr
    assert f"at step {killed_at}" in p.stderr + p.stdout
    assert json.loads((killed / "results.json").read_text())["step"] == 300
    # same seed: identical losses and eval metrics, with or without the kill
    assert _csv(ref / "train.csv", "loss") == _csv(killed / "train.csv", "loss")
    assert _csv(ref / "eval.csv", "return") == _csv(killed / "eval.csv", "return")
    # another seed gives other losses (so the comparison above can fail)
    assert run_script("train.py", *_overrides(data_dir, other, steps=50, seed=2)).returncode == 0
    assert _csv(other / "train.csv", "loss")[:2] != _csv(ref / "train.csv", "loss")[:2]


def _deterministic_rows(path):
    """A CSV's rows without the wall-clock columns."""
    return [{k: v for k, v in r.items() if "seconds" not in k and k != "steps_per_s"} for r in read_metrics(path)]


def test_online_resume_after_kill_matches_uninterrupted_run_across_a_replay_wrap(tmp_path):
    """SAC on features, 600 steps with checkpoints every 250 (at episode ends) and a replay buffer of
    400 slots, which wraps. One run is killed at step 550, after writing a replay chunk that its
    latest.pt (step 500) does not list; resumed, it ends exactly as the uninterrupted run."""
    def cfg(name):
        args = online_run_args(tmp_path / name, tmp_path / name, "sac", "reach")
        return compose_cfg(*[a for a in args if not a.startswith("hydra.")], "num_train_steps=600",
                           "save_every_steps=250", "eval_every_steps=600", "eval.num_episodes=1", "replay_capacity=400",
                           "update_every_steps=2")

    ref = build_trainer(cfg("ref"), run_dir=tmp_path / "ref")
    ref.run()
    killed = build_trainer(cfg("killed"), run_dir=tmp_path / "killed")
    step = killed.train_step

    def train_step():
        if killed.step == 550:
            killed.state()  # a save that writes its replay chunk and is killed before latest.pt is renamed
            raise KeyboardInterrupt
        return step()

    killed.train_step = train_step
    with pytest.raises(KeyboardInterrupt):
        killed.run()
    ckpt = tmp_path / "killed" / "checkpoints"
    assert load_checkpoint(ckpt / "latest.pt")["step"] == 500 and len(list((ckpt / "replay").glob("*.npz"))) == 3
    resumed = build_trainer(cfg("killed"), run_dir=tmp_path / "killed")
    resumed.run()
    assert resumed.replay.count == ref.replay.count == 603 > resumed.replay.capacity  # 600 steps + 3 resets: wrapped
    for name in ("train.csv", "eval.csv"):
        assert _deterministic_rows(tmp_path / "ref" / name) == _deterministic_rows(tmp_path / "killed" / name)
    a, b = load_checkpoint(tmp_path / "ref" / "checkpoints" / "latest.pt"), load_checkpoint(ckpt / "latest.pt")
    for k, v in a["agent"]["actor"].items():
        assert torch.equal(v, b["agent"]["actor"][k]), k
    for k, v in ref.replay.slot_arrays(203, 603).items():
        np.testing.assert_array_equal(resumed.replay.slot_arrays(203, 603)[k], v, err_msg=k)
    assert a["replay"] == b["replay"] | {"chunks": a["replay"]["chunks"]}  # same counters and sampling RNG state
    # the killed run's stray chunk is gone (deleted at the first save after resuming); best.pt holds the agent only
    assert {p.name for p in (ckpt / "replay").glob("*.npz")} == {f"{s}-{e}.npz" for s, e in b["replay"]["chunks"]}
    assert set(load_checkpoint(ckpt / "best.pt")) == {"agent", "agent_name", "step", "config", "eval"}


def test_unknown_task_exits_with_valid_list(tmp_path):
    p = run_script("train.py", f"data_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'r'}", "suite.task=[hamer]")
    out = p.stdout + p.stderr
    assert p.returncode == 1
    assert "Unknown metaworld task 'hamer'" in out and "Did you mean hammer" in out and "drawer-close" in out
    assert "Traceback" not in out


def test_recipe_sets_its_agent_and_rejects_another(tmp_path):
    cfg = compose_cfg("recipe=drqv2_state", "suite=dmc", "obs_type=features")
    assert cfg.agent.name == "drqv2" and cfg.agent.critic_layer_norm and cfg.update_every_steps == 1
    assert cfg.agent.twin_q == "mean" and compose_cfg("agent=drqv2").agent.twin_q == "min"
    assert cfg.agent.stddev_schedule == "linear(1.0,0.1,50000)"
    # a constant schedule: the typed option holds it as the string "0.1" (a number or linear(...))
    assert float(compose_cfg("recipe=drqv2_state", "suite=dmc", "load_bc=true").agent.stddev_schedule) == 0.1
    p = run_script("train.py", f"data_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'r'}", "agent=bc",
                   "recipe=drqv2_state", "suite=dmc")
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "Traceback" not in out
    assert "ConfigError: In 'recipe/drqv2_state': agent.critic_layer_norm: no such option (BCConfig" in out


def test_skild_maze_recipe_sets_suite_task_and_the_tuned_options():
    """recipe=skild_maze: SkiLD on SkiLD's 40x40 maze (reward x100, success ends the episode) with the
    settings of docs/skills.md; the options are checked like any others (SkiLDConfig)."""
    from polytask.training.inputs import check_agent_options

    cfg = compose_cfg("recipe=skild_maze")
    assert cfg.agent.name == "skild" and cfg.suite.name == "maze" and list(cfg.suite.task) == ["spirl40"]
    assert cfg.suite.env.reward_scale == 100.0 and cfg.suite.env.terminate_on_success
    options = check_agent_options(cfg.agent)
    assert options.init_from == "posterior" and options.target_divergence_q is None
    assert options.actor_update_after == 2000 and options.init_temperature_q == 1.0
    assert "agent.beta=1e-3" in cfg.stage_overrides.skill_prior


@pytest.mark.parametrize("recipe, agent", [("skild_kitchen", "skild"), ("spirl_kitchen", "spirl")])
def test_kitchen_skill_recipes_target_the_sequence_the_play_data_leaves_out(recipe, agent):
    """recipe=skild_kitchen / spirl_kitchen: the target is the sequence kitchen play excludes, with the
    kitchen settings of SPiRL/SkiLD (critic 5 x 256; SkiLD's temperatures fixed and its discriminator's logit
    clamped, SPiRL's temperature toward 5 nats) and ours (the 2-round DAgger model, mean-skill evaluation,
    SkiLD's scaled squash, the env stepping during the updates)."""
    from polytask.training.inputs import check_agent_options

    cfg = compose_cfg(f"recipe={recipe}")
    assert cfg.agent.name == agent and cfg.suite.name == "kitchen" and cfg.obs_type == "features"
    assert list(cfg.suite.task) == ["kettle-burner-light-slide"] and cfg.suite.task[0] in cfg.suite.play.exclude
    options = check_agent_options(cfg.agent)
    assert options.hidden_depth == 5 and options.prior_kl_clip == 100.0
    # both: the DAgger skill model and evaluation with the mean skill
    assert list(cfg.stage_overrides.skill_prior) == ["num_train_steps=120000", "dagger.rounds=2"]
    assert options.eval_mean_skill
    assert cfg.overlap_updates  # the env steps while the agent updates
    if agent == "skild":  # a squash that starts the policy as the posterior itself
        assert options.squash == "scaled" and options.bound == 5.0
        assert options.target_divergence is None and options.target_divergence_q is None
        assert options.init_temperature == 0.1 and options.init_temperature_q == 1.0
        assert options.demo_logit_clip == 5.0 and cfg.num_demos_per_task == 20
    else:  # SPiRL's own squash
        assert options.target_divergence == 5.0 and options.squash == "tanh" and options.bound == 2.0


def test_missing_dataset_exits_with_command(tmp_path):
    p = run_script("train.py", f"data_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'r'}",
                   "collect_missing_demos=false", "suite/metaworld_task=hammer")
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "collect_demos.py" in out and "hammer-features-v0" in out


@pytest.mark.parametrize("nan, says", [(math.nan, "at step 61"),  # a number: seen at once
                                       (torch.tensor(math.nan), "in steps 51..75")])  # a tensor: at the next log
def test_non_finite_loss_stops_and_keeps_last_checkpoint(data_dir, tmp_path, nan, says):
    cfg = compose_cfg(*[o for o in _overrides(data_dir, tmp_path) if not o.startswith("hydra.")])
    trainer = build_trainer(cfg, run_dir=tmp_path)
    update = trainer.agent.update
    trainer.agent.update = lambda b, step: update(b, step) if step < 60 else {"loss": nan}
    with pytest.raises(NonFiniteLossError, match=says):
        trainer.run()
    assert load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["step"] == 50


@pytest.mark.parametrize("overrides, tag, weights", [
    (["agent=bc"], "button-press-d10", "button-press-features-d10-seed1"),
    (["agent=drqv2", "suite=dmc", "irl=false", "recipe=drqv2_state"], "cheetah_run_m1",
     "cheetah_run_m1-features-seed1-irl-false+recipe-drqv2_state"),
    (["agent=bc", "agent.lr=0.001", "eval.num_episodes=5", "seed=3"], "button-press-d10",
     "button-press-features-d10-seed3-agent.lr-0.001"),  # a sweep's runs: settings named, eval settings not
    (["agent=drqv2", "num_demos_per_task=1"], "button-press-d1", "button-press-features-d1-seed1"),  # ROT
    (["agent=drqv2", "irl=false", "num_demos_per_task=1", "load_bc=true"], "button-press-d1",
     "button-press-features-d1-seed1-irl-false+load_bc-true"),
    (["agent=sac", "irl=false"], "button-press", "button-press-features-seed1-irl-false"),
    (["agent=residual", "base_policy=data/weights/bc/metaworld/hammer-features-d10-seed1.pt"],
     "button-press-on-bc-hammer-features-d10-seed1", "button-press-features-seed1-on-bc-hammer-features-d10-seed1"),
])
def test_run_dir_and_weights_name_demo_count_only_when_demos_are_used(overrides, tag, weights):
    """``-d<num_demos>`` is in the run directory and the weights file name of runs that learn from
    demos (offline agents, ROT, load_bc), not of RL from the env reward or of a residual on a base;
    the weights file names the run's other settings, as its run directory does."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    import polytask.config  # noqa: F401  (registers the resolvers the run directory uses)
    from polytask.training.weights import weights_path

    with initialize_config_dir(config_dir=str(ROOT / "cfgs"), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # what Hydra does before a run: resolves ${hydra:...}
    try:
        assert cfg.hydra.run.dir.split("/")[3] == tag
        assert weights_path(cfg).name == f"{weights}.pt"
    finally:
        HydraConfig.instance().cfg = None


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "ck.pt"
    atomic_torch_save({"a": 1}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_torch_save({"a": Boom()}, path)
    assert torch.load(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]

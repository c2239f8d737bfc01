"""EXTRACT's fine-tuning on target demos: demos labelled with the play data's skills, the fine-tuned
model starting as the play-trained one and lowering its loss on the demos, and the stages that
agent=extract finetune_on=demos finds and makes first."""

import numpy as np
import pytest
import torch

from polytask.agents.extract import ExtractSkillAgent
from polytask.data.demos import Episode
from polytask.errors import ConfigError
from polytask.skills.extract import label_like, segment_labels
from polytask.skills.segments import SegmentBuffer
from polytask.training.skill_inputs import missing_stages, stage_file, stage_overrides, stage_path, stage_run_dir
from tests.conftest import DEVICE, compose_cfg, exported_weights, run_script
from tests.test_extract import planted

K = 4
SIZES = {"num_skills": K, "z_dim": 5, "hidden_dim": 32, "hidden_depth": 2}


def _labelled(episodes, truth):
    """The episodes with their planted labels as skill discovery writes them (runs of 5-30 steps)."""
    out = []
    for ep, labels in zip(episodes, truth):
        skill, progress = segment_labels(labels, 5, 30)
        out.append(Episode(**{**ep.__dict__, "infos": {**ep.infos, "skill": skill, "progress": progress}}))
    return out


@pytest.fixture(scope="module")
def play_and_demos():
    """6 play episodes labelled with their planted skills and 2 unlabelled "demos" of the same skills."""
    episodes, truth = planted(episodes=8, k=K)
    return _labelled(episodes[:6], truth[:6]), episodes[6:], truth[6:]


def test_demos_get_the_play_datas_skills(play_and_demos):
    play, demos, truth = play_and_demos
    labelled = label_like(play, demos, median_window=7, min_len=5, max_len=30, standardize=True, seed=0,
                          embedding={"name": "state_delta"})
    for ep, labels in zip(labelled, truth):
        expected, progress = segment_labels(labels, 5, 30)
        np.testing.assert_array_equal(ep.infos["skill"], expected)
        np.testing.assert_allclose(ep.infos["progress"], progress)
        assert "subtask" in ep.infos  # the demos' own infos are kept
    unlabelled = [Episode(**{**ep.__dict__, "infos": {}}) for ep in play]
    with pytest.raises(ConfigError, match="skill-labelled play data"):
        label_like(unlabelled, demos)


def test_finetuning_starts_from_the_play_model_and_lowers_the_demo_loss(play_and_demos):
    play, demos, _ = play_and_demos
    torch.manual_seed(0)
    pretrained = ExtractSkillAgent({"state": (4,)}, 2, "features", **SIZES)
    segments = SegmentBuffer(play, seed=0)
    pretrained.fit_dataset(segments.states())
    for _ in range(5):
        pretrained.update(segments.sample(32))
    spec = {"model": pretrained.model.state_dict()}
    torch.manual_seed(1)
    tuned = ExtractSkillAgent({"state": (4,)}, 2, "features", finetune_on="demos", extract_model=spec, **SIZES)
    assert ExtractSkillAgent.inputs({"finetune_on": "demos"}) == ("extract_model",)
    assert ExtractSkillAgent.inputs({}) == ()
    for k, v in pretrained.model.state_dict().items():  # weights and the play data's normaliser
        assert torch.equal(tuned.model.state_dict()[k], v), k
    labelled = label_like(play, demos, embedding={"name": "state_delta"})
    demo_segments = SegmentBuffer(labelled, seed=0)
    batch = demo_segments.get(np.arange(len(demo_segments)))
    torch.manual_seed(2)
    before = tuned.score(batch)["loss"]
    for _ in range(60):
        tuned.update(demo_segments.sample(32))
    torch.manual_seed(2)
    assert tuned.score(batch)["loss"] < 0.9 * before
    with pytest.raises(ValueError, match="does not fit this agent's sizes"):
        ExtractSkillAgent({"state": (4,)}, 2, "features", extract_model=spec, **{**SIZES, "hidden_dim": 16})


def test_finetuned_stages_are_found_and_made_in_order(tmp_path):
    rl = compose_cfg("agent=extract", "suite=maze", f"data_dir={tmp_path}", "finetune_on=demos", "num_demos_per_task=2",
                     "collect_missing_demos=false")
    assert missing_stages(rl, ("extract_model",)) == ["extract_skill"]
    weights = tmp_path / "weights" / "extract_skill" / "maze"
    assert stage_path(rl, "extract_skill") == weights / "umaze-features-d2-seed1.pt"
    assert "finetune_on=demos" in stage_overrides(rl, "extract_skill")
    passed = compose_cfg("agent=extract", "suite=maze", "finetune_on=demos", 'stage_overrides.extract_skill=["a=1"]')
    assert stage_overrides(passed, "extract_skill")[-2:] == ['stage_overrides.extract_skill=["a=1"]', "a=1"]
    assert stage_run_dir(rl, "extract_skill").name.startswith("extract_skill-demos")
    with pytest.raises(ConfigError, match=r"agent=extract_skill .* finetune_on=demos 'suite\.task=\[umaze\]' "
                                          r"num_demos_per_task=2"):
        stage_file(rl, "extract_skill")
    # the fine-tuning run itself starts from the play-trained model, made first in its turn
    tune = compose_cfg("agent=extract_skill", "suite=maze", f"data_dir={tmp_path}", "finetune_on=demos")
    assert tune.agent.finetune_on == "demos"
    assert missing_stages(tune, ExtractSkillAgent.inputs({"finetune_on": "demos"})) == ["extract_skill"]
    assert stage_path(tune, "extract_skill").name == "play-features-seed1.pt"
    assert "finetune_on=null" in stage_overrides(tune, "extract_skill")
    plain = compose_cfg("agent=extract", "suite=maze", f"data_dir={tmp_path}")
    assert stage_path(plain, "extract_skill").name == "play-features-seed1.pt"


@pytest.mark.slow
def test_extract_on_the_finetuned_model_makes_both_stages_first(tmp_path):
    """``train.py agent=extract finetune_on=demos suite=maze`` with nothing on disk: play data, skill
    discovery and the play-trained model, then the demos and the fine-tuned model, then SAC over skills."""
    pytest.importorskip("gymnasium_robotics")
    data_dir, run = tmp_path / "data", tmp_path / "run"
    # the same tiny settings for the fine-tuned stage and the play-trained one it starts from
    small = ('stage_overrides.extract_skill=["agent.hidden_dim=32","eval.num_episodes=1","eval.video=off",'
             '"heldout_windows=16","num_train_steps=10","eval_every_steps=10","play.num_episodes=4",'
             '"extract.max_len=300"]')
    p = run_script("train.py", "agent=extract", "finetune_on=demos", "suite=maze", f"hydra.run.dir={run}",
                   f"data_dir={data_dir}", "num_demos_per_task=2", small,
                   "num_train_steps=20", "update_after_steps=10", "batch_size=16", "agent.hidden_dim=32",
                   "eval_every_steps=20", "eval.num_episodes=1", "eval.video=off", DEVICE)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stderr + p.stdout
    tuned = data_dir / "weights" / "extract_skill" / "maze" / "umaze-features-d2-seed1.pt"
    assert f"extract_skill weights missing at {tuned}" in out
    assert "extract_skill weights missing at " + str(tuned.with_name("play-features-seed1.pt")) in out
    assert (run / "stages" / "extract_skill-demos" / "heldout.csv").exists()
    assert (run / "stages" / "extract_skill" / "heldout.csv").exists()
    assert "Skill segments of the demos" in out and f"extract_skill (frozen) from {tuned}" in out
    assert exported_weights(p).parent == data_dir / "weights" / "extract" / "maze"

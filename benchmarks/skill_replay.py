"""Closed-loop replay of recorded episodes through a skill model (agent=skill_prior or skill_posterior
weights): does the decoder reproduce behaviour it was shown?

For each episode of a dataset (demos or play data, with the state features the model was trained on),
every H-step window (s_1:H, a_1:H) is encoded with the model's encoder q(z | s, a) (mean z), the env is
reset with the episode's own seed, and the windows' skills are decoded closed-loop one after the other
(π(a_t | s_t, z), H env steps each) until the episode's length or termination. Printed per episode:
the open-loop reconstruction MSE of the decoder on the episode's own states (per action entry), the
recorded return and the replayed one, the drift of the replay from the recording (max |Δ| over the
first 7 state features, the arm's joints on the kitchen, at a few steps), and the kitchen subtasks the
replay completed. The last lines give the means and, for play data that records the subtask at every
step (``infos["subtask"]``, the kitchen's), per subtask how often the replays completed it against how
often the episodes started it. A skill model whose replays fall far short of the recordings cannot be
steered to that behaviour by a skill-space policy either. ``--labels intended`` encodes the play
scripts' intended actions (``infos["intended_action"]``), what the default skill models learn from.

    python benchmarks/skill_replay.py data/weights/skill_prior/kitchen/play-features-seed1.pt \\
        data/datasets/polytask/kitchen/microwave-kettle-light-slide-features-v0 --task microwave-kettle-light-slide
    python benchmarks/skill_replay.py data/weights/skill_prior/kitchen/play-features-seed1.pt \\
        data/datasets/polytask/kitchen/play-features-v0 --task burner-topburner-light-slide-hinge-microwave-kettle \\
        --episodes 40 --obs-noise --labels intended
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections import Counter

import numpy as np
import torch

from polytask.data.demos import load_episodes
from polytask.training.weights import load_policy

DRIFT_AT = (10, 30, 50, 100, 150, 200)


@torch.no_grad()
def replay(agent, env, episode) -> dict[str, float | list]:
    """Replay one recorded ``episode`` (a :class:`polytask.data.demos.Episode` with ``obs["state"]``
    float32 (T+1, D), ``action`` float32 (T, A) and ``seed``) through ``agent``'s skill model in ``env``
    (see the module docstring). Returns ``rec_mse``, ``return``, ``recorded_return``, ``drift`` (list of
    (step, max |Δ state[:7]|)) and ``completed`` (the env's ``info["completed"]`` at the end, or [])."""
    model, horizon = agent.model, agent.horizon
    states = torch.as_tensor(episode.obs["state"][:-1], dtype=torch.float32)
    actions = torch.as_tensor(episode.action, dtype=torch.float32)
    n = len(actions) // horizon * horizon
    s = model.normalizer(states[:n]).reshape(-1, horizon, states.shape[1])
    a = actions[:n].reshape(-1, horizon, actions.shape[1])
    z, _ = model.encoder(s, a)
    rec = model.decoder(s.reshape(-1, s.shape[-1]), z.repeat_interleave(horizon, 0)).clamp(-1, 1)
    rec_mse = float((rec - a.reshape(-1, a.shape[-1])).pow(2).mean())
    obs, _ = env.reset(seed=int(episode.seed))
    ret, drift, info = 0.0, [], {}
    for t, skill in enumerate(z.numpy().repeat(horizon, axis=0)):  # each window's skill for its H steps
        if t in DRIFT_AT:
            drift.append((t, float(np.abs(obs["state"][:7] - episode.obs["state"][t][:7]).max())))
        obs, reward, terminated, truncated, info = env.step(agent.decode(obs, skill))
        ret += float(reward)
        if terminated or truncated:
            break
    return {"rec_mse": rec_mse, "return": ret, "recorded_return": float(episode.reward.sum()), "drift": drift,
            "completed": list(info.get("completed", []))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", help="an exported skill_prior or skill_posterior weights file")
    parser.add_argument("dataset", help="a Minari dataset folder of the suite (demos or play data)")
    parser.add_argument("--suite", default="kitchen", help="suite module under polytask.suites (kitchen, maze)")
    parser.add_argument("--task", default="microwave-kettle-light-slide", help="the env task to replay in")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--last", action="store_true",
                        help="the last episodes instead of the first (the skill stages hold out the last 5%% of play)")
    parser.add_argument("--obs-noise", action="store_true", help="kitchen: the env's observation noise on")
    parser.add_argument("--labels", choices=("executed", "intended"), default="executed",
                        help="the actions to encode: the recorded ones or infos['intended_action'] (play data)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    suite = importlib.import_module(f"polytask.suites.{args.suite}")
    kwargs = {"obs_noise": args.obs_noise} if args.suite == "kitchen" else {}
    env = suite.make(args.task, "features", **kwargs)
    agent = load_policy(args.weights, env)
    results, started, replayed = [], Counter(), Counter()
    episodes = load_episodes(args.dataset)
    for episode in episodes[-args.episodes:] if args.last else episodes[: args.episodes]:
        start = time.perf_counter()
        if args.labels == "intended":
            episode.action = np.asarray(episode.infos["intended_action"], np.float32)
        r = replay(agent, env, episode)
        results.append(r)
        if "subtask" in episode.infos and hasattr(suite, "SUBTASKS"):
            started.update(suite.SUBTASKS[i] for i in dict.fromkeys(int(x) for x in episode.infos["subtask"] if x >= 0))
            replayed.update(r["completed"])
        drift = " ".join(f"{t}:{d:.2f}" for t, d in r["drift"])
        print(f"seed {episode.seed}: rec_mse {r['rec_mse']:.4f}  return {r['return']:.0f} (recorded "
              f"{r['recorded_return']:.0f})  drift {drift}  completed {r['completed']}  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    env.close()
    mean = {k: np.mean([r[k] for r in results]) for k in ("rec_mse", "return", "recorded_return")}
    print(f"mean over {len(results)}: rec_mse {mean['rec_mse']:.4f}  return {mean['return']:.2f} "
          f"(recorded {mean['recorded_return']:.2f})")
    for name in started:
        print(f"  {name}: replays completed it {replayed[name]} times; episodes started it {started[name]} times")


if __name__ == "__main__":
    main()

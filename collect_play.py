"""Make a suite's task-agnostic play data (for skill models: SPiRL, SkiLD, EXTRACT) as one Minari
dataset ``polytask/<suite>/play-<obs_type>-v0`` under ``<data_dir>/datasets``.

    python collect_play.py suite=maze                       # ~2e5 steps in random 20x20 mazes
    python collect_play.py suite=maze obs_type=pixels play.num_episodes=50
    python collect_play.py suite=kitchen play.num_episodes=600

The suite config's ``play`` node says how the episodes are made (its options can be overridden,
e.g. ``suite.play.noise_std=0.3``).
"""

from polytask.cli import hydra_main, run_entry


@hydra_main("config_play")
def main(cfg):
    from polytask.training.run import collect_play

    run_entry(collect_play, cfg)


if __name__ == "__main__":
    main()

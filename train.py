"""Train a policy: ``python train.py agent=bc suite=metaworld obs_type=pixels suite/metaworld_task=hammer``.

With no overrides it runs the embedded default (BC on Meta-World button-press from 10 scripted demos,
state features), which takes a few minutes on 2 CPU cores and prints the success rate.
"""

from polytask.cli import hydra_main, run_entry


@hydra_main("config")
def main(cfg):
    from polytask.training.build import build_trainer

    run_entry(lambda c: build_trainer(c).run(), cfg)


if __name__ == "__main__":
    main()

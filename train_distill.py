"""Distil many single-task experts into one multi-task policy (PolyTask):
``python train_distill.py agent=distill suite=metaworld obs_type=pixels num_envs_to_distil=16``.

With no overrides it runs the embedded default: a one-hot-conditioned student over the first 4 of
the 16 PolyTask Meta-World tasks from relabelled scripted-expert data (state features).
"""

from polytask.cli import hydra_main, run_entry


@hydra_main("config_distill")
def main(cfg):
    from polytask.training.build import build_trainer

    run_entry(lambda c: build_trainer(c).run(), cfg)


if __name__ == "__main__":
    main()

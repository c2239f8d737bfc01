"""Distil the robot gym's tasks into one policy: ``python train_robot_distill.py agent=distill
suite=robotgym obs_type=pixels num_envs_to_distil=6`` (``cfgs/config_robot_distill.yaml``, the
trainer of ``train_distill.py``). Relabelled data comes from the scripted sim experts.
"""

from polytask.cli import hydra_main, run_entry


@hydra_main("config_robot_distill")
def main(cfg):
    from polytask.training.build import build_trainer

    run_entry(lambda c: build_trainer(c).run(), cfg)


if __name__ == "__main__":
    main()

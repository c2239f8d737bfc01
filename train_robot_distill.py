"""Distil the robot gym's tasks into one policy: ``python train_robot_distill.py agent=distill
suite=robotgym obs_type=pixels num_envs_to_distil=6`` (``cfgs/config_robot_distill.yaml``, the
trainer of ``train_distill.py``). Relabelled data comes from the scripted sim experts.
"""

import hydra

from polytask.cli import run_entry


@hydra.main(config_path="cfgs", config_name="config_robot_distill", version_base="1.3")
def main(cfg):
    from polytask.training.build import build_trainer

    run_entry(lambda c: build_trainer(c).run(), cfg)


if __name__ == "__main__":
    main()

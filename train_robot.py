"""Train a policy on the robot gym: ``python train_robot.py agent=bc suite=robotgym obs_type=pixels
suite/robotgym_task=boxopen num_demos_per_task=1``; ROT from that BC run with ``agent=drqv2
load_bc=true bc_regularize=true``.

The same trainers as ``train.py`` (``cfgs/config_robot.yaml``); online runs evaluate on their
training env. It runs on the simulated stand-in unless ``suite.backend=xarm`` (a real xArm at
``XARM_IP``; see docs/robotgym.md). Missing demos are made by the scripted sim experts.
"""

from polytask.cli import hydra_main, run_entry


@hydra_main("config_robot")
def main(cfg):
    from polytask.training.build import build_trainer

    run_entry(lambda c: build_trainer(c).run(), cfg)


if __name__ == "__main__":
    main()

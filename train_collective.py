"""Collective learning over Meta-World tasks: teachers' data, a trajectory transformer that recognises the
task from 20 steps, one collective actor on [task embedding, state], and students shaped by it.

    python train_collective.py mode=record suite/metaworld_task=mt10
    python train_collective.py mode=train_transformer suite/metaworld_task=mt10
    python train_collective.py mode=distill_collective suite/metaworld_task=mt10
    python train_collective.py mode=evaluate suite/metaworld_task=mt10

``mode=`` picks the stage (cfgs/mode/); each finds the previous stage's outputs under ``data_dir`` and,
when they are missing, says which command makes them (docs/collective.md).
"""

from polytask.cli import hydra_main, run_entry


@hydra_main("config_collective")
def main(cfg):
    from polytask.training.build import run_dir_for
    from polytask.training.collective_modes import run_mode

    run_entry(lambda c: run_mode(c, run_dir_for(c)), cfg)


if __name__ == "__main__":
    main()

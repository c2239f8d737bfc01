"""Make demonstrations with a suite's expert and write them as Minari datasets under ``data_dir``.

    python collect_demos.py suite=metaworld suite/metaworld_task=hammer obs_type=pixels num_demos_per_task=10
    python collect_demos.py suite=metaworld suite/metaworld_task=polytask16 num_demos_per_task=10

Uses the same config as ``train.py`` (so a training command's overrides work here unchanged); only
successful episodes are kept unless ``keep_failed_demos=true``.
"""

from polytask.cli import hydra_main, run_entry


@hydra_main("config")
def main(cfg):
    from polytask.training.demos import collect_task_demos

    def collect(c):
        for task in c.suite.task:
            collect_task_demos(c, str(task), int(c.num_demos_per_task))

    run_entry(collect, cfg)


if __name__ == "__main__":
    main()

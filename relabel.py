"""Make the relabelled data of distillation (PolyTask stage 3) without training: for each task, the
states its expert visits with action noise, labelled with the expert's actions, as Minari datasets.

    python relabel.py suite=metaworld num_envs_to_distil=16 relabel.episodes_per_task=20
    python relabel.py suite=dmc num_envs_to_distil=10     # experts: trained DrQ-v2 snapshots

``train_distill.py`` makes missing relabelled data itself; this script (re)makes it up front.
"""

from polytask.cli import hydra_main, run_entry


@hydra_main("config_distill")
def main(cfg):
    from polytask.training.demos import relabel_task

    def relabel(c):
        for task in c.suite.task:
            relabel_task(c, str(task))

    run_entry(relabel, cfg)


if __name__ == "__main__":
    main()

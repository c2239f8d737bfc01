"""Score an exported policy: ``python evaluate.py policy=data/weights/bc/metaworld/hammer-features-d10-seed1.pt``.

Runs ``eval.num_episodes`` (100) episodes per task of the suite and task(s) the policy was trained
on, on the same eval seeds as training runs, prints success and return per task, and writes
``results.json`` in its run directory (``exp_local/evaluate/<file>-n<episodes>``).
"""

from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from polytask.cli import hydra_main, run_entry


@hydra_main("evaluate")
def main(cfg):
    from polytask.training.evaluate import evaluate_weights

    run_entry(lambda c: evaluate_weights(c, Path(HydraConfig.get().runtime.output_dir)), cfg)


if __name__ == "__main__":
    main()

"""EXTRACT skill discovery on a suite's play data (made first when missing): frame embeddings minus
the first frame's, K-means, a median filter and segmentation into 5-30-step skills with progress
labels. Writes the labelled dataset ``polytask/<suite>/extract-<obs_type>-v0`` and its report.

    python extract_skills.py suite=maze
    python extract_skills.py suite=maze obs_type=pixels extract.embedding.name=pixels_pca
    python extract_skills.py suite=kitchen extract.label_key=subtask
"""

from polytask.cli import hydra_main, run_entry


@hydra_main("config_extract")
def main(cfg):
    from polytask.training.extract import discover

    run_entry(discover, cfg)


if __name__ == "__main__":
    main()

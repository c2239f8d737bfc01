"""Unsupervised skill discovery from play data (EXTRACT, Zhang et al. 2024): frame embeddings,
clustering into skills and segmentation (:mod:`polytask.skills.extract`), with the embeddings in
:mod:`polytask.skills.embeddings` and the written report in :mod:`polytask.skills.report`."""

"""Collective learning (a transformer-based collective learning framework built on mtrl): SAC
workers, each expert at one task, share their experience; a trajectory transformer
(:mod:`polytask.nets.trajectory_transformer`) learns to recognise the task from a window of
(state, action, reward) steps; one collective actor (:mod:`polytask.nets.collective`) conditioned on
that embedding is distilled from all workers; new students learn with a shaping bonus from it.

- :mod:`polytask.collective.windows`: windows of recorded episodes for training and run time;
- :mod:`polytask.collective.training`: the transformer's training loop and batched embedding;
- :mod:`polytask.collective.shaping`: the students' shaping weight schedule and bonus;
- :mod:`polytask.collective.analysis`: clustering and nearest-centroid scores of the embeddings, and
  their 2-D plot.
"""

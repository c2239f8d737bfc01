"""PolyTask: learning robot policies from demonstrations and improving them online.

The package is laid out in layers: ``suites`` (environments), ``experts`` (demonstrators),
``data`` (datasets, buffers), ``nets`` (networks), ``agents`` (algorithms), ``rewards`` and
``training`` (trainers, evaluation, checkpoints, logging). Dependencies point one way:
entry scripts -> training -> agents/data/suites -> nets.
"""

__version__ = "0.1.0"

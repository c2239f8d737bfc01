"""Base class of the errors PolyTask raises for bad input. Entry scripts print their message (which
says what is wrong and how to fix it) without a traceback and exit with status 1."""


class PolyTaskError(Exception):
    """An error caused by input the user can fix (config, data, files)."""


class ConfigError(PolyTaskError, ValueError):
    """A config value that cannot work; the message says which and why (also importable from
    ``polytask.training.build``)."""

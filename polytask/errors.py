"""Base class of the errors PolyTask raises for bad input. Entry scripts print their message (which
says what is wrong and how to fix it) without a traceback and exit with status 1."""


class PolyTaskError(Exception):
    """An error caused by input the user can fix (config, data, files)."""


class ConfigError(PolyTaskError, ValueError):
    """A config value that cannot work; the message says which and why (also importable from
    ``polytask.training.build``)."""


class CheckpointError(PolyTaskError, RuntimeError):
    """A checkpoint or weights file that cannot be read; the message says which file and what to do
    (also importable from ``polytask.training.checkpoint``)."""


def require_features(agent: str, obs_type: str, hint: str = "") -> None:
    """Check that an agent that acts on state vectors runs with ``obs_type=features``.

    Raises:
        ConfigError: for any other ``obs_type`` (the message ends with ``hint``, e.g. which agent
            handles pixels).
    """
    if obs_type != "features":
        raise ConfigError(f"agent={agent} supports obs_type=features only (got obs_type={obs_type}); run it with "
                          f"obs_type=features{hint}")

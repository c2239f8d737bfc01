"""Teleoperation: a person's keys (or gamepad) turned into robot gym actions, one per control step.

The mapping from keys to actions (:class:`TeleopExpert`) is separate from where keys come from (a
key source: the terminal, a gamepad through pygame, or a fake in tests), so that recording demos
is testable without a person. ``collect_demos.py suite=robotgym teleop=keyboard`` uses it in place
of the scripted expert, and records episodes like any expert's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Protocol

import numpy as np

from polytask.errors import ConfigError

#: Keyboard layout: key -> (axis, direction) of the Cartesian action; ``o``/``c`` open/close the gripper.
KEYS = {"w": (0, 1.0), "s": (0, -1.0), "a": (1, 1.0), "d": (1, -1.0), "r": (2, 1.0), "f": (2, -1.0)}
GRIPPER_KEYS = {"o": 1.0, "c": -1.0}
HELP = "w/s: +x/-x  a/d: +y/-y  r/f: up/down  o/c: open/close gripper  (other keys: stay)"


class KeySource(Protocol):
    """Where keys come from: :meth:`poll` returns the keys pressed since the last call (possibly none)."""

    def poll(self) -> list[str]:
        """Keys pressed since the last call, oldest first."""
        ...


class FakeKeys:
    """A scripted key source (tests): each :meth:`poll` returns the next item of ``presses``
    (a string of keys), then nothing."""

    def __init__(self, presses: Iterable[str]):
        self._presses: Iterator[str] = iter(presses)

    def poll(self) -> list[str]:
        """The next scripted keys."""
        return list(next(self._presses, ""))


class TerminalKeys:
    """Keys typed in this terminal, read without Enter (raw mode; restored by :meth:`close`).

    Raises:
        ConfigError: if standard input is not a terminal.
    """

    def __init__(self):
        import termios
        import tty

        if not sys.stdin.isatty():
            raise ConfigError("teleop=keyboard needs a terminal: run collect_demos.py in an interactive shell")
        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        print(HELP, file=sys.stderr)

    def poll(self) -> list[str]:
        """The keys typed since the last call."""
        import os
        import select

        keys = []
        while select.select([self._fd], [], [], 0)[0]:
            keys += list(os.read(self._fd, 32).decode(errors="ignore").lower())
        return keys

    def close(self) -> None:
        """Restore the terminal."""
        import termios

        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)


class GamepadKeys:
    """A gamepad through pygame, read as keys: left stick x/y -> ``w``/``s``, ``a``/``d``; right
    stick y -> ``r``/``f``; buttons 0/1 -> ``o``/``c``. Axis values beyond ``deadzone`` count.

    Raises:
        ImportError: if pygame is missing; ConfigError: if no gamepad is connected.
    """

    def __init__(self, deadzone: float = 0.5):
        try:
            import pygame
        except ImportError as e:
            raise ImportError("teleop=gamepad needs pygame: pip install pygame") from e
        pygame.init()
        pygame.joystick.init()
        if pygame.joystick.get_count() == 0:
            raise ConfigError("teleop=gamepad: no gamepad found; connect one or use teleop=keyboard")
        self._pg, self.deadzone = pygame, deadzone
        self._pad = pygame.joystick.Joystick(0)

    def poll(self) -> list[str]:
        """The keys the stick positions and pressed buttons stand for now."""
        self._pg.event.pump()
        keys = []
        for axis, (neg, pos) in ((1, ("w", "s")), (0, ("a", "d")), (3, ("r", "f"))):
            value = self._pad.get_axis(axis)
            if abs(value) > self.deadzone:
                keys.append(pos if value > 0 else neg)
        keys += [k for button, k in ((0, "o"), (1, "c")) if self._pad.get_button(button)]
        return keys

    def close(self) -> None:
        """Shut pygame down."""
        self._pg.quit()


def key_source(kind: str) -> KeySource:
    """The key source named by ``teleop=``: ``keyboard`` or ``gamepad``.

    Raises:
        ConfigError: for another name.
    """
    if kind == "keyboard":
        return TerminalKeys()
    if kind == "gamepad":
        return GamepadKeys()
    raise ConfigError(f"teleop must be keyboard or gamepad, got {kind!r}")


def keys_to_action(keys: Iterable[str], gripper: bool, speed: float = 1.0) -> np.ndarray:
    """The action of the keys pressed during one step: each movement key adds ``±speed`` on its
    axis (clipped to [-1, 1]); with ``gripper`` a 4th entry is 1 (open, ``o``), -1 (close, ``c``,
    the last of the two wins) or 0. float32 (3,) or (4,)."""
    action = np.zeros(4 if gripper else 3, np.float32)
    for key in keys:
        if key in KEYS:
            axis, sign = KEYS[key]
            action[axis] += sign * speed
        elif gripper and key in GRIPPER_KEYS:
            action[3] = GRIPPER_KEYS[key]
    action[:3] = np.clip(action[:3], -1.0, 1.0)
    return action


class TeleopExpert:
    """A person as the expert: ``act(obs)`` polls ``keys`` once per control step and returns
    :func:`keys_to_action` of what was pressed.

    Args:
        keys: a :class:`KeySource`.
        gripper: whether actions have the gripper entry.
        speed: action magnitude of one key press (1 = 2.5 cm per step).
    """

    def __init__(self, keys: KeySource, gripper: bool = False, speed: float = 1.0):
        self.keys, self.gripper, self.speed = keys, gripper, speed

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The action of the keys pressed since the last step."""
        return keys_to_action(self.keys.poll(), self.gripper, self.speed)

    def close(self) -> None:
        """Release the key source (restores the terminal)."""
        close = getattr(self.keys, "close", None)
        if close is not None:
            close()

"""Errors that mean "the input or the settings are wrong", at the bottom of the import graph.

Every such error is a :class:`GenreError`; each command catches that one class and prints the
message (which names the file or setting and says what to do) instead of a traceback
(:func:`genre.cli.exit_on_user_error`). Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable

from genre.signals import Interrupted

USER_ERROR_STATUS = 2


class GenreError(Exception):
    """Base of every user-facing error: its message is complete for the person who ran the command."""


class ConfigError(GenreError, ValueError):
    """Settings that cannot work (a value out of range, a resume with another model)."""


class FeatureError(ConfigError):
    """Invalid feature settings (``features.*``)."""


class DatasetError(GenreError, ValueError):
    """The dataset on disk or its settings cannot give a meaningful run."""


class TrackingError(GenreError, RuntimeError):
    """The MLflow tracking store cannot be reached or used; raised before any training."""


class TrainingDiverged(GenreError, RuntimeError):
    """The training loss became NaN or infinite: every later step would be meaningless."""


class AudioDecodeError(GenreError):
    """A file that cannot be decoded into usable audio; ``str()`` names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def exit_on_user_error(command: Callable) -> Callable:
    """Every command's way out: a :class:`GenreError` becomes ``error: <message>`` on stderr and exit
    status 2, and SIGINT or SIGTERM (:mod:`genre.signals`) ``stopped: ...`` and status 130 or 143, without a
    traceback; anything else is a bug and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GenreError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(USER_ERROR_STATUS)
        except Interrupted as stop:   # SIGINT or SIGTERM (genre.signals): one line, status 130 or 143
            print(f"stopped: {stop}", file=sys.stderr)
            sys.exit(stop.status)

    return wrapper

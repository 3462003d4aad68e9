"""Errors that mean "the input or the settings are wrong", at the bottom of the import graph.

Every such error is a :class:`GenreError`; each command catches that one class and prints the
message (which names the file or setting and says what to do) instead of a traceback
(:func:`genre.cli.exit_on_user_error`). Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import errno
import functools
import os
import sys
from pathlib import Path
from typing import Callable

from genre.runtime.signals import Interrupted

USER_ERROR_STATUS = 2


def printable(text) -> str:
    """``text`` (a name or a path) as it can be written anywhere: a UTF-8 log, HDF5, MLflow. A file name's bytes
    that are not UTF-8 (``\\xff\\xfe-latin.wav``), which Python keeps as surrogates, are written escaped
    (``\\xff``); everything else is unchanged."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class GenreError(Exception):
    """Base of every user-facing error: its message is complete for the person who ran the command."""


class ConfigError(GenreError, ValueError):
    """Settings that cannot work (a value out of range, a resume with another model)."""


class EncoderUnavailable(ConfigError):
    """A pretrained encoder's weights are neither in the Hugging Face cache nor at ``encoder.path``, or are not
    that encoder's (:mod:`genre.features.encoders`)."""


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
        super().__init__(f"{printable(self.path)}: {printable(reason)}")


_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def disk_problem(error: OSError) -> str | None:
    """What a user reads for a full or read-only disk, naming the folder and what to do; None for other
    errors (a bug, which keeps its traceback). h5py and sqlite name the errno only in their message."""
    text = str(error)
    full = error.errno in _FULL or "No space left on device" in text or "Disk quota exceeded" in text
    read_only = error.errno in _NOT_WRITABLE or "Read-only file system" in text
    if not (full or read_only):
        return None
    where = Path(error.filename).parent if error.filename else None
    place = f"the folder {where}" if where else f"a folder this command writes ({text.splitlines()[0][:200]})"
    if full:
        return (f"no space left on the disk of {place}: free some space there, or point paths.root_dir "
                f"(or paths.cache_dir, logger.artifact_location) at another disk; nothing written half is kept")
    return (f"cannot write to {place} ({error.strerror or 'read-only'}): make it writable, or point "
            f"paths.root_dir (or paths.cache_dir, logger.artifact_location) at a folder you can write")


def refuse_unwritable(folder: str | Path, setting: str) -> None:
    """Before any work: ``folder`` (made if missing) must be writable; else one line naming ``setting``."""
    folder = Path(folder).resolve()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK):
        raise ConfigError(f"{setting}: cannot write to {existing} (read-only or not yours): make it writable, or "
                          f"set {setting} to a folder you can write")


def exit_on_user_error(command: Callable) -> Callable:
    """Every command's way out: a :class:`GenreError` becomes ``error: <message>`` on stderr and exit
    status 2, and SIGINT or SIGTERM (:mod:`genre.runtime.signals`) ``stopped: ...`` and status 130 or 143, without a
    traceback; anything else is a bug and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GenreError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(USER_ERROR_STATUS)
        except OSError as error:      # a full or read-only disk: one line naming where, not a traceback
            message = disk_problem(error)
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            sys.exit(USER_ERROR_STATUS)
        except Interrupted as stop:   # SIGINT or SIGTERM (genre.runtime.signals): one line, status 130 or 143
            print(f"stopped: {stop}", file=sys.stderr)
            sys.exit(stop.status)
        except KeyboardInterrupt:      # Ctrl-C in a command that keeps Python's own handler (compare, replay)
            print("stopped: interrupted by SIGINT", file=sys.stderr)
            sys.exit(130)

    return wrapper

"""One rule for SIGINT (Ctrl-C) and SIGTERM (``kill``, a scheduler's pre-emption), in every phase of a command.

The first of either signal raises :class:`Interrupted` wherever the command is: data preparation,
training, testing or recording the outputs. The command unwinds in order (an open MLflow run is marked
FAILED, its checkpoints stay, ``last.ckpt`` resumes it), prints one line without a traceback and exits
with ``128 + the signal's number``: 130 for SIGINT, 143 for SIGTERM. A second signal while it unwinds ends
the process at once, as SIGKILL always does: the run is then left RUNNING, and resumable.

:class:`Interrupted` derives from ``BaseException``, as ``KeyboardInterrupt`` does, so that no
``except Exception`` on the way takes it for an ordinary error and carries on. Lightning's own handling
differs by phase (``KeyboardInterrupt`` ends ``fit`` with status 1 and ``test`` not at all; its SIGTERM
flag ends ``fit`` with status 0), which is why the commands install this one.
"""
from __future__ import annotations

import os
import signal
import threading

HANDLED = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; ``status`` is the exit status the command leaves with (128 + signal)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.detail = ""           # what the command adds on its way out (which run, how to resume it)
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def status(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return super().__str__() + (f": {self.detail}" if self.detail else "")


def _handle(signum, frame) -> None:
    if _received:                       # the second signal: end now (SIGKILL's rule: the run stays RUNNING)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _received.append(signum)
    raise Interrupted(signum)


def install() -> None:
    """Make SIGINT and SIGTERM raise :class:`Interrupted` in this process (main thread only; elsewhere a
    no-op, as Python allows handlers only there)."""
    if threading.current_thread() is threading.main_thread():
        for signum in HANDLED:
            signal.signal(signum, _handle)

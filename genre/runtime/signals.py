"""One rule for SIGINT (Ctrl-C) and SIGTERM (``kill``, a scheduler's pre-emption), in every phase of a command.

The first of either signal raises :class:`Interrupted` wherever the command is: data preparation,
training, testing or recording the outputs (once it is out of the tracking store's and the locks' code,
where a raise halfway would leave a transaction open, within 10 s at most; and raised again where the
program is when Python dropped it, in a finaliser). The command unwinds in order (an open MLflow run is marked
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
import sys
import threading
import time

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


# Code an exception must not interrupt halfway: a raise inside the tracking store's session, its connection
# pool or a lock's bookkeeping left the pool locked and a write transaction open, so the process hung on
# its way out and the other jobs of a sweep met "database is locked" (CI). The signal is handled as soon
# as the main thread is out of it.
_UNSAFE = ("sqlalchemy", "sqlite3", "mlflow.store", "mlflow.tracking", "threading", "logging")
_DEFER_FOR_S = 10.0   # at most: a store call that never returns must not hold a stop back for ever
_deferred_since: list[float] = []


def _in_unsafe_code(frame) -> bool:
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith(_UNSAFE):
            return True
        frame = frame.f_back
    return False


_redelivering: list[int] = []   # a deferred signal this process sends itself again


def _handle(signum, frame) -> None:
    redelivery = signum in _redelivering
    if redelivery:
        _redelivering.remove(signum)
    if _received:
        if redelivery:                  # already stopping (interrupted() took it): nothing more to do
            return
        # the second signal: end now (SIGKILL's rule: the run stays RUNNING)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _in_unsafe_code(frame) and (not _deferred_since or time.monotonic() - _deferred_since[0] < _DEFER_FOR_S):
        if not _deferred_since:
            _deferred_since.append(time.monotonic())
        _redeliver(signum)
        return
    _deferred_since.clear()
    raise interrupted(signum)


def _redeliver(signum: int) -> None:
    _redelivering.append(signum)
    timer = threading.Timer(0.05, os.kill, (os.getpid(), signum))   # delivered again in a moment
    timer.daemon = True
    timer.start()


def _unraisable(unraisable) -> None:
    """Python drops an exception raised where nothing can catch it (a ``__del__``, a weakref callback, the
    garbage collector): a stop raised there was lost, and a run killed while its feature cache was built
    went on and exited 0 (CI). Such a stop is raised again, a moment later, where the program is."""
    stop = unraisable.exc_value
    if isinstance(stop, Interrupted) and stop.signum in _received:
        _received.remove(stop.signum)
        _redeliver(stop.signum)
        return
    _previous_unraisable_hook[0](unraisable)


_previous_unraisable_hook = [sys.unraisablehook]


def interrupted(signum: int) -> Interrupted:
    """The :class:`Interrupted` for ``signum``, noted as the one the process is stopping for (a later
    signal ends it at once). Also for a stop another handler saw first: Lightning's SIGTERM flag ends
    ``fit`` with ``SIGTERMException``, a ``SystemExit`` of status 0, which genre.train turns into this."""
    _received.append(signum)
    return Interrupted(signum)


def stopping_signal() -> int | None:
    """The signal this process is stopping for (SIGINT, SIGTERM), or None."""
    return _received[0] if _received else None


def install() -> None:
    """Make SIGINT and SIGTERM raise :class:`Interrupted` in this process (main thread only; elsewhere a
    no-op, as Python allows handlers only there)."""
    if threading.current_thread() is threading.main_thread():
        for signum in HANDLED:
            signal.signal(signum, _handle)
        if sys.unraisablehook is not _unraisable:
            _previous_unraisable_hook[0] = sys.unraisablehook
            sys.unraisablehook = _unraisable

"""Running one function over many jobs on every core, in order, with the work cancelled on error; and
the file lock that lets parallel runs share a corpus or cache. A killed run leaves neither a worker
process nor a held lock behind: workers die with the process that started them."""
from __future__ import annotations

import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

log = logging.getLogger(__name__)
Job = TypeVar("Job")
Result = TypeVar("Result")


def worker_count(workers: int | None) -> int:
    """``workers``, or one per core when ``None``."""
    return workers or os.cpu_count() or 1


@contextmanager
def process_map(function: Callable[[Job], Result], jobs: Iterable[Job], workers: int | None = None,
                chunksize: int = 1) -> Iterator[Iterator[Result]]:
    """Results of ``function(job)`` in job order, from ``workers`` processes (default: one per core).

    ``workers=1`` runs in this process (no pickling; what a one-process measurement compares with).
    Leaving the block, normally or by an exception, cancels what has not started.
    """
    workers = worker_count(workers)
    if workers == 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # the same per-process conditions as a worker's
            yield map(function, jobs)
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_start_worker, initargs=(os.getpid(),))
    try:
        yield pool.map(function, jobs, chunksize=chunksize)
    finally:
        pool.shutdown(cancel_futures=True)


def _start_worker(parent_pid: int) -> None:
    """Set up a worker process: it dies with its parent, and runs one native thread.

    Killed (SIGKILL or SIGTERM), the parent cannot stop its workers; forked, they hold its open files,
    a cache's lock among them, and would wait for work forever, so every later run waiting on that lock
    hung. The kernel ends them instead (Linux ``PR_SET_PDEATHSIG``); a parent already gone ends them here.
    One native thread (BLAS, OpenMP): the processes already use every core, and each library's thread
    pool on top of them only makes them wait for each other.
    """
    import signal

    from threadpoolctl import threadpool_limits

    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:   # the parent died before the line above took effect
        os._exit(1)
    # Ctrl-C reaches the whole process group: the parent alone handles it (genre.runtime.signals) and stops the pool;
    # the handler a fork inherited would raise in the middle of a job and send the exception back
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threadpool_limits(1)


@contextmanager
def file_lock(path: Path, report_every_s: float = 10.0, poll_s: float = 0.2) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs.

    Parallel jobs of a sweep that need the same corpus or cache wait for the first to build it
    instead of building it twice (or racing to rename it into place). A process that waits says which
    lock it waits for and which process holds it, every ``report_every_s`` seconds, never silently.
    The lock is the kernel's (``flock``): it is released when its holder exits, however it exits.
    By hand rather than ``filelock``'s (installed with torch), which cannot say who holds a lock: a run
    that waits silently for a killed or stuck one looks hung.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = open(path, "a+")   # created as the umask says: 0664 under a group's umask 002
        writable = True
    except PermissionError:         # another user's lock (0644 under umask 022): flock works read-only too
        handle = open(path)
        writable = False
    with handle:
        started, next_report = time.monotonic(), 0.0
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= next_report:
                    log.warning("waiting for %s, held by %s (%.0f s so far)", path, _holder(path), waited)
                    next_report += report_every_s
                time.sleep(poll_s)
        try:
            if writable:
                handle.seek(0)
                handle.truncate()
                handle.write(f"{os.getpid()} {' '.join(sys.argv)[:300]}\n")   # who holds it, for those who wait
                handle.flush()
            yield
        finally:
            if writable:
                handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder(path: Path) -> str:
    """Who holds the lock at ``path``, as its holder wrote it: ``process PID (command line)``."""
    try:
        pid, _, command = path.read_text().strip().partition(" ")
        return f"process {int(pid)} ({command})"
    except (OSError, ValueError):
        return "another process"

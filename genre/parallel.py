"""Running one function over many jobs on every core, in order, with the work cancelled on error."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

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
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_one_thread_each)
    try:
        yield pool.map(function, jobs, chunksize=chunksize)
    finally:
        pool.shutdown(cancel_futures=True)


def _one_thread_each() -> None:
    """One native thread per worker process (BLAS, OpenMP): the processes already use every core, and
    each library's own thread pool on top of them only makes them wait for each other."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs.

    Parallel jobs of a sweep that need the same corpus or cache wait for the first to build it
    instead of building it twice (or racing to rename it into place). The lock is released when
    the process exits, however it exits.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

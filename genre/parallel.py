"""Running one function over many jobs on every core, in order, with the work cancelled on error."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


@contextmanager
def process_map(function: Callable[[Job], Result], jobs: Iterable[Job], workers: int | None = None,
                chunksize: int = 1) -> Iterator[Iterator[Result]]:
    """Results of ``function(job)`` in job order, from ``workers`` processes (default: one per core).

    ``workers=1`` runs in this process (no pickling; what a one-process measurement compares with).
    Leaving the block, normally or by an exception, cancels what has not started.
    """
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        yield map(function, jobs)
        return
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        yield pool.map(function, jobs, chunksize=chunksize)
    finally:
        pool.shutdown(cancel_futures=True)


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

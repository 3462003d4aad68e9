"""``hydra/launcher=parallel``: the jobs of a sweep, ``n_jobs`` at a time, each in a process of its own.

joblib's launcher ran them in a shared pool: one worker killed (the OOM killer, a user's ``kill -9``)
ended the whole sweep with ``TerminatedWorkerError``, the healthy jobs with it, and left their runs
RUNNING. Here every job is a process forked for it alone: a job that dies is reported with its reason
(killed by which signal, or its exit status) and the sweep goes on; at the end Hydra reports the
failed jobs and the command exits non-zero. A job killed outright leaves its MLflow run RUNNING and
resumable from its ``last.ckpt``; one stopped by SIGINT or SIGTERM marks it FAILED (genre.runtime.signals).

Forked, not spawned: the task function and Hydra's context are inherited as they are, never pickled
(``genre.cli.train`` is a Hydra wrapper that pickle cannot name), and only the job's result comes
back through a pipe. The launcher process has imported neither torch's CUDA runtime nor opened a
device, so forking it is safe.
"""
from __future__ import annotations

import logging
import multiprocessing
import signal
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


class JobDied(RuntimeError):
    """A job's process ended without a result: killed by a signal, or exited before returning."""


def _run_one(pipe, idx: int, overrides: Sequence[str], hydra_context: HydraContext, config: DictConfig,
             task_function: TaskFunction, singleton_state: dict[Any, Any]) -> None:
    """In the job's own process: compose its config and run it as Hydra's launchers do, send the result."""
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = _job_config(hydra_context, config, overrides, idx)
    HydraConfig.instance().set_config(sweep_config)
    result = run_job(hydra_context=hydra_context, config=sweep_config, task_function=task_function,
                     job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    # what the sweeper reads of a result (its configs hold Hydra's structured configs, which do not pickle)
    value = result._return_value
    try:
        pipe.send((result.status, value, result.working_dir, result.task_name))
    except Exception:   # a return value or exception that does not pickle: say what it was
        pipe.send((result.status, RuntimeError(f"{type(value).__name__}: {value}") if result.status ==
                   JobStatus.FAILED else None, result.working_dir, result.task_name))
    pipe.close()


def _job_config(hydra_context: HydraContext, config: DictConfig, overrides: Sequence[str], idx: int) -> DictConfig:
    """Job ``idx``'s config, as Hydra's launchers compose it (its folder: ``hydra.sweep.dir/subdir``)."""
    job = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(job):
        job.hydra.job.id = f"{job.hydra.job.name}_{idx}"
        job.hydra.job.num = idx
    return job


def _death(process: multiprocessing.Process) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with status {code} before returning a result"


class ParallelLauncher(Launcher):
    def __init__(self, n_jobs: int = 2) -> None:
        if not isinstance(n_jobs, int) or n_jobs < 1:
            raise ValueError(f"hydra.launcher.n_jobs={n_jobs!r}: must be an integer >= 1")
        self.n_jobs = n_jobs
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self._shared: set[str] = set()

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs, {self.n_jobs} at a time, each in its own process")
        # the settings all jobs share (the command line's) are not repeated in each job's name
        self._shared = set.intersection(*(set(o) for o in job_overrides)) if len(job_overrides) > 1 else set()
        singleton_state = Singleton.get_state()
        context = multiprocessing.get_context("fork")
        waiting = list(enumerate(job_overrides))
        running: dict[int, tuple[multiprocessing.Process, Any]] = {}
        results: dict[int, JobReturn] = {}
        try:
            while waiting or running:
                while waiting and len(running) < self.n_jobs:
                    position, overrides = waiting.pop(0)
                    idx = initial_job_idx + position
                    log.info(f"\t#{idx} : {self._shown(overrides)}")
                    reader, writer = context.Pipe(duplex=False)
                    process = context.Process(target=_run_one, name=f"sweep-job-{idx}",
                                              args=(writer, idx, overrides, self.hydra_context, self.config,
                                                    self.task_function, singleton_state))
                    process.start()
                    writer.close()
                    running[position] = (process, reader)
                ready = wait([reader for _, reader in running.values()])
                for position, (process, reader) in list(running.items()):
                    if reader not in ready:
                        continue
                    try:
                        status, value, working_dir, task_name = reader.recv()
                        results[position] = JobReturn(overrides=list(job_overrides[position]), status=status,
                                                      _return_value=value, working_dir=working_dir,
                                                      task_name=task_name)
                    except EOFError:      # the pipe closed without a result: the process is gone
                        process.join()
                        results[position] = self._died(job_overrides[position], initial_job_idx + position,
                                                       process)
                    process.join()
                    reader.close()
                    del running[position]
        finally:   # leaving early (Ctrl-C reaches every job too): no job process is left behind
            for process, _ in running.values():
                process.join(timeout=60)
                if process.is_alive():
                    process.kill()
        return [results[position] for position in range(len(job_overrides))]

    def _resume_hint(self, overrides: Sequence[str], idx: int) -> str:
        """The command that resumes a dead job, as it can be typed: its own folder's ``last.ckpt`` and its
        settings (or, before its first checkpoint, the command that runs it again)."""
        import shlex

        from genre.runtime.console import resume_command

        settings = " ".join(shlex.quote(o) for o in filter_overrides(overrides))
        command = resume_command()
        try:
            job = _job_config(self.hydra_context, self.config, overrides, idx)
            last = Path(str(job.hydra.sweep.dir)) / str(job.hydra.sweep.subdir) / "checkpoints" / "last.ckpt"
        except Exception:   # the hint must not hide the death it reports
            last = None
        if last is not None and last.is_file():
            return (f"Its MLflow run stays RUNNING; resume it with: {command} "
                    f"{shlex.quote(f'ckpt_path={last.resolve()}')} {settings}")
        return f"It had written no checkpoint; run it again with: {command} {settings}"

    def _shown(self, overrides: Sequence[str]) -> str:
        return " ".join(o for o in filter_overrides(overrides) if o not in self._shared)

    def _died(self, overrides: Sequence[str], idx: int, process: multiprocessing.Process) -> JobReturn:
        reason = f"sweep job #{idx} ({self._shown(overrides)}) {_death(process)}; the other jobs went on. " + \
            self._resume_hint(overrides, idx)
        log.error(reason)
        result = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
        result.return_value = JobDied(reason)
        return result

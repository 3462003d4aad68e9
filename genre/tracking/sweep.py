"""A sweep (``python train.py -m ...``) as one MLflow parent run with its jobs as child runs.

The parent is opened before the first job starts (genre.runtime.hydra_callbacks.PrepareTrackingStore), in the
process that runs the sweeper, and its id is written to ``<hydra.sweep.dir>/mlflow_sweep_run.json``; every job
reads it there (a forked job, a job of the in-process launcher, a submitit job on another node of a shared
file system alike) and creates its run with the ``mlflow.parentRunId`` tag, which the MLflow UI nests under
the parent. The parent records the sweep's overrides (each swept setting as a param, under the key its jobs
log it with) and, when the sweep ends, a summary built from the store itself, so that it is true whatever
launcher ran the jobs and however they ended:

- ``best_run_id``, ``best_job``, ``best_overrides`` and the metrics ``best/val_track_acc_best`` and
  ``best/test_track_acc``: the job chosen by the sweep's objective (validation track accuracy, the value
  ``train()`` returns; never by a test metric), among the finished jobs;
- ``jobs_planned``, ``jobs_finished``, ``jobs_failed``, ``jobs_running`` (a job killed outright leaves its run
  RUNNING and resumable) and a table of every job in the run's description;
- its status: FINISHED when the sweeper completed and every planned job's run is FINISHED; FAILED when a job
  failed or died, or the sweep was interrupted (``sweep_outcome`` says which). A job resumed later from its
  ``last.ckpt`` updates the summary, and the parent turns FINISHED once every planned job is.

A sweep process killed outright (SIGKILL) leaves the parent RUNNING, as it leaves a run.
"""
from __future__ import annotations

import atexit
import json
import logging
import math
import os
from pathlib import Path

log = logging.getLogger(__name__)

SWEEP_FILE = "mlflow_sweep_run.json"
OBJECTIVE = "val/track_acc_best"
_open: dict[str, object] = {}   # the parent run this process opened: its id and store, and whether it is closed


def swept_settings(task_overrides: list[str]) -> dict[str, str]:
    """The overrides of a sweep's command line that sweep (``seed=1,2,3``, ``optimizer.lr=range(...)``), as
    ``{key: value as typed}``; the key as the jobs' params name it (``features/stride_ms``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    swept = {}
    for override in OverridesParser.create().parse_overrides(list(task_overrides)):
        if override.is_sweep_override():
            swept[override.get_key_element().replace(".", "/")] = str(override.input_line).split("=", 1)[1]
    return swept


def planned_jobs(config) -> int | None:
    """How many jobs the sweep will launch: the basic sweeper's product of the swept values, Optuna's
    ``n_trials``; None when it cannot be told in advance."""
    sweeper = config.hydra.sweeper
    target = str(sweeper.get("_target_", ""))
    try:
        if target.endswith("BasicSweeper"):
            from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
            from hydra.core.override_parser.overrides_parser import OverridesParser

            params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
            parsed = OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task])
            return sum(len(batch) for batch in BasicSweeper.split_arguments(parsed, None))
        if sweeper.get("n_trials") is not None:
            return int(sweeper.n_trials)
    except Exception as error:   # a sweep syntax this count does not know: the sweeper will say if it is wrong
        log.debug("cannot count the sweep's jobs in advance (%s)", error)
    return None


def open_sweep_run(config, tracking_uri: str) -> str:
    """Create the sweep's parent run in ``config.logger.experiment_name`` and write where the jobs find it;
    returns its id. Closed by :func:`close_sweep_run` (Hydra's end of the multirun) or, when the sweep stops
    early (a failed job, Ctrl-C), at the process's exit."""
    from mlflow import MlflowClient
    from omegaconf import OmegaConf

    from genre.tracking.store import RUN_KIND_TAG, git_commit

    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    task = [str(o) for o in config.hydra.overrides.task]
    sweeper = str(config.hydra.sweeper.get("_target_", "")).rsplit(".", 1)[-1]
    launcher = str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1]
    swept = swept_settings(task)
    space = config.hydra.sweeper.get("params")
    space = OmegaConf.to_container(space, resolve=False) if space is not None else {}
    swept.update({str(k).replace(".", "/"): str(v) for k, v in space.items()})
    planned = planned_jobs(config)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(config.logger.experiment_name)
    shown = " ".join(f"{k.replace('/', '.')}={v}" for k, v in swept.items()) or " ".join(task)
    tags = {RUN_KIND_TAG: "sweep", "sweep": sweep_dir.name, "sweep_dir": str(sweep_dir),
            "sweep_overrides": " ".join(task), "sweeper": sweeper, "launcher": launcher,
            "git_commit": git_commit(Path(__file__).resolve().parents[2]),
            "mlflow.note.content": f"Sweep `{shown}`: its jobs are the child runs below it; the summary "
                                   f"comes when it ends."}
    if planned is not None:
        tags["jobs_planned"] = str(planned)
    run = client.create_run(experiment.experiment_id, run_name=f"sweep {shown}"[:240], tags=tags)
    run_id = run.info.run_id
    for key, value in swept.items():
        client.log_param(run_id, key, value)
    client.log_param(run_id, "objective", f"{OBJECTIVE} ({config.hydra.sweeper.get('direction', 'maximize')})")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    record = {"run_id": run_id, "tracking_uri": tracking_uri, "experiment_name": config.logger.experiment_name}
    partial = sweep_dir / f".{SWEEP_FILE}.{os.getpid()}"
    partial.write_text(json.dumps(record))
    partial.replace(sweep_dir / SWEEP_FILE)       # a job never reads half of it
    _open.update(run_id=run_id, tracking_uri=tracking_uri)
    atexit.register(_close_at_exit)
    log.info("sweep %s: MLflow parent run %s, its jobs are child runs", sweep_dir.name, run_id)
    return run_id


def parent_tags(sweep_dir: str | Path, tracking_uri: str, experiment_name: str) -> dict[str, str]:
    """The tags that make a job's run a child of its sweep's run: none when the sweep has no parent run or
    the job logs to another store or experiment (MLflow nests runs of one experiment only)."""
    try:
        record = json.loads((Path(sweep_dir) / SWEEP_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if record.get("tracking_uri") != tracking_uri or record.get("experiment_name") != experiment_name:
        return {}
    return {"mlflow.parentRunId": str(record["run_id"])}


def close_sweep_run(completed: bool) -> None:
    """Summarise the parent run this process opened and end it (once): ``completed`` when the sweeper
    returned, i.e. every job it launched returned a result."""
    if not _open.get("run_id") or _open.get("closed"):
        return
    _open["closed"] = True
    from genre.runtime.signals import stopping_signal

    signum = stopping_signal()
    try:
        summarise(str(_open["run_id"]), str(_open["tracking_uri"]), completed=completed and signum is None,
                  interrupted_by=signum)
    except Exception as error:   # the store gone: the jobs' own runs hold everything
        log.warning("could not record the sweep's summary on its MLflow run (%s: %s)", type(error).__name__,
                    str(error)[:200])


def _close_at_exit() -> None:
    close_sweep_run(completed=False)


def _job_number(run) -> int:
    try:
        return int(run.data.tags.get("sweep_job", ""))
    except ValueError:
        return -1


def _metric(run, key: str) -> float:
    value = run.data.metrics.get(key)
    return float(value) if value is not None and math.isfinite(float(value)) else float("nan")


def summarise(parent_id: str, tracking_uri: str, completed: bool, interrupted_by: int | None = None) -> str:
    """Record the sweep's summary on its parent run from its child runs, and set its status; returns it."""
    import signal

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'",
                                  max_results=5000)
    children = sorted(children, key=_job_number)
    by_status: dict[str, list] = {}
    for child in children:
        by_status.setdefault(child.info.status, []).append(child)
    finished = by_status.get("FINISHED", [])
    maximise = parent.data.params.get("objective", "(maximize)").endswith("(maximize)")
    scored = [c for c in finished if not math.isnan(_metric(c, OBJECTIVE))]
    best = (max if maximise else min)(scored, key=lambda c: _metric(c, OBJECTIVE)) if scored else None
    planned = parent.data.tags.get("jobs_planned")
    planned_n = int(planned) if planned and planned.isdigit() else None
    was = parent.data.tags.get("sweep_outcome", "")
    completed = completed or parent.data.tags.get("sweeper_completed") == "true"
    every_run_finished = len(finished) == len(children)
    if interrupted_by is not None:
        outcome = f"interrupted by {signal.Signals(interrupted_by).name}"
    elif was.startswith("interrupted"):
        outcome = was                      # a resumed job does not undo that the sweep was stopped
    elif completed or (planned_n is not None and every_run_finished and len(finished) >= planned_n):
        outcome = "completed"
    else:
        outcome = "stopped: a job failed or died"
    status = "FINISHED" if outcome == "completed" and every_run_finished else "FAILED"
    counts = {"jobs_finished": len(finished), "jobs_failed": len(by_status.get("FAILED", [])),
              "jobs_running": len(by_status.get("RUNNING", []))}
    settings = _settings(children)
    tags = {**{k: str(v) for k, v in counts.items()}, "sweep_outcome": outcome,
            "mlflow.note.content": _note(parent, children, settings, best, outcome, planned_n)}
    if completed:
        tags["sweeper_completed"] = "true"
    if best is not None:
        tags.update(best_run_id=best.info.run_id, best_job=str(_job_number(best)),
                    best_overrides=best.data.tags.get("sweep_overrides", ""),
                    split_protocol=best.data.tags.get("split_protocol", ""))
    for key, value in tags.items():
        client.set_tag(parent_id, key, value)
    if best is not None:
        for key, value in ((f"best/{OBJECTIVE.replace('/', '_')}", _metric(best, OBJECTIVE)),
                           ("best/test_track_acc", _metric(best, "test/track_acc"))):
            history = client.get_metric_history(parent_id, key)
            if not math.isnan(value) and (not history or history[-1].value != value):   # once per value
                client.log_metric(parent_id, key, value, step=len(history))
    client.set_terminated(parent_id, status)
    line = f"sweep {Path(parent.data.tags.get('sweep_dir', '')).name}: {outcome}; " + \
        ", ".join(f"{v} {k.split('_')[1]}" for k, v in counts.items() if v) + \
        (f" of {planned_n} planned" if planned_n is not None else "")
    if best is not None:
        line += f"; best job #{_job_number(best)} ({settings[best.info.run_id]}): " \
                f"{OBJECTIVE} {_metric(best, OBJECTIVE):.3f}, run {best.info.run_id}"
    log.info("%s (parent run %s, %s)", line, parent_id, status)
    return status


def _settings(children: list) -> dict[str, str]:
    """Each job's own settings: its overrides less those every job of the sweep shares."""
    words = {c.info.run_id: c.data.tags.get("sweep_overrides", "").split() for c in children}
    shared = set.intersection(*(set(w) for w in words.values())) if len(words) > 1 else set()
    return {run_id: " ".join(w for w in ws if w not in shared) for run_id, ws in words.items()}


def _note(parent, children: list, settings: dict[str, str], best, outcome: str, planned: int | None) -> str:
    """The parent run's description (Markdown, shown on its page): the outcome and one row per job (``settings``:
    each one's own, by run id)."""
    shown = parent.info.run_name.removeprefix("sweep ")
    lines = [f"Sweep `{shown}`: {outcome}; {len(children)} job runs"
             + (f" of {planned} planned" if planned is not None else "") + ".",
             f"Best job by {OBJECTIVE} (validation; never chosen by a test metric): "
             + (f"#{_job_number(best)} (`{settings[best.info.run_id]}`), run `{best.info.run_id}`."
                if best is not None else "none finished.")]
    if any(c.info.status == "RUNNING" for c in children):
        lines.append("A job left RUNNING was killed outright: resume it with "
                     "`ckpt_path=<its folder>/checkpoints/last.ckpt` and its settings.")
    lines += ["", f"| job | settings | status | {OBJECTIVE} | test/track_acc | split protocol |",
              "|---|---|---|---|---|---|"]
    for child in children:
        cells = [f"{_metric(child, key):.3f}" if not math.isnan(_metric(child, key)) else "-"
                 for key in (OBJECTIVE, "test/track_acc")]
        lines.append(f"| {_job_number(child)} | {settings[child.info.run_id]} | {child.info.status} | "
                     f"{cells[0]} | {cells[1]} | {child.data.tags.get('split_protocol', '')} |")
    return "\n".join(lines)


def refresh_parent(run_id: str, tracking_uri: str) -> None:
    """After a job of a sweep resumed from its checkpoint finished: its sweep's summary is made true again."""
    from mlflow import MlflowClient

    from genre.tracking.store import RUN_KIND_TAG

    client = MlflowClient(tracking_uri)
    parent_id = client.get_run(run_id).data.tags.get("mlflow.parentRunId")
    if not parent_id:
        return
    try:
        parent = client.get_run(parent_id)
        if parent.data.tags.get(RUN_KIND_TAG) == "sweep" and parent.info.status != "RUNNING":
            summarise(parent_id, tracking_uri, completed=False)
    except Exception as error:
        log.warning("could not update the sweep's run %s (%s)", parent_id, type(error).__name__)

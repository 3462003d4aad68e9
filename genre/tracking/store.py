"""MLflow: where runs go (the store, a logger that survives a lost server, the sweep's store set-up).

The default store is a sqlite database in the working directory with artifacts in an absolute
folder beside it (docs/pitfalls.md: Lightning's MLFlowLogger otherwise falls back to the refused file store,
and relative artifact paths land wherever the process happens to run). ``logger.tracking_uri`` may
name any MLflow store, e.g. ``http://host:5000`` for a shared ``mlflow server``.
"""
from __future__ import annotations

import logging
import os
import random
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only

from genre.runtime.errors import ConfigError, TrackingError
from genre.runtime.parallel import file_lock
from genre.tracking.unsent import metrics_line, status_line

log = logging.getLogger(__name__)


def resolve_tracking_uri(tracking_uri: str | None, root_dir: str | Path) -> str:
    """``None`` -> ``sqlite:///<absolute root_dir>/mlflow.db``; anything else as given.

    A URI with a password in it is refused: the URI is recorded in the run's params and checkpoints.
    """
    if tracking_uri:
        if urllib.parse.urlsplit(str(tracking_uri)).password:
            raise ConfigError("logger.tracking_uri holds a password, and the URI is recorded in every run's "
                              "params and checkpoints: drop the user:password@ part and set MLFLOW_TRACKING_USERNAME "
                              "and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the environment instead")
        return str(tracking_uri)
    return f"sqlite:///{(Path(root_dir) / 'mlflow.db').resolve()}"


def resolve_artifact_location(artifact_location: str | None, root_dir: str | Path, experiment_name: str,
                              tracking_uri: str) -> str | None:
    """Where a new experiment's artifacts go: as set; else, for the local store,
    ``<absolute root_dir>/mlartifacts/<name>``; for a tracking server, its own artifact store (None)."""
    if artifact_location:
        return str(artifact_location)
    if is_tracking_server(tracking_uri):
        return None
    return str((Path(root_dir) / "mlartifacts" / experiment_name).resolve())


def git_commit(directory: Path) -> str:
    """The commit of the code that ran, with ``-dirty`` if it had uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def is_tracking_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def check_reachable(tracking_uri: str, timeout_s: float = 10.0) -> None:
    """Stop before any training when a tracking server does not answer its health check."""
    if not is_tracking_server(tracking_uri):
        return
    parts = urllib.parse.urlsplit(tracking_uri)
    shown = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"  # no password
    try:
        with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s):
            pass
    except (urllib.error.URLError, OSError) as error:
        raise TrackingError(f"cannot reach the MLflow tracking server at {shown} "
                            f"({getattr(error, 'reason', error)}); start it (mlflow server --host HOST --port PORT "
                            f"...) or drop logger.tracking_uri to log to the local sqlite store") from None


class ResilientMLFlowLogger(MLFlowLogger):
    """An MLFlowLogger whose metrics survive the tracking server going away mid-run.

    A metrics call that fails is written to ``unsent_metrics.jsonl`` in the run's output directory
    instead (one JSON object per call: step and values) and training goes on; later calls try the
    server again. Checkpoints are local files and are not affected. ``python -m genre.replay`` sends
    the kept metrics (and the run's final status) once the server is back.
    """

    def __init__(self, *args, unsent_path: Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.unsent_path = unsent_path
        self.unsent = 0
        self.already_logged: set[tuple[str, int]] = set()   # (metric, step) the run has
        self.ended = False

    def skip_what_the_run_has(self) -> None:
        """A resumed run repeats the epochs after its last checkpoint; a kill may have come after such an
        epoch's metrics reached the store. What the run already has at a step is not logged again."""
        client = MlflowClient(self._tracking_uri)
        for key in client.get_run(self._run_id).data.metrics:
            self.already_logged |= {(key, m.step) for m in client.get_metric_history(self._run_id, key)}

    @property
    def version(self) -> None:
        """None: the run id is not a version, and the progress bar shows no ``v_num`` (checkpoint folders
        are set by the callbacks, never derived from it)."""
        return None

    @rank_zero_only
    def log_metrics(self, metrics, step=None):
        """Log what the run does not have at ``step`` yet: each metric once per step (Lightning sends its
        ``epoch`` value with the training and again with the validation metrics of a step)."""
        metrics = {k: v for k, v in metrics.items() if (k, step or 0) not in self.already_logged}
        if not metrics:
            return
        self.already_logged |= {(k, step or 0) for k in metrics}
        try:
            super().log_metrics(metrics, step)
        except Exception as error:  # MlflowException, requests' errors: whatever the client raises
            if self.unsent_path is None:
                raise
            if not self.unsent:
                log.warning("the tracking server did not take metrics (%s): training goes on; metrics are kept "
                            "in %s", type(error).__name__, self.unsent_path)
            self.unsent += 1
            self.unsent_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.unsent_path, "a") as f:
                f.write(metrics_line(self._run_id, step, metrics))

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """Lightning's call at the end of ``fit`` and of ``test``: a failure ends the run now, a success does
        not. The run is not finished before its outputs (plots, reports, the model) are recorded: a run
        killed in between stays RUNNING, never FINISHED without them. :meth:`end_run` finishes it."""
        if status not in ("success", "finished"):
            self.end_run(status)

    @rank_zero_only
    def end_run(self, status: str = "success") -> None:
        """Mark the run ``status`` (FINISHED for success), once: a failure Lightning already ended stays as
        it ended. A server gone keeps the status for the replay."""
        if self.ended:
            return
        self.ended = True
        try:
            retry_while_locked(lambda: super(ResilientMLFlowLogger, self).finalize(status), "marking the run ended")
        except Exception as error:
            log.warning("could not mark the MLflow run finished (%s)", type(error).__name__)
            if self.unsent_path is not None and self._run_id is not None:
                with open(self.unsent_path, "a") as f:
                    f.write(status_line(self._run_id, status))
        if self.unsent and self.unsent_path is not None:
            log.warning("%d metrics calls the tracking server refused are in %s; when it is back: "
                        "python -m genre.replay %s --tracking-uri <server>", self.unsent, self.unsent_path,
                        self.unsent_path)


def limit_http_retries() -> None:
    """The MLflow client's defaults retry one call for minutes; a run (or a replay) should notice a lost
    server sooner. Values already set in the environment win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` store, else ``None``."""
    return Path(tracking_uri[len("sqlite:///"):]) if tracking_uri.startswith("sqlite:///") else None


def check_store(tracking_uri: str) -> None:
    """Before any work, without writing anything: a server must answer its health check, and an
    existing sqlite store must be readable and not left half-migrated (named, with what to do)."""
    check_reachable(tracking_uri)
    database = sqlite_path(tracking_uri)
    if database is not None:
        _refuse_interrupted_migration(database)


def open_store(tracking_uri: str, experiment_name: str, artifact_location: str | None) -> None:
    """Create the store's schema and the experiment if they are missing.

    A sqlite store is created by one process at a time, under a lock beside it: MLflow's schema
    migration is not safe to run twice at once, and two first runs started together left
    ``mlflow.db`` half-migrated for good.
    """
    database = sqlite_path(tracking_uri)
    if database is None:
        _ensure_experiment(tracking_uri, experiment_name, artifact_location)
        return
    with file_lock(database.with_name(database.name + ".lock")):
        _refuse_interrupted_migration(database)
        try:
            _ensure_experiment(tracking_uri, experiment_name, artifact_location)
        except Exception as error:   # MLflow and SQLAlchemy raise many types for a damaged file
            raise TrackingError(f"the MLflow store {database} cannot be opened ({type(error).__name__}: "
                                f"{str(error).splitlines()[0][:300]}); if another program damaged it, move it "
                                f"aside (its runs stay in the file) or set logger.tracking_uri to another store") from None


def close_store_connections(tracking_uri: str) -> None:
    """Close the database connections MLflow keeps pooled for ``tracking_uri``. A process about to fork the
    jobs of a sweep (genre.runtime.launcher) must not hand them down: an SQLite connection used on both sides of a
    fork() loses writes (seen: two jobs stopped by Ctrl-C marked their runs FAILED, and both stayed
    RUNNING). The forked jobs open connections of their own. (MLflow caches the store per URI; its
    ``_get_store`` is private, and the engine is the SQL store's.)"""
    from mlflow.tracking._tracking_service.utils import _get_store

    engine = getattr(_get_store(tracking_uri), "engine", None)
    if engine is not None:
        engine.dispose()


def _refuse_interrupted_migration(database: Path) -> None:
    leftovers = _interrupted_migration_tables(database)
    if leftovers:
        raise TrackingError(
            f"the MLflow store {database} was left half-migrated by an interrupted schema upgrade (tables "
            f"{', '.join(leftovers)}); its runs are still in it. Back it up, drop those tables (sqlite3 "
            f"{database} 'DROP TABLE {leftovers[0]};') and run: mlflow db upgrade sqlite:///{database}; "
            f"or move the file aside to start a new store")


def _interrupted_migration_tables(database: Path) -> list[str]:
    """Tables alembic's batch migrations leave behind when they are interrupted."""
    import sqlite3

    if not database.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            names = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    except sqlite3.DatabaseError as error:
        raise TrackingError(f"the MLflow store {database} is not a readable sqlite database ({error}); move it "
                            f"aside or set logger.tracking_uri to another store") from None
    return sorted(name for name in names if name.startswith("_alembic_tmp_"))


def _ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None) -> None:
    client = MlflowClient(tracking_uri)
    if client.get_experiment_by_name(name) is None:
        try:
            client.create_experiment(name, artifact_location)
        except MlflowException as error:
            # another run, started beside this one on a shared server, created it first
            if client.get_experiment_by_name(name) is None:
                raise error from None


def create_logger(experiment_name: str, tracking_uri: str, artifact_location: str | None,
                  run_name: str | None, tags: dict[str, str], run_id: str | None = None,
                  unsent_path: Path | None = None) -> MLFlowLogger:
    if is_tracking_server(tracking_uri):
        limit_http_retries()
    check_reachable(tracking_uri)
    open_store(tracking_uri, experiment_name, artifact_location)
    mlflow.set_tracking_uri(tracking_uri)  # for the fluent API (model logging) too
    logger = ResilientMLFlowLogger(experiment_name=experiment_name, tracking_uri=tracking_uri, run_name=run_name,
                                   tags=tags, artifact_location=artifact_location, run_id=run_id,
                                   log_model=False, unsent_path=unsent_path)
    # a resumed run keeps its name; known now, while the store answers
    logger.run_name = MlflowClient(tracking_uri).get_run(run_id).info.run_name if run_id else run_name
    if run_id is not None:   # resumed: a run interrupted (FAILED) or killed (RUNNING) is running again
        MlflowClient(tracking_uri).update_run(run_id, status="RUNNING")
        logger.skip_what_the_run_has()
    return logger


def start_system_metrics(logger: MLFlowLogger, tracking_uri: str, interval_s: float, resumed: bool):
    """MLflow's system metrics of the run (``system/cpu_utilization_percentage``, memory, disk, network;
    GPU utilisation and memory where pynvml is installed, the ``gpu`` extra), sampled every
    ``interval_s`` seconds in a thread of this process until ``.finish()``. A resumed run continues
    the steps it had."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(logger.run_id, sampling_interval=interval_s, resume_logging=resumed,
                                   tracking_uri=tracking_uri)
    monitor.start()
    return monitor


def log_dataset_input(logger: MLFlowLogger, data) -> None:
    """The run's data as an MLflow dataset input: one row per track it used (id, genre, split), named after
    the dataset, with its digest, split protocol and features digest, so runs on other data show it."""
    import pandas as pd
    from mlflow.data import from_pandas
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    genres = data.genres
    frame = pd.DataFrame([(track_id, genres[label], split) for split in data.rows
                          for track_id, label in zip(data.track_ids[split], data.labels[split], strict=True)],
                         columns=["track_id", "genre", "split"])
    dataset = from_pandas(frame, name=data.index.name, targets="genre")
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, "training"),
            InputTag("split_protocol", data.index.split_protocol),
            InputTag("features_digest", data.features.content_digest)]
    dataset_input = DatasetInput(dataset._to_mlflow_entity(), tags)
    retry_lost_insert_race(lambda: logger.experiment.log_inputs(logger.run_id, datasets=[dataset_input]),
                           f"logging dataset {data.index.name!r} as the run's input")


# How the stores MLflow runs on word a row another writer inserted first: sqlite, PostgreSQL, MySQL/MariaDB,
# SQL Server (as raised in-process, or as a tracking server passes it on in a BAD_REQUEST).
_UNIQUE_VIOLATION = ("UNIQUE constraint failed", "duplicate key value violates unique constraint",
                     "Duplicate entry", "Violation of UNIQUE KEY constraint", "Cannot insert duplicate key")


def retry_lost_insert_race(call, what: str, attempts: int = 5):
    """``call()``, again when it lost a race to insert a row another run inserted first.

    MLflow's stores look a shared row up (a dataset by experiment, name and digest) and insert it when it
    is missing, without a lock: runs of a parallel sweep that log the same dataset at the same moment
    all miss it, and all but the first insert fail on the table's unique key. The call is one transaction,
    rolled back on that error, so calling it again is safe; the next attempt finds the row and links it.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except MlflowException as error:
            if attempt == attempts or not any(sign in str(error) for sign in _UNIQUE_VIOLATION):
                raise
            log.debug("%s lost an insert race with another run (attempt %d), trying again", what, attempt)
            time.sleep(random.uniform(0.05, 0.25) * attempt)


def retry_while_locked(call, what: str, attempts: int = 6):
    """``call()``, again while a local sqlite store answers "database is locked".

    The jobs of a parallel sweep stopped together (Ctrl-C) all mark their runs at the same moment; under
    load one of them met the others' writes past sqlite's busy timeout, and its run stayed RUNNING. The
    update is one transaction, rolled back on that error, so trying it again is safe."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except MlflowException as error:
            if attempt == attempts or "database is locked" not in str(error):
                raise
            log.debug("%s: the sqlite store was locked (attempt %d), trying again", what, attempt)
            time.sleep(random.uniform(0.2, 0.6) * attempt)


def closing_lines(run_name: str, run_id: str, experiment_id: str, output_dir: str, tracking_uri: str) -> list[str]:
    """The last lines of a run: what it is, where its files are, and the command that shows it."""
    if is_tracking_server(tracking_uri):
        show = f"open {tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    else:
        show = (f"{mlflow_command()} ui --backend-store-uri {tracking_uri}   then open "
                f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}")
    return [f"run      {run_name}  (id {run_id})", f"outputs  {output_dir}", f"see it   {show}"]


def program_here(name: str) -> str:
    """How to call this environment's program ``name`` (``python``, ``mlflow``, ``genre-train``) from the
    working directory, as a printed command must be typed: ``name`` when PATH finds this environment's,
    else its path (``.venv/bin/mlflow`` for a venv not activated). Paths are compared as they are, not
    through their links: a venv's ``python`` links to the interpreter it was made from."""
    import shutil
    import sys

    beside = Path(sys.executable) if name == "python" else Path(sys.executable).parent / name
    on_path = shutil.which(name)
    if not beside.is_file() or (on_path and Path(on_path).absolute() == beside.absolute()):
        return name
    try:
        return str(beside.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(beside.absolute())


def mlflow_command() -> str:
    """The ``mlflow`` of this environment, as typed from the working directory (:func:`program_here`)."""
    return program_here("mlflow")



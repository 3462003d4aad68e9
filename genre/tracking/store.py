"""MLflow: where runs go (the store: its URI, its health, its set-up before a run or a sweep, retries of what
a busy store refuses). The run's logger is :mod:`genre.tracking.logger`.

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

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from genre.runtime.errors import ConfigError, TrackingError
from genre.runtime.parallel import file_lock

log = logging.getLogger(__name__)
# A run that is not a training run says what it is: "comparison" (genre.compare), "sweep" (a sweep's parent
# run, genre.tracking.sweep). Whatever lists training runs leaves such runs out.
RUN_KIND_TAG = "genre.kind"


def resolve_tracking_uri(tracking_uri: str | None, root_dir: str | Path) -> str:
    """``None`` -> ``sqlite:///<absolute root_dir>/mlflow.db``; anything else as given.

    A URI with a password in it is refused: the URI is recorded in the run's params and checkpoints.
    """
    if tracking_uri:
        where = _secret_in_uri(str(tracking_uri))
        if where:
            raise ConfigError(f"logger.tracking_uri holds a password ({where}), and the URI is recorded in every "
                              f"run's params and checkpoints: take it out and give it through the environment "
                              f"instead (a server: MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or "
                              f"MLFLOW_TRACKING_TOKEN; a database: PGPASSWORD or ~/.pgpass for PostgreSQL)")
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


# query parameters that carry a secret in database and HTTP URIs (libpq's password and sslpassword, drivers'
# passwd and pwd, tokens and keys)
SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "pass", "sslpassword", "token", "access_token", "secret",
                     "api_key", "apikey", "key")


def _secret_in_uri(uri: str) -> str | None:
    """Where ``uri`` holds a password (``user:password@``, or a query parameter such as ``?password=``), or None."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password:
        return "its user:password@ part"
    for key, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in SECRET_QUERY_KEYS:
            return f"its query's {key}="
    return None


# the default port of each database a SQLAlchemy URI may name (mlflow server's backend stores)
DATABASE_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}


def is_tracking_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def check_reachable(tracking_uri: str, timeout_s: float = 10.0) -> None:
    """Stop before any training when a tracking server does not answer its health check, or a database store
    (``postgresql://...``) does not accept a connection, within ``timeout_s`` (MLflow's own client would retry
    an unreachable database for minutes, silently, after the data is prepared)."""
    if not is_tracking_server(tracking_uri):
        _check_database_reachable(tracking_uri, timeout_s)
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


def _check_database_reachable(tracking_uri: str, timeout_s: float) -> None:
    """A database store's host must accept a TCP connection on its port within ``timeout_s``."""
    import socket

    parts = urllib.parse.urlsplit(tracking_uri)
    dialect = parts.scheme.split("+")[0]
    if dialect not in DATABASE_PORTS or not parts.hostname:
        return   # sqlite, file stores, or a local socket (no host): nothing to reach over the network
    port = parts.port or DATABASE_PORTS[dialect]
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else (error.strerror or type(error).__name__)
        raise TrackingError(f"cannot reach the {dialect} database of logger.tracking_uri at {parts.hostname}:{port} "
                            f"within {timeout_s:g} s ({reason}); start it, or drop logger.tracking_uri to log to the "
                            f"local sqlite store") from None


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

"""Kill a run at any moment, or start two at once: nothing is left behind, nothing hangs, the store
survives (issue: a killed cache build hung every later run; two first runs broke mlflow.db for good)."""
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, mlflow_runs
from genre.runtime.parallel import file_lock

# Two genres of the built-in corpus and an expensive front end (1-ms stride): the feature cache takes
# seconds to build, long enough to kill the run in the middle of it.
SLOW_FEATURES = ["dataset.genres=[classical,metal]", "dataset.tracks_per_genre=8", "dataset.track_seconds=30",
                 "features.stride_ms=1", "features.n_mels=32", "clips.clip_seconds=3", "clips.cache_workers=2",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.enable_progress_bar=false",
                 "trainer.enable_model_summary=false", "model.channels=[4,8,8]", "model.hidden=16"]


def processes_of(root: Path) -> list[int]:
    """Processes whose command line names ``root`` (a run and the workers it forked)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(root).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def train_command(root: Path, extra=()) -> list[str]:
    return [sys.executable, "train.py", f"paths.root_dir={root}", *SLOW_FEATURES, *extra]


@pytest.mark.slow
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_a_run_killed_during_the_feature_cache_leaves_no_process_and_the_next_run_finishes(tmp_path, kill):
    run = subprocess.Popen(train_command(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:   # wait until the cache's workers are busy writing it
        building = list((tmp_path / "cache").glob("features-*.partial-*.h5"))
        if building and len(processes_of(tmp_path)) >= 3:
            break
        assert run.poll() is None, "the run ended before its feature cache was built"
        time.sleep(0.02)
    else:
        pytest.fail("the feature cache build never started")
    run.send_signal(kill)
    run.wait(timeout=30)
    # SIGTERM in data preparation, before any run exists: the same rule as in every phase (genre.runtime.signals)
    assert run.returncode == (143 if kill == signal.SIGTERM else -signal.SIGKILL)
    deadline = time.monotonic() + 5
    while processes_of(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = processes_of(tmp_path)
    for pid in left:                      # do not leave them to the next test either
        os.kill(pid, signal.SIGKILL)
    assert left == [], "processes of the killed run are still alive"

    again = subprocess.run(train_command(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not list((tmp_path / "cache").glob("*.partial-*")) and len(list((tmp_path / "cache").glob("features-*.h5"))) == 1
    assert [r.info.status for r in mlflow_runs(tmp_path)] == ["FINISHED"]


def test_a_run_waiting_for_a_lock_names_the_lock_and_its_holder_and_keeps_saying_so(tmp_path, caplog):
    lock = tmp_path / "cache" / "features-abc.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from genre.runtime.parallel import file_lock\n"
                               "with file_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
                               str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        acquired = threading.Event()

        def wait_for_it():
            with file_lock(lock, report_every_s=0.3):
                acquired.set()

        with caplog.at_level(logging.WARNING, logger="genre.runtime.parallel"):
            waiter = threading.Thread(target=wait_for_it)
            waiter.start()
            time.sleep(1.2)
            assert not acquired.is_set()
            holder.kill()                                   # the holder dies: the lock is free at once
            waiter.join(timeout=10)
        assert acquired.is_set()
        reports = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
        assert len(reports) >= 3                            # said again and again, never silent
        assert str(lock) in reports[0] and f"process {holder.pid}" in reports[0]
    finally:
        holder.kill()


@pytest.mark.slow
def test_two_first_runs_at_once_both_finish_in_one_store(tmp_path):
    command = [sys.executable, "train.py", f"paths.root_dir={tmp_path}", "dataset.tracks_per_genre=4",
               "dataset.track_seconds=6", "dataset.genres=[classical,metal]", "clips.clip_seconds=3",
               "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
               "model.channels=[4,8,8]", "model.hidden=16"]
    runs = [subprocess.Popen(command + [f"seed={seed}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for seed in (1, 2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    stored = mlflow_runs(tmp_path)
    assert sorted(r.data.tags["seed"] for r in stored) == ["1", "2"]
    assert all(r.info.status == "FINISHED" for r in stored)
    tables = {name for (name,) in sqlite3.connect(tmp_path / "mlflow.db").execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    assert not [t for t in tables if t.startswith("_alembic_tmp")]


@pytest.mark.slow   # a whole training command
def test_a_store_left_broken_stops_the_run_before_any_work(tmp_path):
    database = tmp_path / "mlflow.db"
    with sqlite3.connect(database) as connection:   # what an interrupted schema migration leaves
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.execute("CREATE TABLE _alembic_tmp_experiments (experiment_id INTEGER)")
    out = subprocess.run([sys.executable, "train.py", f"paths.root_dir={tmp_path}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert str(database) in out.stderr and "_alembic_tmp_experiments" in out.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "data").exists()


@pytest.mark.slow   # a whole training command
def test_a_run_is_finished_only_once_its_outputs_are_recorded(tmp_path, monkeypatch):
    # Lightning ends the MLflow run when fit ends; the test, plots, reports and model come after. A run
    # killed in between must not show FINISHED without them, and one whose outputs failed shows FAILED.
    import mlflow

    import genre.train as training
    from conftest import compose_config, tiny_overrides

    record = training._record_outputs
    seen = {}

    def record_and_look(cfg, module, data, logger, *rest):
        seen["during outputs"] = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(
            logger.run_id).info.status
        record(cfg, module, data, logger, *rest)

    monkeypatch.setattr(training, "_record_outputs", record_and_look)
    cfg = compose_config("train", tiny_overrides(**{"trainer.max_epochs": 1}), tmp_path)
    finished = training.train(cfg)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert seen["during outputs"] == "RUNNING"
    assert client.get_run(finished["run_id"]).info.status == "FINISHED"

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(training, "_record_outputs", fail)
    with pytest.raises(OSError):
        training.train(compose_config("train", tiny_overrides(**{"trainer.max_epochs": 1}), tmp_path))
    # a failure outside Lightning's loops: after the run started, before training; and in a classical model
    monkeypatch.setattr(training, "build_datamodule", fail)
    with pytest.raises(OSError):
        training.train(compose_config("train", tiny_overrides(**{"trainer.max_epochs": 1}), tmp_path))
    monkeypatch.setattr(training, "log_classical_outputs", fail)
    with pytest.raises(OSError):
        training.train(compose_config("train", [o for o in tiny_overrides() if not o.startswith("model.")]
                                      + ["model=knn"], tmp_path))
    failed = [run for run in mlflow_runs(tmp_path) if run.info.run_id != finished["run_id"]]
    assert len(failed) == 3 and {run.info.status for run in failed} == {"FAILED"}

"""Scaling out by configuration only: DDP on two CPU processes, multirun sweeps (sequential, parallel
against one sqlite store, submitit, Optuna), a real MLflow tracking server, and resume after SIGKILL."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
import yaml

from conftest import ROOT, free_port, mlflow_runs, run_cli, tiny_overrides

pytestmark = pytest.mark.slow


def cli_overrides(root: Path, **extra) -> list[str]:
    return [f"paths.root_dir={root}", *tiny_overrides(**extra)]


def assert_ok(process):
    assert process.returncode == 0, process.stderr[-3000:]
    return process


def the_sweep(root: Path, runs, client=None):
    """The sweep's parent run (one), after checking that every job's run is its child."""
    if client is None:
        [parent] = mlflow_runs(root, sweeps=True)
    else:
        [parent] = [r for r in client.search_runs([runs[0].info.experiment_id])
                    if r.data.tags.get("genre.kind") == "sweep"]
    assert {r.data.tags.get("mlflow.parentRunId") for r in runs} == {parent.info.run_id}
    assert parent.data.tags["sweep"] == runs[0].data.tags["sweep"]
    return parent


def test_ddp_on_two_processes_logs_one_run_evaluated_on_the_whole_test_set(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert_ok(run_cli("train.py", *cli_overrides(single, **{"trainer.max_epochs": 4})))
    assert_ok(run_cli("train.py", "trainer=ddp_sim", *cli_overrides(ddp, **{"trainer.max_epochs": 4})))
    [ddp_run] = mlflow_runs(ddp)                              # one run, not one per process
    [single_run] = mlflow_runs(single)
    assert ddp_run.data.params["processes"] == "2" and ddp_run.data.params["effective_batch_size"] == "16"

    def test_tracks(run, root):
        mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
        text = open(mlflow.MlflowClient().download_artifacts(run.info.run_id, "confusion_matrix_track.csv")).read()
        return sum(int(v) for line in text.splitlines()[1:] for v in line.split(",")[1:])

    assert test_tracks(ddp_run, ddp) == test_tracks(single_run, single) == 4   # the whole set, no rank's share
    # Training differs (two processes, twice the effective batch), so the accuracies may too: a tiny
    # 4-genre test set of 4 tracks allows at most 2 tracks of difference.
    assert abs(ddp_run.data.metrics["test/track_acc"] - single_run.data.metrics["test/track_acc"]) <= 0.5
    # The gathered evaluation itself is exact: one process scores the DDP checkpoint the same.
    evaluated = assert_ok(run_cli("evaluate.py", f"run_id={ddp_run.info.run_id}", f"paths.root_dir={ddp}",
                                  "log_to_mlflow=false"))
    line = [l for l in evaluated.stdout.splitlines() if "evaluate/test/track_acc" in l][0]
    assert float(line.split()[-1]) == pytest.approx(ddp_run.data.metrics["test/track_acc"], abs=1e-4)


def test_multirun_with_relaunching_ddp_is_refused_with_the_way_out(tmp_path):
    out = run_cli("train.py", "-m", "trainer=ddp_sim", "seed=1,2", *cli_overrides(tmp_path))
    assert out.returncode != 0
    assert "trainer.strategy=ddp_spawn" in out.stderr and "Traceback" not in out.stderr.split("error:")[-1]


def test_parallel_sweep_on_the_default_sqlite_store_loses_nothing(tmp_path):
    out = assert_ok(run_cli("train.py", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
                            "features=mel,mfcc", "features.stride_ms=20,40", *cli_overrides(tmp_path)))
    assert "database is locked" not in out.stderr and "duplicate column" not in out.stderr
    runs = mlflow_runs(tmp_path)
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["sweep"] for r in runs}) == 1
    assert sorted(r.data.tags["sweep_job"] for r in runs) == ["0", "1", "2", "3"]
    names = {r.info.run_name for r in runs}         # each job its own readable name in the run list
    assert len(names) == 4 and all(re.fullmatch(r"cnn3-(mel|mfcc)-synthetic-s42-j[0-3]-[0-9a-f]{4}", name)
                                   for name in names), names
    combos = Counter((r.data.tags["features"], float(r.data.params["features/stride_ms"])) for r in runs)
    assert combos == {("mel", 20.0): 1, ("mel", 40.0): 1, ("mfcc", 20.0): 1, ("mfcc", 40.0): 1}
    client = mlflow.MlflowClient()
    for run in runs:   # every metric row of every epoch arrived
        assert len(client.get_metric_history(run.info.run_id, "val/track_acc")) == 3
        assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 3
    # one parent run: the swept settings as params, its jobs as children, the best by validation accuracy
    parent = the_sweep(tmp_path, runs)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep_outcome"] == "completed"
    assert parent.data.params["features"] == "mel,mfcc" and parent.data.params["features/stride_ms"] == "20,40"
    assert parent.data.tags["jobs_planned"] == parent.data.tags["jobs_finished"] == "4"
    best = max(runs, key=lambda r: (r.data.metrics["val/track_acc_best"], -int(r.data.tags["sweep_job"])))
    assert parent.data.metrics["best/val_track_acc_best"] == best.data.metrics["val/track_acc_best"]
    assert parent.data.metrics["best/test_track_acc"] == best.data.metrics["test/track_acc"]
    assert parent.data.tags["best_run_id"] in {r.info.run_id for r in runs
                                               if r.data.metrics["val/track_acc_best"] == best.data.metrics["val/track_acc_best"]}
    assert parent.data.tags["split_protocol"] == best.data.tags["split_protocol"]
    note = parent.data.tags["mlflow.note.content"]
    assert all(f"| {r.data.tags['sweep_job']} | " in note for r in runs) and "FINISHED" in note
    said = out.stdout + out.stderr
    assert "completed; 4 finished of 4 planned; best job #" in said, said[-3000:]


def test_a_killed_job_of_a_parallel_sweep_is_reported_while_the_others_finish(tmp_path):
    """Killing one joblib worker ended the whole sweep with TerminatedWorkerError and left both runs RUNNING."""
    import psutil

    command = [sys.executable, "train.py", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=1,2",
               *cli_overrides(tmp_path, **{"trainer.max_epochs": 6, "logger.system_metrics": "false"})]
    sweep = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "outputs" / "multiruns").glob("*/0/checkpoints/last.ckpt")):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()[1][-3000:]
        time.sleep(0.05)
    # the process running job 0 (seed=1) is the one writing its log, whichever launcher runs it
    [job0] = [p for p in psutil.Process(sweep.pid).children(recursive=True)
              if any(f.path.endswith("/0/train.log") for f in p.open_files())]
    job0.kill()                                             # as the OOM killer would
    _, err = sweep.communicate(timeout=600)
    assert sweep.returncode != 0
    assert "sweep job #0 (seed=1) killed by SIGKILL; the other jobs went on" in err
    status = {r.data.tags["seed"]: r.info.status for r in mlflow_runs(tmp_path)}
    assert status == {"1": "RUNNING", "2": "FINISHED"}      # the killed one resumable, the other complete
    parent = the_sweep(tmp_path, mlflow_runs(tmp_path))     # the sweep's run says what happened
    assert parent.info.status == "FAILED" and parent.data.tags["sweep_outcome"] == "stopped: a job failed or died"
    assert (parent.data.tags["jobs_finished"], parent.data.tags["jobs_running"]) == ("1", "1")
    assert "| 0 | seed=1 | RUNNING |" in parent.data.tags["mlflow.note.content"]
    # the message gives the command that resumes it, with its own last.ckpt (a template before): it works as printed
    [printed] = re.findall(r"resume it with: (.+)", err)
    assert "ckpt_path=" in printed and "<" not in printed and "seed=1" in printed
    resumed = subprocess.run(printed, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    status = {r.data.tags["seed"]: r.info.status for r in mlflow_runs(tmp_path)}
    assert status == {"1": "FINISHED", "2": "FINISHED"}     # the same MLflow run, finished
    parent = the_sweep(tmp_path, mlflow_runs(tmp_path))     # and its sweep complete now, with the true best
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep_outcome"] == "completed"
    assert parent.data.tags["jobs_finished"] == "2" and parent.data.tags["jobs_running"] == "0"
    best = max(mlflow_runs(tmp_path), key=lambda r: (r.data.metrics["val/track_acc_best"], -int(r.data.tags["sweep_job"])))
    assert parent.data.metrics["best/val_track_acc_best"] == best.data.metrics["val/track_acc_best"]
    assert len(mlflow.MlflowClient().get_metric_history(parent.info.run_id, "best/val_track_acc_best")) <= 2


def test_ctrl_c_during_a_parallel_sweep_marks_every_running_job_failed_and_exits_130(tmp_path):
    command = [sys.executable, "train.py", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=1,2",
               *cli_overrides(tmp_path, **{"trainer.max_epochs": 50, "callbacks.early_stopping.patience": 50,
                                           "logger.system_metrics": "false"})]
    sweep = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 300
    while len(list((tmp_path / "outputs" / "multiruns").glob("*/*/checkpoints/last.ckpt"))) < 2:
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()[1][-3000:]
        time.sleep(0.05)
    os.killpg(sweep.pid, signal.SIGINT)                      # Ctrl-C reaches the whole process group
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert [r.info.status for r in mlflow_runs(tmp_path)] == ["FAILED", "FAILED"], err[-3000:]
    parent = the_sweep(tmp_path, mlflow_runs(tmp_path))
    assert parent.info.status == "FAILED" and parent.data.tags["sweep_outcome"] == "interrupted by SIGINT"
    assert parent.data.tags["jobs_failed"] == "2"


def test_submitit_local_runs_the_cluster_code_path(tmp_path):
    assert_ok(run_cli("train.py", "-m", "hydra/launcher=local", "seed=1,2", *cli_overrides(tmp_path)))
    runs = mlflow_runs(tmp_path)
    assert sorted(r.data.tags["seed"] for r in runs) == ["1", "2"]
    assert the_sweep(tmp_path, runs).info.status == "FINISHED"    # pickled jobs found their parent too


def test_optuna_search_maximises_validation_track_accuracy(tmp_path):
    assert_ok(run_cli("train.py", "hparams_search=optuna", "hydra.sweeper.n_trials=3",
                      "hydra.sweeper.sampler.n_startup_trials=2", *cli_overrides(tmp_path)))
    runs = mlflow_runs(tmp_path)
    assert len(runs) == 3 and len({r.data.params["optimizer/lr"] for r in runs}) == 3
    [results] = (tmp_path / "outputs" / "multiruns").rglob("optimization_results.yaml")
    best = max(r.data.metrics["val/track_acc_best"] for r in runs)
    assert yaml.safe_load(results.read_text())["best_value"] == pytest.approx(best, abs=1e-6)
    parent = the_sweep(tmp_path, runs)
    assert parent.info.status == "FINISHED" and parent.data.tags["jobs_planned"] == "3"
    assert parent.data.params["optimizer/lr"] == "tag(log, interval(0.0001, 0.01))"   # the search space
    assert parent.data.metrics["best/val_track_acc_best"] == pytest.approx(best, abs=1e-6)


def start_server(root: Path, port: int, backend_store_uri: str | None = None) -> subprocess.Popen:
    """``mlflow server`` on 127.0.0.1 with a local artifact destination (default store: sqlite under ``root``)."""
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", backend_store_uri or f"sqlite:///{root}/server.db",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGKILL)
    raise RuntimeError("mlflow server did not start")


def test_shared_tracking_server_gets_the_run_and_its_artifacts(tmp_path):
    port = free_port()
    server = start_server(tmp_path / "server", port)
    try:
        uri = f"http://127.0.0.1:{port}"
        assert_ok(run_cli("train.py", f"logger.tracking_uri={uri}", *cli_overrides(tmp_path / "client")))
        client = mlflow.MlflowClient(uri)
        [run] = client.search_runs([client.get_experiment_by_name("genre").experiment_id])
        assert run.info.status == "FINISHED" and "test/track_acc" in run.data.metrics
        assert len(client.get_metric_history(run.info.run_id, "val/track_acc")) == 3
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"confusion_matrix_track.png", "tsne_embeddings.png", "config.yaml"} <= artifacts
        assert (tmp_path / "server" / "artifacts").exists()        # stored by the server, not the client
        assert not (tmp_path / "client" / "mlflow.db").exists()
    finally:
        os.killpg(server.pid, signal.SIGKILL)


def test_unreachable_server_stops_before_training(tmp_path):
    out = run_cli("train.py", f"logger.tracking_uri=http://127.0.0.1:{free_port()}", *cli_overrides(tmp_path))
    assert out.returncode != 0 and "cannot reach the MLflow tracking server" in out.stderr
    assert "Epoch" not in out.stderr and not list(tmp_path.rglob("*.ckpt"))


def test_server_lost_mid_run_training_finishes_and_keeps_checkpoints(tmp_path):
    port = free_port()
    server = start_server(tmp_path / "server", port)
    run = subprocess.Popen([sys.executable, "train.py", f"logger.tracking_uri=http://127.0.0.1:{port}",
                            *cli_overrides(tmp_path / "client", **{"trainer.max_epochs": 6}),
                            "hydra.run.dir=" + str(tmp_path / "run")], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env={**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                                                                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"})
    try:
        deadline = time.time() + 300
        while not list((tmp_path / "run" / "checkpoints").glob("*.ckpt")) and time.time() < deadline:
            time.sleep(0.2)
        os.killpg(server.pid, signal.SIGKILL)                        # the server goes away after epoch 1
        output = run.communicate(timeout=600)[0]   # Hydra's log goes to stdout
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert run.returncode == 0, output[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    unsent_path = tmp_path / "run" / "unsent_metrics.jsonl"
    unsent = unsent_path.read_text().splitlines()
    assert any('"val/track_acc"' in line for line in unsent)      # epochs after the loss, kept locally
    assert '"test/track_acc"' in unsent[-2] and '"status": "FINISHED"' in unsent[-1]
    assert "metrics are kept in" in output and "python -m genre.replay" in output

    # the server comes back (same store): the kept metrics go to the same run, each epoch once
    uri = f"http://127.0.0.1:{port}"
    replay = [sys.executable, "-m", "genre.replay", str(unsent_path), "--tracking-uri", uri]
    assert subprocess.run(replay, cwd=ROOT, capture_output=True, text=True).returncode == 1  # still away
    assert unsent_path.read_text().splitlines() == unsent                                  # nothing lost
    server = start_server(tmp_path / "server", port)
    try:
        done = subprocess.run(replay, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        client = mlflow.MlflowClient(uri)
        [run_info] = client.search_runs([client.get_experiment_by_name("genre").experiment_id])
        history = client.get_metric_history(run_info.info.run_id, "val/track_acc")
        assert sorted(m.step for m in history) == sorted({m.step for m in history}) and len(history) == 6
        assert run_info.info.status == "FINISHED" and "test/track_acc" in run_info.data.metrics
        assert not unsent_path.exists() and unsent_path.with_name("unsent_metrics.sent.jsonl").is_file()
    finally:
        os.killpg(server.pid, signal.SIGKILL)


def test_resume_after_sigkill_continues_the_same_run_once_per_epoch(tmp_path):
    epochs = 8
    args = ["train.py", *cli_overrides(tmp_path, **{"trainer.max_epochs": epochs, "callbacks.early_stopping.patience": 99}),
            f"hydra.run.dir={tmp_path / 'run'}"]
    run = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    import torch

    deadline = time.time() + 300
    while time.time() < deadline:
        if last.is_file():
            try:
                if torch.load(last, weights_only=False, map_location="cpu")["epoch"] >= 2:
                    break
            except Exception:   # being written
                pass
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)                                   # killed in epoch 3 or 4
    run.wait()
    [killed] = mlflow_runs(tmp_path)
    assert killed.info.status == "RUNNING"
    logged_before = len(mlflow.MlflowClient().get_metric_history(killed.info.run_id, "val/track_acc"))
    assert 3 <= logged_before < epochs

    changed = run_cli("train.py", f"ckpt_path={last}", *args[1:], "model.hidden=32")
    assert changed.returncode != 0 and "model differ" in changed.stderr

    assert_ok(run_cli("train.py", f"ckpt_path={last}", *args[1:]))
    [resumed] = mlflow_runs(tmp_path)                                  # the same run, not a second one
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    history = mlflow.MlflowClient().get_metric_history(resumed.info.run_id, "val/track_acc")
    assert sorted(m.step for m in history) == sorted({m.step for m in history}) and len(history) == epochs
    assert "test/track_acc" in resumed.data.metrics


def postgres_bin(program: str) -> str:
    """A PostgreSQL server program (Debian's postgresql package keeps them out of PATH)."""
    found = shutil.which(program) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{program}"),
                                                      reverse=True)), None)
    assert found, (f"PostgreSQL's {program} is missing: install Debian's postgresql package "
                   f"(apt-get install postgresql; .ci/run does)")
    return str(found)


@contextmanager
def postgres_database(port: int):
    """A throw-away PostgreSQL cluster on 127.0.0.1:``port`` with a database ``mlflow`` (user ``mlflow``,
    trust authentication), run as the ``postgres`` user when the tests run as root (initdb refuses root)."""
    as_root = os.geteuid() == 0
    home = Path(tempfile.mkdtemp(prefix="genre-postgres-"))   # not under pytest's 0700 folders: postgres reads it
    if as_root:
        shutil.chown(home, "postgres", "postgres")
    user = ["runuser", "-u", "postgres", "--"] if as_root else []
    data = home / "cluster"

    def run(*command):
        subprocess.run([*user, *command], check=True, capture_output=True, text=True, timeout=120)

    try:
        run(postgres_bin("initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8")
        run(postgres_bin("pg_ctl"), "-D", str(data), "-l", str(home / "server.log"), "-w", "-o",
            f"-p {port} -k {home} -c listen_addresses=127.0.0.1", "start")
        run(postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow")
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*user, postgres_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def test_sweep_against_a_tracking_server_on_postgresql(tmp_path):
    """The README's production path: ``mlflow server`` in front of PostgreSQL, a sweep of 4 jobs 2 at a time."""
    with postgres_database(free_port()) as database:
        port = free_port()
        server = start_server(tmp_path / "server", port, backend_store_uri=database)
        try:
            uri = f"http://127.0.0.1:{port}"
            assert_ok(run_cli("train.py", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
                              f"logger.tracking_uri={uri}", *cli_overrides(tmp_path / "client", **{"trainer.max_epochs": 2}),
                              "seed=1,2,3,4", f"hydra.sweep.dir={tmp_path / 'sweep'}"))
            client = mlflow.MlflowClient(uri)
            runs = [r for r in client.search_runs([client.get_experiment_by_name("genre").experiment_id])
                    if r.data.tags.get("genre.kind") != "sweep"]
            assert sorted(r.data.tags["seed"] for r in runs) == ["1", "2", "3", "4"]
            assert the_sweep(tmp_path, runs, client).info.status == "FINISHED"
            assert all(r.info.status == "FINISHED" for r in runs)
            for run in runs:
                for key in run.data.metrics:
                    steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
                    assert len(steps) == len(set(steps)), f"{key} logged twice at one step in {run.info.run_id}"
                assert len(client.get_metric_history(run.info.run_id, "val/track_acc")) == 2
                assert {"confusion_matrix_track.png", "config.yaml"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
            assert (tmp_path / "server" / "artifacts").exists()           # stored by the server, not the clients
        finally:
            os.killpg(server.pid, signal.SIGKILL)

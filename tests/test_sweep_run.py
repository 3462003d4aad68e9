"""A sweep's MLflow parent run (genre.tracking.sweep), on a store built by hand: its summary is taken from its
child runs, whatever state they are in, and stays true when a killed job is resumed. The sweeps run end to end
(every launcher, a tracking server, a killed job, Ctrl-C) in tests/test_scale_out.py."""

import mlflow
import pytest

from genre.compare import group_runs
from genre.tracking.sweep import parent_tags, refresh_parent, summarise, swept_settings

PROTOCOL = "random-stratified-by-track(train=0.7,val=0.15,test=0.15,seed=0)"


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("genre", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment, run_name="sweep seed=1,2,3",
                               tags={"genre.kind": "sweep", "jobs_planned": "3", "sweep_dir": str(tmp_path / "s")})
    client.log_param(parent.info.run_id, "objective", "val/track_acc_best (maximize)")
    return uri, client, experiment, parent.info.run_id


def job(client, experiment, parent_id, number, val, test, status="FINISHED"):
    run = client.create_run(experiment, tags={"mlflow.parentRunId": parent_id, "sweep_job": str(number),
                                              "sweep_overrides": f"debug=tiny seed={number + 1}",
                                              "split_protocol": PROTOCOL, "seed": str(number + 1)})
    client.log_param(run.info.run_id, "seed", number + 1)
    if val is not None:
        client.log_metric(run.info.run_id, "val/track_acc_best", val)
        client.log_metric(run.info.run_id, "test/track_acc", test)
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_a_completed_sweep_names_its_best_job_by_validation_never_by_test(store):
    uri, client, experiment, parent_id = store
    job(client, experiment, parent_id, 0, 0.50, 0.90)
    best = job(client, experiment, parent_id, 1, 0.75, 0.40)       # best on validation, worst on test
    job(client, experiment, parent_id, 2, 0.60, 0.60)
    assert summarise(parent_id, uri, completed=True) == "FINISHED"
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["best_run_id"] == best
    assert parent.data.tags["best_job"] == "1" and parent.data.tags["best_overrides"] == "debug=tiny seed=2"
    assert parent.data.metrics["best/val_track_acc_best"] == 0.75 and parent.data.metrics["best/test_track_acc"] == 0.40
    assert parent.data.tags["split_protocol"] == PROTOCOL
    note = parent.data.tags["mlflow.note.content"]
    assert "| 1 | seed=2 | FINISHED | 0.750 | 0.400 |" in note     # each job by its own settings only


def test_a_killed_job_leaves_the_sweep_failed_until_it_is_resumed(store):
    uri, client, experiment, parent_id = store
    job(client, experiment, parent_id, 0, 0.50, 0.50)
    killed = job(client, experiment, parent_id, 1, 0.25, 0.25, status="RUNNING")   # SIGKILL: its run stays RUNNING
    job(client, experiment, parent_id, 2, None, None, status="FAILED")
    assert summarise(parent_id, uri, completed=False) == "FAILED"
    parent = client.get_run(parent_id)
    assert parent.data.tags["sweep_outcome"] == "stopped: a job failed or died"
    assert (parent.data.tags["jobs_finished"], parent.data.tags["jobs_running"], parent.data.tags["jobs_failed"]) == \
        ("1", "1", "1")
    assert "RUNNING was killed outright: resume it" in parent.data.tags["mlflow.note.content"]
    # the killed job resumed and finished, better than the other: the summary follows, still FAILED (job 2)
    client.log_metric(killed, "val/track_acc_best", 0.9, step=5)
    client.set_terminated(killed, "FINISHED")
    refresh_parent(killed, uri)
    parent = client.get_run(parent_id)
    assert parent.info.status == "FAILED" and parent.data.tags["best_run_id"] == killed
    assert parent.data.metrics["best/val_track_acc_best"] == 0.9


def test_a_sweep_turns_finished_once_every_planned_job_is(store):
    uri, client, experiment, parent_id = store
    job(client, experiment, parent_id, 0, 0.50, 0.50)
    killed = job(client, experiment, parent_id, 1, 0.25, 0.25, status="RUNNING")
    summarise(parent_id, uri, completed=False)
    assert client.get_run(parent_id).info.status == "FAILED"        # and job 2 never started
    client.set_terminated(killed, "FINISHED")
    refresh_parent(killed, uri)
    assert client.get_run(parent_id).info.status == "FAILED"        # 2 of 3 planned: not complete
    third = job(client, experiment, parent_id, 2, 0.4, 0.4)
    refresh_parent(third, uri)
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep_outcome"] == "completed"
    history = client.get_metric_history(parent_id, "best/val_track_acc_best")
    assert [m.value for m in history] == [0.5] and [m.step for m in history] == [0]   # not logged again


def test_an_interrupted_sweep_stays_interrupted(store):
    uri, client, experiment, parent_id = store
    first = job(client, experiment, parent_id, 0, 0.5, 0.5, status="FAILED")
    assert summarise(parent_id, uri, completed=False, interrupted_by=2) == "FAILED"
    assert client.get_run(parent_id).data.tags["sweep_outcome"] == "interrupted by SIGINT"
    client.set_terminated(first, "FINISHED")
    refresh_parent(first, uri)
    assert client.get_run(parent_id).data.tags["sweep_outcome"] == "interrupted by SIGINT"


def test_the_parent_is_never_compared_as_a_training_run(store):
    uri, client, experiment, parent_id = store
    job(client, experiment, parent_id, 0, 0.5, 0.5)
    client.log_metric(parent_id, "test/track_acc", 0.5)        # even if a metric of that name were on it
    groups = group_runs(client.search_runs([experiment]))
    assert [len(g.run_ids) for g in groups] == [1] and parent_id not in groups[0].run_ids


def test_the_jobs_find_their_parent_only_in_its_own_store_and_experiment(tmp_path):
    (tmp_path / "mlflow_sweep_run.json").write_text(
        '{"run_id": "abc", "tracking_uri": "sqlite:///x.db", "experiment_name": "genre"}')
    assert parent_tags(tmp_path, "sqlite:///x.db", "genre") == {"mlflow.parentRunId": "abc"}
    assert parent_tags(tmp_path, "http://server:5000", "genre") == {}
    assert parent_tags(tmp_path, "sqlite:///x.db", "other") == {}
    assert parent_tags(tmp_path / "missing", "sqlite:///x.db", "genre") == {}


def test_the_swept_settings_are_named_as_the_jobs_log_them():
    assert swept_settings(["seed=1,2,3", "features.stride_ms=20,40", "debug=tiny", "optimizer.lr=range(1,3)"]) == \
        {"seed": "1,2,3", "features/stride_ms": "20,40", "optimizer/lr": "range(1,3)"}

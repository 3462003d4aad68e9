import json

import mlflow
import pytest

from conftest import exit_status
from genre import replay
from genre.tracking import unsent


def test_replay_sends_kept_metrics_once_and_keeps_what_was_refused(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("genre", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    client.log_metric(run_id, "val/acc", 0.5, step=0)             # epoch 0 reached the store
    kept = tmp_path / "unsent_metrics.jsonl"
    kept.write_text(unsent.metrics_line(run_id, 0, {"val/acc": 0.5})   # stored, but its answer was lost
                    + unsent.metrics_line(run_id, 1, {"val/acc": 0.6, "train/loss": 1.5})
                    + unsent.metrics_line(run_id, 2, {"val/acc": 0.7})
                    + unsent.metrics_line("0" * 32, 3, {"val/acc": 0.9})     # a run the store does not know
                    + unsent.status_line(run_id, "success"))
    with pytest.raises(mlflow.exceptions.MlflowException):
        replay.replay(kept, uri)
    left = kept.read_text().splitlines()
    assert len(left) == 2 and json.loads(left[0])["run_id"] == "0" * 32   # sent lines are gone, the rest kept
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "val/acc")] == [(0, 0.5), (1, 0.6), (2, 0.7)]

    kept.write_text(left[1] + "\n")                                # the user drops the stray line
    assert exit_status(replay.main, [str(kept), "--tracking-uri", uri]) == 0
    assert "set the final status of 1 run" in capsys.readouterr().out
    assert client.get_run(run_id).info.status == "FINISHED"
    assert not kept.exists() and (tmp_path / "unsent_metrics.sent.jsonl").is_file()
    assert exit_status(replay.main, [str(kept), "--tracking-uri", uri]) == 2    # nothing left to send: says so
    assert "does not exist" in capsys.readouterr().err


def test_replay_needs_a_tracking_uri(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "unsent_metrics.jsonl").write_text("")
    assert exit_status(replay.main, [str(tmp_path / "unsent_metrics.jsonl")]) == 2
    assert "--tracking-uri" in capsys.readouterr().err


def test_replay_counts_runs_not_status_lines(tmp_path, capsys):
    """A run finalised twice (killed, resumed, finished) has two status lines: one run was marked."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("genre", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    kept = tmp_path / "unsent_metrics.jsonl"
    kept.write_text(unsent.status_line(run_id, "failed") + unsent.metrics_line(run_id, 4, {"val/acc": 0.7})
                    + unsent.status_line(run_id, "success"))
    assert exit_status(replay.main, [str(kept), "--tracking-uri", uri]) == 0
    assert "set the final status of 1 run(s)" in capsys.readouterr().out
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_line_cut_short_by_a_kill_is_skipped_and_reported_and_the_rest_is_sent(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("genre", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    torn = unsent.metrics_line(run_id, 2, {"val/acc": 0.8})[:25]
    kept = tmp_path / "unsent_metrics.jsonl"
    kept.write_text(unsent.metrics_line(run_id, 1, {"val/acc": 0.6}) + torn + "\n"
                    + unsent.metrics_line(run_id, 3, {"val/acc": 0.9}) + unsent.status_line(run_id, "success"))
    assert exit_status(replay.main, [str(kept), "--tracking-uri", uri]) == 0
    out = capsys.readouterr()
    assert "skipped 1 line(s)" in out.err and "line 2" in out.err and "sent 2 metric values" in out.out
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "val/acc")] == [(1, 0.6), (3, 0.9)]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_refused_record_gets_advice_that_can_help_not_wait_for_the_store(tmp_path, capsys):
    """The advice after a refused line was "run this again when the store is back", which cannot help."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.MlflowClient(uri).create_experiment("genre", artifact_location=str(tmp_path / "artifacts"))
    kept = tmp_path / "unsent_metrics.jsonl"
    kept.write_text(unsent.metrics_line("0" * 32, 3, {"val/acc": 0.9}))      # a run the store does not know
    assert exit_status(replay.main, [str(kept), "--tracking-uri", uri]) == 1
    said = capsys.readouterr().err
    assert f"refused the record now on line 1 of {kept} (run {'0' * 32})" in said
    assert "remove that line" in said and "when the store is back" not in said

"""A new user's first hour (issue 30): commands the console prints must work as printed, typos get the
project's own advice, and a model says what it was trained on. Each test failed before its fix."""
from __future__ import annotations

import re

import pytest

from conftest import mlflow_runs, run_cli, tiny_overrides, write_tone


@pytest.mark.slow   # a classical run end to end (seconds), then evaluate.py on it
def test_a_classical_run_prints_no_app_command_and_evaluate_says_why_it_has_no_checkpoint(tmp_path):
    """``model=svm`` ended with ``try it genre-app run_id=...``, which answered "no checkpoint (neither None
    nor a logged one)"."""
    overrides = [o for o in tiny_overrides() if not o.startswith("model.")] + ["model=knn"]
    out = run_cli("train.py", f"paths.root_dir={tmp_path}", *overrides)
    assert out.returncode == 0, out.stderr[-3000:]
    said = out.stdout + out.stderr
    assert "see it" in said and "try it" not in said and "genre-app" not in said
    [run] = mlflow_runs(tmp_path)
    song = write_tone(tmp_path / "song.wav", 4.0)
    answer = run_cli("evaluate.py", f"run_id={run.info.run_id}", f"tracking_uri=sqlite:///{tmp_path}/mlflow.db",
                     f"audio={song}")
    assert answer.returncode == 2
    assert "None" not in answer.stderr and "Traceback" not in answer.stderr
    assert re.search(rf"run {run.info.run_id} has no checkpoint: it trained knn, which keeps none", answer.stderr)

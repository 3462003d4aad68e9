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


@pytest.mark.parametrize("typed, meant", [
    (["feature=mfcc"], "did you mean features=mfcc?"),
    (["clips.batch_sise=8"], "did you mean clips.batch_size=8?"),
    (["model=cnn"], "did you mean model=cnn3? its options: cnn3,"),
    (["trainer.max_epoch=3"], "did you mean trainer.max_epochs=3?"),
    (["debug=tiny", "model=resnet", "model.chanels=8"], "did you mean model.channels=8?"),
    (["-m", "seed=1,2", "model=cnn3,resnt"], "did you mean model=resnet?"),
])
def test_a_typo_gets_one_line_with_the_closest_valid_name_and_exit_2(typed, meant):
    """Hydra answered ``feature=mfcc`` with "To append to your config use +feature=mfcc", and exit 1."""
    out = run_cli("train.py", *typed, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    assert meant in out.stderr and "append" not in out.stderr


def test_evaluate_and_the_app_get_the_same_advice():
    out = run_cli("evaluate.py", "ckpt_path=x.ckpt", "audio=song.wav", "similr=3", timeout=120)
    assert out.returncode == 2 and "did you mean similar=3?" in out.stderr
    out = run_cli("-m", "genre.app", "run_id=x", "prot=9000", timeout=120)
    assert out.returncode == 2 and "did you mean port=9000?" in out.stderr, out.stderr


def test_valid_settings_of_any_group_pass_the_check():
    out = run_cli("train.py", "debug=tiny", "features=mfcc", "model=resnet", "features.n_mfcc=13",
                  "dataset.fractions={train: 0.5, val: 0.25, test: 0.25}", "--cfg", "job", timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "n_mfcc: 13" in out.stdout


def test_a_setting_that_must_be_given_is_not_called_a_typo(tmp_path):
    """``dataset=folder dataset.root=...``: the folder's root is ``???`` until given."""
    out = run_cli("train.py", "dataset=folder", f"dataset.root={tmp_path}", "--cfg", "job", timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_joblib_launcher_is_refused_with_the_one_that_survives_a_dead_job(tmp_path):
    """Issue 31: one dead joblib worker stopped the sweep within 1 s and left a child run RUNNING."""
    out = run_cli("train.py", "-m", "hydra/launcher=joblib", "seed=1,2", f"paths.root_dir={tmp_path}", timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "use hydra/launcher=parallel" in out.stderr and out.stderr.count("\n") == 1
    assert not (tmp_path / "mlflow.db").exists()

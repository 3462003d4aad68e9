"""Invalid settings stop with a message naming the setting, before any corpus, cache or epoch."""
import subprocess
import sys

import pytest

from conftest import ROOT, compose_config, tiny_overrides
from genre.runtime.errors import DatasetError, GenreError
from genre.train import train


@pytest.mark.parametrize("override, named", [
    ("features.stride_ms=0", "stride_ms"),
    ("features.window_ms=-1", "window_ms"),
    ("features=mfcc features.n_mfcc=40 features.n_mels=32", "n_mfcc"),
    ("features.window_ms=4000", "window_ms"),           # longer than the 3-s clip
    ("clips.clip_seconds=9", "clip_seconds"),             # longer than the 6-s tracks
    ("dataset.genres=[classical,polka]", "polka"),
    ("dataset.fractions.test=0.5", "fractions"),
    ("logger.tracking_uri=http://127.0.0.1:9", "cannot reach the MLflow tracking server"),  # nothing listens
    ("logger.tracking_uri=http://ann:hunter2@127.0.0.1:9", "MLFLOW_TRACKING_PASSWORD"),
])
def test_invalid_settings_fail_before_training(tmp_path, override, named):
    cfg = compose_config("train", tiny_overrides() + override.split(), tmp_path)
    with pytest.raises(GenreError, match=named):
        train(cfg)
    assert not (tmp_path / "mlflow.db").exists()          # no run was started
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("features-*"))


def test_a_password_in_the_tracking_uri_is_refused_without_repeating_it(tmp_path):
    cfg = compose_config("train", tiny_overrides() + ["logger.tracking_uri=https://ann:hunter2@mlflow.example:443"],
                         tmp_path)
    with pytest.raises(GenreError) as refused:
        train(cfg)
    assert "logger.tracking_uri" in str(refused.value) and "hunter2" not in str(refused.value)
    assert not (tmp_path / "cache").exists()               # refused before the corpus and caches


def test_missing_gtzan_folder_says_what_was_expected_and_where_to_get_it(tmp_path):
    cfg = compose_config("train", ["dataset=gtzan", f"dataset.root={tmp_path}/nowhere"], tmp_path)
    with pytest.raises(DatasetError, match=r"does not exist.*genres/<genre>/<genre>\.000NN\.au.*Kaggle"):
        train(cfg)


def test_command_line_prints_the_message_not_a_traceback(tmp_path):
    out = subprocess.run([sys.executable, "train.py", "features.stride_ms=0", f"paths.root_dir={tmp_path}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "error: features.stride_ms=0" in out.stderr and "Traceback" not in out.stderr


def test_a_checkpoint_that_is_missing_or_not_genres_is_named(tmp_path):
    import torch

    from genre.assembly.build import load_classifier
    from genre.runtime.errors import ConfigError

    with pytest.raises(ConfigError, match=r"ckpt_path=.*nothing.ckpt does not exist"):
        load_classifier(tmp_path / "nothing.ckpt")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ConfigError, match=r"foreign.ckpt was not written by genre's train.py"):
        train(compose_config("train", tiny_overrides() + [f"ckpt_path={foreign}"], tmp_path))

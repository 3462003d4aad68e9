"""What a shared store, a slow server or a hostile name still broke (issue 31, after the configs that ran
code: tests/test_config_targets.py). Each test reproduces one report and failed before its fix."""
from __future__ import annotations

import socket
import time

import pytest

from conftest import compose_config, tiny_overrides


@pytest.mark.parametrize("uri", ["postgresql://u@db.example/mlflow?password=hunter2",
                                 "postgresql://u@db.example/mlflow?sslmode=require&PASSWORD=hunter2",
                                 "mysql+pymysql://u@db.example/mlflow?passwd=hunter2",
                                 "https://mlflow.example/?token=hunter2",
                                 "postgresql://u:hunter2@db.example/mlflow"])
def test_a_password_anywhere_in_the_tracking_uri_is_refused_without_repeating_it(uri):
    from genre.runtime.errors import ConfigError
    from genre.tracking.store import resolve_tracking_uri

    with pytest.raises(ConfigError, match="logger.tracking_uri holds a password") as refused:
        resolve_tracking_uri(uri, ".")
    assert "hunter2" not in str(refused.value)


def test_a_uri_without_a_password_passes():
    from genre.tracking.store import resolve_tracking_uri

    uri = "postgresql://mlflow@127.0.0.1:5432/mlflow?sslmode=require"
    assert resolve_tracking_uri(uri, ".") == uri


def test_an_unreachable_database_store_stops_the_run_before_any_work_in_one_line(tmp_path):
    """It hung inside MLflow's retry loop after the data was prepared, with no message."""
    from genre.runtime.errors import TrackingError
    from genre.train import train

    with socket.socket() as probe:      # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = compose_config("train", tiny_overrides(**{"logger.tracking_uri": f"postgresql://u@127.0.0.1:{port}/db"}),
                         tmp_path)
    started = time.monotonic()
    with pytest.raises(TrackingError, match=rf"cannot reach the postgresql database of logger.tracking_uri at "
                                            rf"127.0.0.1:{port} within"):
        train(cfg)
    assert time.monotonic() - started < 30
    assert not (tmp_path / "data").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name, content", [("passwd", b"root:x:0:0:root:/root:/bin/bash\n" * 20),
                                           ("zeros.ckpt", bytes(4096)), ("empty.ckpt", b"")])
def test_a_file_that_is_no_checkpoint_is_named_not_a_traceback(tmp_path, name, content):
    """``ckpt_path=/etc/passwd`` gave an IndexError traceback from torch's unpickler."""
    from genre.models.predictor import read_checkpoint
    from genre.runtime.errors import ConfigError

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"ckpt_path=.*{name} cannot be read as a checkpoint"):
        read_checkpoint(path)


@pytest.mark.slow   # a whole training command
def test_a_run_whose_loss_runs_away_without_reaching_nan_is_failed_with_what_to_change(tmp_path):
    """``optimizer.lr=1e6`` grew the loss to 9e35; the run exited 0, FINISHED, with a chance-level model."""
    from conftest import mlflow_runs
    from genre.runtime.errors import TrainingDiverged
    from genre.train import train

    cfg = compose_config("train", tiny_overrides(**{"optimizer.lr": 1e6, "trainer.max_epochs": 3,
                                                    "divergence.steps": 3, "logger.system_metrics": "false"}),
                         tmp_path)
    with pytest.raises(TrainingDiverged, match=r"training diverged: the training loss is \S+e\+\d+ at epoch \d, step "
                                               r"\d+, above 10 x its reference .* for 3 steps running "
                                               r"\(divergence.factor, divergence.steps\).*optimizer.lr=1000000.0"):
        train(cfg)
    [run] = mlflow_runs(tmp_path)
    assert run.info.status == "FAILED"
    assert "test/track_acc" not in run.data.metrics


def test_the_divergence_settings_are_checked_with_the_others(tmp_path):
    from genre.runtime.errors import ConfigError
    from genre.runtime.settings import check_settings

    cfg = compose_config("train", ["divergence.factor=0.5", "divergence.steps=0"], tmp_path)
    with pytest.raises(ConfigError, match=r"(?s)divergence.factor=0.5: must be a number > 1.*divergence.steps=0"):
        check_settings(cfg)


def test_file_names_that_are_not_utf8_are_read_and_reported_escaped(tmp_path):
    """``\\xff\\xfe-latin.wav`` was called unreadable, and the run crashed writing skipped_files.csv after training
    (a UnicodeEncodeError in MLflow's log_text), FAILED with no model logged."""
    import os

    import numpy as np
    import soundfile as sf

    from genre.assembly.build import build_frontend, prepare_data
    from genre.data.index import skipped_csv

    corpus = tmp_path / "c"
    for g, genre in enumerate(("jazz", "rock", "metal")):
        for i in range(3):
            (corpus / genre).mkdir(parents=True, exist_ok=True)
            t = np.arange(22050 * 4) / 22050
            sf.write(str(corpus / genre / f"{genre}{i}.wav"), 0.5 * np.sin(2 * np.pi * (220 * (g + 1) + 30 * i) * t),
                     22050)
    latin = os.fsencode(corpus / "jazz") + b"/\xff\xfe-latin.wav"
    sf.write(latin, 0.5 * np.sin(np.arange(22050 * 4) * 0.07), 22050)
    with open(os.fsencode(corpus / "rock") + b"/\xff-broken.wav", "wb") as f:
        f.write(b"RIFF" + bytes(50_000))
    cfg = compose_config("train", ["dataset=folder", f"dataset.root={corpus}", "dataset.track_seconds=4",
                                   "clips.clip_seconds=2", "clips.cache_workers=1", "features.n_mels=32",
                                   "dataset.fractions={train: 0.34, val: 0.33, test: 0.33}"], tmp_path)
    data = prepare_data(cfg, build_frontend(cfg.features))
    kept = [track for split in data.track_ids.values() for track in split]
    assert "jazz/\\xff\\xfe-latin" in kept and len(kept) == 10
    [skipped] = data.skipped
    assert skipped.reason.startswith("unreadable audio: the file is damaged")
    written = skipped_csv(data.skipped)
    written.encode("utf-8")                        # what MLflow's log_text does with it
    assert "rock/\\xff-broken.wav,unreadable audio" in written


def test_a_damaged_cache_is_said_and_built_again_not_trusted_or_fatal(tmp_path, caplog):
    """64 bytes overwritten inside an HDF5 cache gave ``KeyError: ... bad symbol table node signature`` on every
    run, and the cache was never rebuilt."""
    import logging

    import numpy as np

    from conftest import write_tone
    from genre.data.cache import build_audio_cache
    from genre.data.index import Track

    tracks = [Track(f"t{i}", write_tone(tmp_path / f"t{i}.wav", 2.0, 8000, frequency=300 + 50 * i), "blues")
              for i in range(3)]
    first = build_audio_cache(tracks, 8000, 8000, tmp_path / "cache", num_workers=1)
    data = bytearray(first.path.read_bytes())
    where = data.find(b"SNOD")              # the root group's symbol table node
    assert where > 0
    data[where:where + 64] = np.random.default_rng(0).bytes(64)
    first.path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        again = build_audio_cache(tracks, 8000, 8000, tmp_path / "cache", num_workers=1)
    assert again.track_ids == ["t0", "t1", "t2"]
    assert f"the cache {first.path} cannot be read" in caplog.text and "building it again" in caplog.text
    from genre.data.cache import open_rows

    with open_rows(again.path) as rows:
        assert rows.shape == (3, 8000) and np.abs(rows[0]).max() > 0.1


@pytest.mark.parametrize("excerpt", ["start", "middle", 20.0, 55.0])
def test_a_long_file_gives_the_same_excerpt_streamed_with_memory_of_the_excerpt(tmp_path, monkeypatch, excerpt):
    """The corpus cache and the app decoded whole files: a 3-hour WAV used for 6 s peaked at 4.0 GB."""
    import tracemalloc

    import numpy as np
    import soundfile as sf

    import genre.data.audio as audio

    rate, seconds = 8000, 60.0
    t = np.arange(int(rate * seconds)) / rate
    path = tmp_path / "long.wav"
    sf.write(str(path), (0.5 * np.sin(2 * np.pi * 220 * t) * (1 + t / seconds) / 2).astype(np.float32), rate,
             subtype="FLOAT")
    n = 6 * rate
    whole, available = audio.load_excerpt(path, rate, n, excerpt)           # under the threshold: decoded whole
    monkeypatch.setattr(audio, "STREAM_ABOVE_SECONDS", 10.0)
    tracemalloc.start()
    streamed, streamed_available = audio.load_excerpt(path, rate, n, excerpt, block_seconds=2.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert streamed_available == available == len(t)
    np.testing.assert_array_equal(streamed, whole)
    assert peak < 0.5 * len(t) * 4, f"{peak} bytes for an excerpt of {n * 4}"   # not the whole file's samples


def test_a_lock_another_user_made_can_still_be_taken_and_new_ones_follow_the_umask(tmp_path, monkeypatch):
    """A cache built by one user could not be shared with another: the lock file was 0644 and only its owner
    could open it to write."""
    import builtins
    import os

    import genre.runtime.parallel as parallel

    previous = os.umask(0o002)
    try:
        with parallel.file_lock(tmp_path / "ours.lock"):
            pass
    finally:
        os.umask(previous)
    assert (tmp_path / "ours.lock").stat().st_mode & 0o777 == 0o664

    theirs = tmp_path / "theirs.lock"
    theirs.write_text("")

    def as_another_user(file, mode="r", *args, **kwargs):   # (the tests may run as root, who writes anything)
        if str(file) == str(theirs) and mode != "r":
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, mode, *args, **kwargs)

    monkeypatch.setattr(parallel, "open", as_another_user, raising=False)
    with parallel.file_lock(theirs):
        assert theirs.read_text() == ""      # held, read-only: nothing written into another user's file


def test_a_length_typed_as_6_or_6_0_names_one_corpus(tmp_path):
    roots = {str(compose_config("train", [f"dataset.track_seconds={v}"], tmp_path).dataset.root) for v in ("6", "6.0")}
    assert len(roots) == 1 and roots.pop().endswith("x6s-seed0")


def test_evaluate_run_id_fetches_a_logged_checkpoint_once_into_the_cache_and_leaves_no_temporary_copy(tmp_path,
                                                                                                     monkeypatch):
    """Every ``evaluate.py run_id=`` call left a copy of the checkpoint in a temporary folder."""
    import types

    import mlflow

    from genre.evaluate import find_checkpoint

    downloads = []

    class Client:
        def __init__(self, uri):
            pass

        def get_run(self, run_id):
            return types.SimpleNamespace(data=types.SimpleNamespace(tags={"model": "cnn3"}))

        def list_artifacts(self, run_id, path):
            return [types.SimpleNamespace(path="checkpoints/best-02.ckpt")]

        def download_artifacts(self, run_id, path, dst_path=None):
            assert dst_path is not None, "downloaded into a temporary folder"
            downloads.append(path)
            target = tmp_path.joinpath(dst_path, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"checkpoint")
            return str(target)

    monkeypatch.setattr(mlflow, "MlflowClient", Client)
    cache = tmp_path / "cache"
    first = find_checkpoint("abc123", "sqlite:///x.db", cache)
    second = find_checkpoint("abc123", "sqlite:///x.db", cache)
    assert first == second == cache / "checkpoints" / "abc123" / "best-02.ckpt" and first.read_bytes() == b"checkpoint"
    assert downloads == ["checkpoints/best-02.ckpt"]
    assert sorted(p.name for p in first.parent.iterdir()) == ["best-02.ckpt"]

"""What a careful user still breaks: hostile checkpoints, audio and tracklists, full disks, stray signals
(issue 24). Each test reproduces one report and failed before its fix."""
from __future__ import annotations

import os

import pytest

from conftest import compose_config, tiny_overrides


class _RunsACommand:
    """Unpickled, this runs a shell command: what a hostile checkpoint holds."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _hostile_checkpoint(tmp_path):
    import torch

    marker = tmp_path / "the-command-ran"
    path = tmp_path / "shared-run.ckpt"
    torch.save({"genre": {"config": {}, "genres": ["a", "b"], "clip_frames": 10, "payload": _RunsACommand(marker)},
                "state_dict": {}}, path)
    return path, marker


def test_a_checkpoint_holding_code_is_refused_for_evaluation_and_for_resume_and_runs_nothing(tmp_path):
    from genre.errors import ConfigError
    from genre.evaluate import evaluate
    from genre.train import train

    path, marker = _hostile_checkpoint(tmp_path)
    with pytest.raises(ConfigError, match=r"shared-run.ckpt holds more than plain data \(.*GLOBAL posix.system.*"
                                          r"refused"):
        evaluate(compose_config("evaluate", [f"ckpt_path={path}", "audio=song.wav"], tmp_path))
    with pytest.raises(ConfigError, match=r"shared-run.ckpt holds more than plain data"):
        train(compose_config("train", tiny_overrides() + [f"ckpt_path={path}"], tmp_path))
    assert not marker.exists(), "loading the checkpoint ran the command pickled in it"


def test_a_truncated_checkpoint_is_named_not_a_traceback(tmp_path):
    import torch

    from genre.build import read_checkpoint
    from genre.errors import ConfigError

    whole = tmp_path / "whole.ckpt"
    torch.save({"genre": {"run_id": "x"}, "state_dict": {"w": torch.zeros(10_000)}}, whole)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    assert read_checkpoint(whole)["genre"] == {"run_id": "x"}
    with pytest.raises(ConfigError, match=r"ckpt_path=.*cut.ckpt cannot be read as a checkpoint .*damaged or cut short"):
        read_checkpoint(cut)


def _folder_corpus(root, genres=("classical", "metal", "reggae"), per_genre=3, seconds=4.0):
    from conftest import write_tone

    for g, genre in enumerate(genres):
        for i in range(per_genre):
            write_tone(root / genre / f"{genre}{i}.wav", seconds, frequency=220.0 * (g + 1) + 30 * i)
    return root


def test_a_float_wav_with_absurd_samples_is_skipped_and_reported_and_refused_by_evaluate(tmp_path):
    import numpy as np
    import soundfile as sf

    from genre.build import build_frontend, prepare_data
    from genre.data.audio import load_audio
    from genre.errors import AudioDecodeError

    corpus = _folder_corpus(tmp_path / "music")
    wave = 0.3 * np.sin(np.linspace(0, 2000, 22050 * 4)).astype(np.float32)
    wave[1000] = 1e30
    sf.write(str(corpus / "metal" / "overflow.wav"), wave, 22050, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match=r"overflow.wav: samples up to 1e\+30, far beyond full scale"):
        load_audio(corpus / "metal" / "overflow.wav", 22050)

    cfg = compose_config("train", ["dataset=folder", f"dataset.root={corpus}", "dataset.track_seconds=4",
                                   "clips.clip_seconds=2", "clips.cache_workers=1", "features.n_mels=32",
                                   "dataset.fractions={train: 0.34, val: 0.33, test: 0.33}"], tmp_path)
    data = prepare_data(cfg, build_frontend(cfg.features))
    assert [(s.path.rsplit("/", 1)[-1], s.reason.split(",")[0]) for s in data.skipped] == \
        [("overflow.wav", "samples up to 1e+30")]
    assert np.isfinite(data.band_mean).all() and np.isfinite(data.band_std).all()


def test_band_statistics_refuse_non_finite_features(tmp_path):
    import h5py
    import numpy as np

    from genre.data.cache import CachedTracks, band_statistics
    from genre.errors import DatasetError

    path = tmp_path / "features-x.h5"
    rows = np.ones((3, 4, 5), dtype=np.float32)
    rows[1, 2, 3] = np.inf
    with h5py.File(path, "w") as f:
        f["features"] = rows
    cached = CachedTracks(path, "x", ["a", "b", "c"], [], "d")
    assert np.isfinite(band_statistics(cached, [0, 2])[0]).all()
    with pytest.raises(DatasetError, match=r"not finite for some training tracks"):
        band_statistics(cached, [0, 1, 2])


def test_a_run_whose_loss_becomes_nan_stops_says_so_and_is_failed(tmp_path):
    from conftest import mlflow_runs
    from genre.errors import TrainingDiverged
    from genre.train import train

    cfg = compose_config("train", tiny_overrides(**{"optimizer.lr": 1e12, "trainer.max_epochs": 3,
                                                    "logger.system_metrics": "false"}), tmp_path)
    with pytest.raises(TrainingDiverged, match=r"training diverged: the training loss is (nan|inf) at epoch 0.*"
                                               r"optimizer.lr=1000000000000.0"):
        train(cfg)
    [run] = mlflow_runs(tmp_path)
    assert run.info.status == "FAILED"
    assert "test/track_acc" not in run.data.metrics

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"


def compose_config(config_name: str, overrides: list[str], root: Path):
    """The config ``python <config_name>.py <overrides>`` would get, with every path under ``root``."""
    paths = [f"paths.root_dir={root}", f"paths.output_dir={root}/output"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=config_name, overrides=paths + list(overrides))


def tiny_overrides(**extra) -> list[str]:
    """A run small enough for a test: 4 genres x 6 tracks x 6 s, 3-s clips, few epochs."""
    settings = {
        "dataset.tracks_per_genre": 6, "dataset.track_seconds": 6.0,
        "dataset.genres": "[classical,disco,metal,reggae]",
        "clips.clip_seconds": 3.0, "clips.batch_size": 8, "clips.cache_workers": 1,
        "features.n_mels": 32, "model.channels": "[4,8,8]", "model.hidden": 16,
        "trainer.max_epochs": 3, "trainer.enable_progress_bar": False,
        "trainer.enable_model_summary": False,
    }
    settings.update(extra)
    return [f"{k}={v}" for k, v in settings.items()]


def write_tone(path: Path, seconds: float, sample_rate: int = 22050, frequency: float = 440.0,
               channels: int = 1, **kwargs) -> Path:
    """A sine tone file in whatever format the suffix names (.wav/.au/.flac/.ogg/.mp3)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.3 * np.sin(2 * np.pi * frequency * t)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate, **kwargs)
    return path


@pytest.fixture
def tmp_root(tmp_path: Path) -> Path:
    return tmp_path


def run_cli(*args: str, timeout: int = 600, env: dict | None = None):
    """``python <args>`` from the repository root, as a user types it; returns the finished process."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def mlflow_runs(root: Path, experiment: str = "genre"):
    """The runs of ``experiment`` in the default sqlite store under ``root``."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


def exit_status(main, argv: list[str]) -> int:
    """The exit status of a command's ``main(argv)``: its return value, or the status it leaves with
    (a user error leaves through :func:`genre.runtime.errors.exit_on_user_error` with status 2)."""
    try:
        return main(argv)
    except SystemExit as leaving:
        return leaving.code


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

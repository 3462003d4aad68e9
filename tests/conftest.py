from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"


def compose_config(config_name: str, overrides: list[str], root: Path):
    """The config ``python <config_name>.py <overrides>`` would get, with every path under ``root``."""
    from genre.assembly.build import compose_config as compose

    return compose(config_name, [f"paths.root_dir={root}", f"paths.output_dir={root}/output", *overrides])


def tiny_overrides(*drop: str, **extra) -> list[str]:
    """A run small enough for a test: ``debug=tiny`` (conf/debug/tiny.yaml: 4 genres x 6 tracks x 6 s, 3-s
    clips, a tiny network, 3 epochs) written out as ``key=value`` overrides, so that a test can leave some out
    or change them (``extra``) or drop them (``drop``)."""
    from omegaconf import OmegaConf

    def flat(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    settings = dict(flat(OmegaConf.to_container(OmegaConf.load(CONF / "debug" / "tiny.yaml"))))
    settings.update(extra)
    for key in drop:
        settings.pop(key)
    return [f"{k}=[{','.join(map(str, v))}]" if isinstance(v, list) else f"{k}={v}" for k, v in settings.items()]


def write_tone(path: Path, seconds: float, sample_rate: int = 22050, frequency: float = 440.0,
               channels: int = 1, **kwargs) -> Path:
    """A sine tone file in whatever format the suffix names (.wav/.au/.flac/.ogg/.mp3)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.3 * np.sin(2 * np.pi * frequency * t)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate, **kwargs)
    return path


def run_cli(*args: str, timeout: int = 600, env: dict | None = None):
    """``python <args>`` from the repository root, as a user types it; returns the finished process."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def mlflow_runs(root: Path, experiment: str = "genre", sweeps: bool = False):
    """The training runs of ``experiment`` in the default sqlite store under ``root`` (``sweeps``: the parent
    runs of its sweeps instead)."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    return [r for r in runs if (r.data.tags.get("genre.kind") == "sweep") == sweeps]


def exit_status(main, argv: list[str]) -> int:
    """The exit status of a command's ``main(argv)``: its return value, or the status it leaves with
    (a user error leaves through :func:`genre.runtime.errors.exit_on_user_error` with status 2)."""
    try:
        return main(argv)
    except SystemExit as leaving:
        return leaving.code


@contextmanager
def served(root: Path, run_id: str, cwd: Path):
    """``mlflow models serve`` of a run's model as the README writes it (the venv activated: MLflow starts uvicorn
    from PATH), until the block ends; yields ``ask(records) -> predictions`` (an HTTP error raises)."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    activate = Path(sys.executable).parent / "activate"
    command = f". {activate} && mlflow models serve -m runs:/{run_id}/model -p {port} --env-manager local"
    server = subprocess.Popen(["bash", "-c", command], cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True,
                              env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
                                   "PATH": "/usr/bin:/bin"})   # nothing of the venv on PATH before activation

    def ask(records: list[dict]) -> list[dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", headers={"Content-Type": "application/json"},
                                         data=json.dumps({"dataframe_records": records}).encode())
        return json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"]

    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()[-3000:]
                time.sleep(0.5)
        yield ask
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# system metrics are sampled while the run trains (a second or two here): often
SHARED_RUN_SETTINGS = {"logger.system_metrics_interval": 0.05, "clips.train_clips_per_track": 4, "logger.register_model": "genre-tiny"}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One tiny run per pytest session, ``python train.py ...`` as a user runs it, shared by the tests that
    only read a run: its root, its config, its metrics (with ``run_id`` and ``best_checkpoint``) and what the
    console said."""
    import mlflow

    from genre.datasets.synthetic import ensure_corpus

    root = tmp_path_factory.mktemp("run")
    cfg = compose_config("train", tiny_overrides(**SHARED_RUN_SETTINGS), root)
    corpus = ensure_corpus(cfg.dataset.root, 6, 6.0, 22050, 0, num_workers=2)
    # a user's copy has a damaged file: it must be skipped, counted and reported, not crash the run
    (corpus / "genres" / "metal" / "metal.00004.au").write_bytes(b"\x00not audio" * 50)
    out = run_cli("train.py", f"paths.root_dir={root}", *tiny_overrides(**SHARED_RUN_SETTINGS))
    assert out.returncode == 0, out.stderr[-3000:]
    [run] = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db").search_runs(["1"])
    metrics = {**run.data.metrics, "run_id": run.info.run_id, "best_checkpoint": run.data.tags["best_checkpoint"]}
    return root, cfg, metrics, out

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
    from genre.evaluate import evaluate
    from genre.runtime.errors import ConfigError
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

    from genre.assembly.build import read_checkpoint
    from genre.runtime.errors import ConfigError

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

    from genre.assembly.build import build_frontend, prepare_data
    from genre.data.audio import load_audio
    from genre.runtime.errors import AudioDecodeError

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
    from genre.runtime.errors import DatasetError

    path = tmp_path / "features-x.h5"
    rows = np.ones((3, 4, 5), dtype=np.float32)
    rows[1, 2, 3] = np.inf
    with h5py.File(path, "w") as f:
        f["features"] = rows
    cached = CachedTracks(path, "x", ["a", "b", "c"], [], "d")
    assert np.isfinite(band_statistics(cached, [0, 2])[0]).all()
    with pytest.raises(DatasetError, match=r"not finite for some training tracks"):
        band_statistics(cached, [0, 1, 2])


@pytest.mark.slow   # a whole training command
def test_a_run_whose_loss_becomes_nan_stops_says_so_and_is_failed(tmp_path):
    from conftest import mlflow_runs
    from genre.runtime.errors import TrainingDiverged
    from genre.train import train

    cfg = compose_config("train", tiny_overrides(**{"optimizer.lr": 1e12, "trainer.max_epochs": 3,
                                                    "logger.system_metrics": "false"}), tmp_path)
    with pytest.raises(TrainingDiverged, match=r"training diverged: the training loss is (nan|inf) at epoch 0.*"
                                               r"optimizer.lr=1000000000000.0"):
        train(cfg)
    [run] = mlflow_runs(tmp_path)
    assert run.info.status == "FAILED"
    assert "test/track_acc" not in run.data.metrics


@pytest.mark.slow
def test_runs_started_in_the_same_second_each_get_their_own_folder(tmp_path):
    """Four runs at once made two folders: one run's last.ckpt overwrote another's, and logs mixed."""
    import subprocess
    import sys

    from conftest import ROOT, mlflow_runs, run_cli

    settings = [f"paths.root_dir={tmp_path}", *tiny_overrides(**{"trainer.max_epochs": 1,
                                                                "logger.system_metrics": "false"})]
    assert run_cli("train.py", *settings).returncode == 0          # the corpus and caches, made once
    for made in (tmp_path / "outputs" / "runs").iterdir():
        subprocess.run(["rm", "-r", str(made)], check=True)
    runs = [subprocess.Popen([sys.executable, "train.py", *settings, f"seed={seed}"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for seed in (1, 2, 3)]
    for run in runs:
        assert run.wait(timeout=600) == 0, run.stderr.read()[-3000:]
    folders = sorted((tmp_path / "outputs" / "runs").iterdir())
    assert len(folders) == 3
    ids = {r.info.run_id for r in mlflow_runs(tmp_path) if r.data.tags["seed"] in ("1", "2", "3")}
    assert len(ids) == 3
    for folder in folders:
        assert (folder / "checkpoints" / "last.ckpt").is_file()
        log = (folder / "train.log").read_text()
        assert len({run_id for run_id in ids if run_id in log}) == 1, "a log holds another run's lines"


def test_a_checkpoint_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A full disk halfway through left a truncated best-00.ckpt under its final name."""
    import errno

    import torch

    from genre.tracking.checkpoints import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "best-00.ckpt"
    io.save_checkpoint({"weights": torch.ones(1000)}, target)
    before = target.read_bytes()
    real_save = torch.save

    def disk_fills_up(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_fills_up)
    with pytest.raises(OSError):
        io.save_checkpoint({"weights": torch.zeros(5000)}, target)
    assert target.read_bytes() == before                        # the complete one is still there, untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["best-00.ckpt"]   # and nothing half-written
    assert torch.load(target, weights_only=True)["weights"].shape == (1000,)


def test_a_full_or_read_only_disk_is_one_line_naming_the_folder(capsys):
    import errno

    from genre.runtime.errors import exit_on_user_error

    def fills(path):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    for error, said in ((lambda: fills("/data/cache/features-1.h5"), "no space left on the disk of the folder "
                         "/data/cache: free some space there, or point paths.root_dir"),
                        (lambda: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only file system", "/ro/x.db")),
                         "cannot write to the folder /ro (Read-only file system)"),
                        (lambda: (_ for _ in ()).throw(OSError("Can't write data (file write failed: errno = 28, "
                                                               "error message = 'No space left on device')")),
                         "no space left on the disk of a folder this command writes")):
        with pytest.raises(SystemExit) as leaving:
            exit_on_user_error(error)()
        assert leaving.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {said}") and err.count("\n") == 1, err
    with pytest.raises(FileNotFoundError):                     # any other OSError is a bug: its traceback stays
        exit_on_user_error(lambda: open("/nonexistent/file"))()


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write, root included: a read-only tmpfs mount (or, not as root, mode 555)."""
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_store_cache_or_output_folder_is_refused_before_any_work(tmp_path, read_only_folder):
    from genre.runtime.errors import ConfigError
    from genre.train import train

    for setting, value in (("logger.tracking_uri", f"sqlite:///{read_only_folder}/mlflow.db"),
                           ("paths.cache_dir", f"{read_only_folder}/cache"),
                           ("paths.output_dir", f"{read_only_folder}/run")):
        cfg = compose_config("train", tiny_overrides(**{setting: value}), tmp_path)
        with pytest.raises(ConfigError, match=rf"{setting}.*: cannot write to {read_only_folder}"):
            train(cfg)
        assert not (tmp_path / "data").exists()                  # refused before the corpus was generated


def test_a_read_only_working_directory_is_one_line_before_hydra_writes(read_only_folder):
    import subprocess
    import sys

    from conftest import ROOT

    out = subprocess.run([sys.executable, str(ROOT / "train.py")], cwd=read_only_folder, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr == (f"error: paths.root_dir: cannot write to {read_only_folder} (read-only or not yours): "
                          f"make it writable, or set paths.root_dir to a folder you can write\n")


@pytest.fixture
def small_disk(tmp_path):
    """A 2-MB tmpfs: a disk that fills up (root can mount one; elsewhere the test is skipped)."""
    import subprocess

    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.slow
def test_a_cache_folder_that_fills_up_is_one_line_naming_it_and_leaves_nothing_half_written(tmp_path, small_disk):
    from conftest import run_cli

    out = run_cli("train.py", f"paths.root_dir={tmp_path}", f"paths.cache_dir={small_disk}/cache",
                  *tiny_overrides(**{"dataset.tracks_per_genre": 10, "dataset.track_seconds": 20}))
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    [line] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: no space left on the disk of ") and "free some space there" in line
    assert str(small_disk) in line, line
    assert not [p for p in (small_disk / "cache").iterdir() if ".partial" not in p.name and p.suffix == ".h5"]


def test_ctrl_c_in_any_command_is_one_line_and_status_130(capsys):
    from genre.runtime.errors import exit_on_user_error
    from genre.runtime.signals import Interrupted

    def interrupted():
        raise KeyboardInterrupt

    for stop, status in ((interrupted, 130), (lambda: (_ for _ in ()).throw(Interrupted(15)), 143)):
        with pytest.raises(SystemExit) as leaving:
            exit_on_user_error(stop)()
        assert leaving.value.code == status
        assert capsys.readouterr().err.startswith("stopped: interrupted by SIG")

"""Benchmark of the data pipeline against the seed projects' way and against the machine.

    python -m genre.bench [--tracks-per-genre 10] [--cache-tracks 1000] [--json bench.json] [--skip-main-command]
                          [--only 9 11]

Every figure is a ratio of two measurements taken side by side in the same run (machines are noisy;
absolute times alone mean little), printed and written as JSON. The corpus is the synthetic one,
re-encoded as 44.1 kHz stereo MP3 like FMA's and 7digital's clips, so decoding costs what it costs
on real data. On a GPU the GPU figures are added.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from genre.assembly.build import build_frontend, compose_config
from genre.assembly.targets import build_network
from genre.data.cache import build_audio_cache, build_feature_cache
from genre.data.clips import ResidentClips, ResidentRows, cached_loader, train_plan
from genre.data.index import Track
from genre.datasets.gtzan import scan_gtzan
from genre.datasets.synthetic import ensure_corpus
from genre.models.cnn3 import CNN3
from genre.runtime.console import STAGE_LINE
from genre.runtime.errors import exit_on_user_error

DEFAULTS = compose_config("train")   # the README's main command: log-mel at 100/40 ms, 10-s clips
SAMPLE_RATE, N_MELS, CLIP_SECONDS = DEFAULTS.features.sample_rate, DEFAULTS.features.n_mels, DEFAULTS.clips.clip_seconds
WINDOW_MS, STRIDE_MS = DEFAULTS.features.window_ms, DEFAULTS.features.stride_ms


def _cached_loader(path, rows: list[int], labels: list[int], clip_frames: int, n_frames: int,
                   batch_size: int = 32, workers: int = 0, pin: bool = False):
    """The training DataLoader of the HDF5 path (one crop per track), as the data module builds it."""
    owned = np.arange(len(rows))
    return cached_loader(str(path), rows, labels, clip_frames,
                         lambda: train_plan(owned, 1, n_frames - clip_frames, seed=0, epoch=0), len(rows),
                         batch_size, evaluation=False, num_workers=workers, pin_memory=pin)


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def mp3_corpus(folder: Path, tracks_per_genre: int, seconds: float) -> list[Track]:
    """The synthetic corpus re-encoded as 44.1 kHz stereo MP3 in GTZAN's layout."""
    import librosa

    tracks = []
    for track in scan_gtzan(ensure_corpus(folder / "au", tracks_per_genre, seconds, SAMPLE_RATE, seed=0)):
        target = folder / "mp3" / track.genre / f"{track.track_id}.mp3"
        target.parent.mkdir(parents=True, exist_ok=True)
        audio = librosa.resample(sf.read(str(track.path), dtype="float32")[0], orig_sr=SAMPLE_RATE, target_sr=44100)
        sf.write(str(target), np.stack([audio, audio], axis=1), 44100, format="MP3")
        tracks.append(Track(track.track_id, target, track.genre))
    return tracks


def figure_cache_build(tracks, work: Path, n_samples: int, n_tracks: int) -> dict:
    """1. Tracks decoded and stored per second: parallel (one process per core) vs one process.

    Measured at ``n_tracks`` (GTZAN's 1000 by default): the corpus's files listed as many times as it
    takes, each under its own track id, so each is decoded and stored again. Each side runs twice, in
    turn, and the faster time counts."""
    from genre.data.audio import load_audio

    listing = [Track(f"{t.track_id}.{k}", t.path, t.genre) for k in range(-(-n_tracks // len(tracks)))
               for t in tracks][:n_tracks]
    workers = os.cpu_count() or 1
    load_audio(tracks[0].path, SAMPLE_RATE)  # warm-up (page cache): not for one side only
    times: dict[int, list[float]] = {1: [], workers: []}
    for n_workers in [1, workers] * 2:
        folder = work / f"cache_build_{n_workers}"
        seconds, _ = _timed(build_audio_cache, listing, SAMPLE_RATE, n_samples, folder, num_workers=n_workers)
        times[n_workers].append(seconds)
        shutil.rmtree(folder)  # GB at GTZAN's size
    one_s, many_s = min(times[1]), min(times[workers])
    return {"tracks": len(listing), "distinct_files": len(tracks), "workers": workers,
            "one_process_tracks_per_s": len(listing) / one_s, "parallel_tracks_per_s": len(listing) / many_s,
            "speedup": one_s / many_s, "speedups_per_round": [a / b for a, b in zip(times[1], times[workers], strict=True)],
            "target": ">= 1.7"}


def figure_epoch_data_cost(tracks, features_cache, n_frames: int, clip_frames: int, n_clips: int) -> dict:
    """2. One pass over N clips ready for the model: from the feature cache vs librosa per item."""
    import librosa

    rows = list(range(min(n_clips, len(features_cache.track_ids))))
    loader = _cached_loader(features_cache.path, rows, [0] * len(rows), clip_frames, n_frames)
    cached_s, _ = _timed(lambda: [batch for batch in loader])
    path_of = {t.track_id: t.path for t in tracks}
    n_fft, hop = round(WINDOW_MS * SAMPLE_RATE / 1000), round(STRIDE_MS * SAMPLE_RATE / 1000)

    def seeds_way():
        for row in rows:
            y, _ = librosa.load(str(path_of[features_cache.track_ids[row]]), sr=SAMPLE_RATE, offset=5.0,
                                duration=CLIP_SECONDS)
            librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=n_fft, hop_length=hop,
                                                               n_mels=N_MELS))
    seeds_s, _ = _timed(seeds_way)
    return {"clips": len(rows), "cache_s": cached_s, "seeds_way_s": seeds_s, "speedup": seeds_s / cached_s,
            "target": ">= 50"}


def figure_feature_extraction(audio_cache, work: Path) -> tuple:
    """3. The feature cache of the whole corpus: torchaudio (batched, all threads, in this process) vs
    the numpy path (librosa's STFT) in one process and in one process per core, as the cache uses it
    on a CPU; parity in dB within 80 dB of the peak. Returns the (parallel-built) cache and the figure."""
    from genre.data.cache import open_rows

    extractor = build_frontend(DEFAULTS.features)

    def torch_path():
        with open_rows(audio_cache.path) as data, torch.inference_mode():
            return np.concatenate([extractor(torch.from_numpy(data[i:i + 8])).numpy()
                                   for i in range(0, len(audio_cache.track_ids), 8)])
    torch_s, ours = _timed(torch_path)
    one_s, _ = _timed(build_feature_cache, audio_cache, extractor, work / "features_one", num_workers=1)
    workers = os.cpu_count() or 1
    parallel_s, cache = _timed(build_feature_cache, audio_cache, extractor, work / "features_all",
                               num_workers=workers)
    with open_rows(cache.path) as features:
        stored = features[()]
    loud = ours > ours.max() - 80
    return cache, {"tracks": len(audio_cache.track_ids), "torchaudio_s": torch_s, "numpy_one_process_s": one_s,
            "numpy_parallel_s": parallel_s, "workers": workers,
            "numpy_parallel_speedup_over_torchaudio": torch_s / parallel_s,
            "max_abs_diff_db": float(np.abs(ours - stored)[loud].max()),
            "used_on_cpu": "numpy path, one process per core (computed once per track, never per epoch)"}


def _timed_steps(model, batches, optimizer, device: torch.device) -> tuple[float, float | None]:
    """Wall time of training steps over ``batches`` (moved to ``device`` as a Lightning loop would),
    and on a GPU the time its kernels ran: the sum over steps of CUDA event time from the moment the
    step's batch is there to the end of ``optimizer.step`` (time waiting for data is not in it)."""
    cuda = device.type == "cuda"
    scaler = torch.amp.GradScaler(enabled=cuda)   # trainer=gpu trains in 16-mixed precision
    events = []
    start = time.perf_counter()
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if cuda:
            events.append((torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)))
            events[-1][0].record()
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if cuda:
            events[-1][1].record()
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    busy = sum(a.elapsed_time(b) for a, b in events) / 1000 if cuda else None
    return wall, busy


def figure_pipeline_overhead(features_cache, n_frames: int, clip_frames: int, n_tracks: int) -> dict:
    """4. Epoch wall time through the real DataLoader vs the same steps on tensors already in memory."""
    rows = list(range(n_tracks))
    labels = [r % 10 for r in rows]
    loader = _cached_loader(features_cache.path, rows, labels, clip_frames, n_frames)
    torch.manual_seed(0)
    model = CNN3((N_MELS, clip_frames), 10)
    optimizer = torch.optim.Adam(model.parameters())
    in_memory = [(x.clone(), y.clone()) for x, y in loader]
    cpu = torch.device("cpu")
    _timed_steps(model, in_memory[:1], optimizer, cpu)  # warm-up
    memory_s, _ = _timed_steps(model, in_memory, optimizer, cpu)
    loader_s, _ = _timed_steps(model, loader, optimizer, cpu)
    return {"clips": len(rows), "dataloader_epoch_s": loader_s, "in_memory_epoch_s": memory_s,
            "ratio": loader_s / memory_s, "target": "<= 1.15"}


def _peak_rss_mib(command: list[str], cwd: Path) -> tuple[float, float]:
    """Peak resident memory (largest process) and wall time of a command, in MiB and s."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *command], cwd=cwd, capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[1]) / 1024, float(out[0])


def _train_command(root: Path, overrides: list[str]) -> list[str]:
    """``python train.py`` (``genre-train``), also where the package is installed without a checkout."""
    return [sys.executable, "-c", "from genre.cli import train_command; train_command()", f"paths.root_dir={root}",
            *overrides]


def figure_memory(work: Path, tracks_per_genre: int, seconds: float) -> dict:
    """5. Peak RSS of a training run at N tracks and at 4N tracks (memory must not grow with the corpus)."""
    short = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", f"dataset.track_seconds={seconds}"]
    small_mib, _ = _peak_rss_mib(_train_command(work / "mem_n", [f"dataset.tracks_per_genre={tracks_per_genre}",
                                                                 *short]), work)
    large_mib, _ = _peak_rss_mib(_train_command(work / "mem_4n", [f"dataset.tracks_per_genre={4 * tracks_per_genre}",
                                                                  *short]), work)
    return {"tracks": [10 * tracks_per_genre, 40 * tracks_per_genre], "peak_rss_mib": [small_mib, large_mib],
            "ratio": large_mib / small_mib, "target": "<= 1.2"}


def figure_main_command(work: Path, extra: list[str]) -> dict:
    """6. The README's main command in a fresh directory: first run (corpus included), then second run;
    the first run's stages as it logged them, and what the rest took (start-up, training, test, logging)."""
    root = work / "main_command"
    first_s, first = _timed(subprocess.run, _train_command(root, extra), cwd=work, check=True, capture_output=True,
                            text=True)
    second_s, _ = _timed(subprocess.run, _train_command(root, extra), cwd=work, check=True, capture_output=True)
    stages = {name: float(seconds) for name, seconds in STAGE_LINE.findall(first.stdout + first.stderr)}
    stages["the rest: start-up, training, test, plots, model"] = first_s - sum(stages.values())
    return {"command": " ".join(["python train.py", *extra]), "first_run_s": first_s, "second_run_s": second_s,
            "first_over_second": first_s / second_s, "first_run_stages_s": stages}


def _best_of(command: list[str], cwd: Path, times: int = 3, expect: int = 0) -> float:
    """The fastest of ``times`` wall times of ``command`` (s): start-up is noisy, its floor is the figure."""
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
        best = min(best, time.perf_counter() - started)
        if done.returncode != expect:
            raise RuntimeError(f"{' '.join(command[1:])} exited {done.returncode}: {done.stderr[-2000:]}")
    return best


def _exit_lag(command: list[str], cwd: Path) -> float:
    """Seconds from a command's last line of output to its exit (it must succeed)."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = time.perf_counter()
    for _ in process.stdout:
        last = time.perf_counter()
    if process.wait() != 0:
        raise RuntimeError(f"{' '.join(command[1:3])} ... exited {process.returncode}")
    return time.perf_counter() - last


def figure_command_line(work: Path) -> dict:
    """9. How fast the command line answers, against a bare ``python -c "import torch, numpy"`` on the same
    machine: a refused setting (target < 2 s), ``evaluate.py audio=`` on a 30-s song with a checkpoint
    (target < 5 s and <= 2.5x the bare import), and a loaded checkpoint classifying a 30-s song in the
    process (target < 0.2 s), beside ``mlflow.pyfunc.load_model`` of the logged model and its answer; and
    how long ``train.py`` takes to exit after its last line (target < 0.5 s)."""
    import mlflow
    import pandas as pd

    from genre.assembly.predictor import load_predictor

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    root = work / "command_line"
    root.mkdir(parents=True, exist_ok=True)
    exit_lag_s = _exit_lag(_train_command(root, ["dataset.tracks_per_genre=4", "dataset.track_seconds=12",
                                                 "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                                                 "logger.system_metrics=false"]), work)
    [checkpoint] = root.glob("outputs/runs/*/checkpoints/best-*.ckpt")
    song = root / "song.wav"
    t = np.arange(30 * SAMPLE_RATE) / SAMPLE_RATE
    sf.write(str(song), (0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2).astype(np.float32),
             SAMPLE_RATE)
    bare_s = _best_of([sys.executable, "-c", "import torch, numpy"], work)
    refusal_s = _best_of([sys.executable, "-c", "from genre.cli import train_command; train_command()", "clips.batch_size=0",
                          f"paths.root_dir={root}"], work, expect=2)
    evaluate_s = _best_of([sys.executable, "-c", "from genre.cli import evaluate_command; evaluate_command()",
                           f"ckpt_path={checkpoint}", f"audio={song}", f"paths.root_dir={root}"], work)
    predictor = load_predictor(checkpoint)
    waveform, _ = sf.read(str(song), dtype="float32")
    predictor.classify_waveform(waveform)                                  # warm-up
    answer_s = min(_timed(predictor.classify_waveform, waveform)[0] for _ in range(3))
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    [run] = mlflow.search_runs(experiment_names=["genre"], output_format="list")
    load_s, model = _timed(mlflow.pyfunc.load_model, f"runs:/{run.info.run_id}/model")
    request = pd.DataFrame({"waveform": [waveform]})
    model.predict(request)
    served_s = min(_timed(model.predict, request)[0] for _ in range(3))
    return {"bare_import_s": bare_s, "refusal_s": refusal_s, "train_exit_after_last_line_s": exit_lag_s, "evaluate_audio_s": evaluate_s,
            "evaluate_over_bare_import": evaluate_s / bare_s, "checkpoint_answer_30s_song_s": answer_s,
            "pyfunc_load_s": load_s, "pyfunc_answer_30s_song_s": served_s,
            "targets": "refusal < 2 s; evaluate < 5 s and <= 2.5x bare import; answer < 0.2 s; exit < 0.5 s"}


def figure_app(work: Path, song_mp3: Path) -> dict:
    """11. The app (``genre-app``) answering one song (30 s by default), model loaded: upload, decode, classify, the timeline,
    the front end's picture and 5 tracks like it, through its HTTP API (FastAPI's test client, in the process).
    The run is figure 9's (the README's default network and front end, on a small corpus); the songs are a
    44.1 kHz stereo MP3 of the benchmark's corpus and the same song as a 22.05 kHz mono WAV. Target: < 1 s."""
    from fastapi.testclient import TestClient

    from genre.app.server import create_app
    from genre.app.service import AppModel
    from genre.data.audio import load_audio

    root = work / "command_line"
    [checkpoint] = root.glob("outputs/runs/*/checkpoints/best-*.ckpt")
    load_s, service = _timed(AppModel, checkpoint, 5, str(root / "cache"), tracking_uri=f"sqlite:///{root}/mlflow.db")
    client = TestClient(create_app(service), base_url="http://127.0.0.1")
    waveform = load_audio(song_mp3, SAMPLE_RATE)
    song_wav = work / "app_song.wav"
    sf.write(str(song_wav), waveform, SAMPLE_RATE)
    answers = {}
    for name, path in (("mp3", song_mp3), ("wav", song_wav)):
        body = path.read_bytes()

        def ask(body=body, name=name):
            answer = client.post("/api/classify", files={"file": (f"song.{name}", body)})
            if answer.status_code != 200:
                raise RuntimeError(f"the app answered {answer.status_code}: {answer.text[:500]}")
            return answer.json()

        ask()                                                     # warm-up
        answers[name] = min(_timed(ask)[0] for _ in range(5))
    return {"song_s": waveform.shape[0] / SAMPLE_RATE, "load_s": load_s, "answer_mp3_s": answers["mp3"],
            "answer_wav_s": answers["wav"], "answer_over_1s_budget": answers["mp3"] / 1.0,
            "target": "a 30-s song answered in < 1 s (ratio to the 1-s budget < 1)"}


def figure_clip_paths(features_cache, n_frames: int, clip_frames: int, device: str | torch.device = "cpu",
                      n_tracks: int = 1000, model: str = "cnn3", batch_size: int = 32,
                      loader_workers: int | None = None, rounds: int = 2) -> dict:
    """7 (GPU) and 8 (CPU). One training epoch of ``model`` over a corpus of ``n_tracks`` tracks (GTZAN's
    1000 by default: the cache's rows, repeated) through the two clip paths of the data module: the HDF5
    cache read by a DataLoader (``clips.resident=false``) vs the rows resident on ``device``, clips cut
    there (``clips.resident=true``). Samples per second and time per epoch of each, the time the data
    alone takes, on a GPU the fraction of the time its kernels ran, and what holds each path back."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    n_cached = len(features_cache.track_ids)
    rows = [i % n_cached for i in range(n_tracks)]
    labels = [i % 10 for i in range(n_tracks)]
    workers = (min(4, os.cpu_count() or 1) if cuda else 0) if loader_workers is None else loader_workers
    cached = _cached_loader(features_cache.path, rows, labels, clip_frames, n_frames, batch_size=batch_size,
                            workers=workers, pin=cuda)
    owned = np.arange(n_tracks)
    resident_rows = ResidentRows(str(features_cache.path), rows, labels, owned, device)
    resident = ResidentClips(resident_rows, lambda: train_plan(owned, 1, n_frames - clip_frames, seed=0, epoch=0),
                             n_tracks, batch_size, clip_frames, evaluation=False)
    torch.manual_seed(0)
    net = build_network(compose_config("train", [f"model={model}"]).model, (N_MELS, clip_frames), 10).to(device)
    optimizer = torch.optim.Adam(net.parameters())
    results = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "model": model, "tracks": n_tracks,
               "batch": batch_size, "loader_workers": workers, "precision": "16-mixed" if cuda else "32",
               "resident_gb": resident_rows.nbytes / 1e9}
    paths = {"cache": cached, "resident": resident}
    for batches in paths.values():
        _timed_steps(net, [batch for _, batch in zip(range(3), batches, strict=False)], optimizer, device)  # warm-up
    timings: dict[str, list[tuple[float, float | None, float]]] = {name: [] for name in paths}
    for _ in range(rounds):  # the paths in turn, each round: the faster epoch of each counts (noisy machines)
        for name, batches in paths.items():
            data_s, _ = _timed(lambda batches=batches: [x.sum().item() for x, _ in batches])   # the data alone, on the device
            epoch_s, busy_s = _timed_steps(net, batches, optimizer, device)
            timings[name].append((epoch_s, busy_s, data_s))
    for name in paths:
        epoch_s, busy_s, _ = min(timings[name], key=lambda t: t[0])
        data_s = min(t[2] for t in timings[name])
        results.update({f"{name}_epoch_s": epoch_s, f"{name}_samples_per_s": n_tracks / epoch_s,
                        f"{name}_data_only_s": data_s, f"{name}_epochs_s": [t[0] for t in timings[name]],
                        f"{name}_gpu_busy_fraction": busy_s / epoch_s if cuda else None})
        if data_s > 0.5 * epoch_s:   # (the fastest epoch of this path, and its data alone)
            held = "the data path: cutting and moving clips takes most of the epoch"
        elif cuda and busy_s / epoch_s < 0.8:
            held = ("kernel launches: each step's Python and launch overhead on the CPU takes longer than its "
                    "kernels (the model is small for this GPU; a larger batch fills it)")
        else:
            held = "the model's compute"
        results[f"{name}_held_back_by"] = held
    results["resident_speedup"] = results["cache_epoch_s"] / results["resident_epoch_s"]
    return results


def _encoder_models(device: torch.device, work: Path) -> dict:
    """The encoders figure 10 times: tiny random instances of MERT's, AST's and CLAP's real classes, saved as the hub
    holds them (the tests' own, :mod:`genre.features.encoders`), and MERT-95M at its real size with random weights
    (speed does not depend on the weights; on a CPU over 4 tracks only); on a GPU MERT-330M at its real size too.
    Each is ``(loader, rate, window, folder or model, layers, width)``."""
    from genre.features.encoders import save_tiny_ast, save_tiny_clap, save_tiny_mert
    from genre.features.mert import MERTConfig, MERTModel

    def mert(**config):
        return MERTModel(MERTConfig(mask_time_prob=0.0, **config))

    models = {"tiny_mert": ("mert", 24000, 5.0, save_tiny_mert(work / "tiny_mert"), 3, 16),
              "tiny_ast": ("ast", 16000, 10.24, save_tiny_ast(work / "tiny_ast", window_seconds=10.24), 3, 16),
              "tiny_clap": ("clap", 48000, 10.0, save_tiny_clap(work / "tiny_clap"), 1, 16),
              "mert_v1_95m_size": ("mert", 24000, 5.0, mert(), 13, 768)}   # on a CPU: over 4 tracks
    if device.type == "cuda":
        models["mert_v1_330m_size"] = ("mert", 24000, 5.0, mert(hidden_size=1024, num_hidden_layers=24,
                                                                 num_attention_heads=16, intermediate_size=4096), 25, 1024)
    return models


def figure_encoders(tracks, work: Path, seconds: float, epochs: int = 3) -> dict:
    """10. Pretrained encoders: embedding a corpus into the cache (tracks per second, and the real-time factor:
    seconds of audio per second of compute), the cache's size per track, and one probe epoch read from the cache
    against one that would run the encoder on every step as MARBLE v2 does (the encoder's time for the same
    tracks): the ratio is what the cache saves each epoch."""
    from genre.features.encoders import Encoder
    from genre.models.probe import Probe

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "tracks": len(tracks), "track_seconds": seconds}
    for name, (loader, rate, window, source, layers, width) in _encoder_models(device, work).items():
        some = tracks[:4] if name.endswith("_size") and device.type == "cpu" else tracks
        audio = build_audio_cache(some, rate, int(seconds * rate), work / "encoder_cache")
        given = {"path": str(source)} if isinstance(source, Path) else {"model": source}
        encoder = Encoder(name, loader, "random", "none", rate, window, window, layers, width, **given)
        embed_s, built = _timed(build_feature_cache, audio, encoder, work / "encoder_cache")
        n_tracks = len(built.track_ids)
        rows = list(range(n_tracks))
        labels = [i % 10 for i in rows]
        resident = ResidentRows(str(built.path), rows, labels, np.arange(n_tracks), device)
        n_windows = encoder.n_frames(int(seconds * rate))
        clips = ResidentClips(resident, lambda n=n_tracks: train_plan(np.arange(n), 1, 0, seed=0, epoch=0), n_tracks, 32,
                              n_windows, evaluation=False)
        probe = Probe((layers * width, n_windows), 10, n_layers=layers, layer="weighted").to(device)
        optimizer = torch.optim.Adam(probe.parameters(), lr=1e-3)
        epoch_s = min(_timed_steps(probe, clips, optimizer, device)[0] for _ in range(epochs))
        results.update({f"{name}_tracks": n_tracks, f"{name}_tracks_per_s": n_tracks / embed_s, f"{name}_real_time_factor": n_tracks * seconds / embed_s,
                        f"{name}_cache_kb_per_track": built.path.stat().st_size / n_tracks / 1e3,
                        f"{name}_probe_epoch_s": epoch_s,
                        f"{name}_cache_saves_per_epoch": (embed_s + epoch_s) / epoch_s})
    return results


def run(tracks_per_genre: int, seconds: float, n_clips: int, main_command: bool, memory: bool,
        smoke: bool = False, cache_tracks: int = 1000, paths_tracks: int = 1000, only: set[int] | None = None) -> dict:
    """Every figure, or those numbered in ``only`` (11 brings 9, whose run it serves)."""
    wanted = (lambda n: True) if not only else (lambda n: n in only or (n == 9 and 11 in only))
    with tempfile.TemporaryDirectory(prefix="genre-bench-") as tmp:
        work = Path(tmp)
        tracks = mp3_corpus(work / "corpus", tracks_per_genre, seconds)
        n_samples = int(seconds * SAMPLE_RATE)
        figures = {}
        if wanted(1):
            figures["1_cache_build"] = figure_cache_build(tracks, work, n_samples, cache_tracks)
        if any(wanted(n) for n in (2, 3, 4, 7, 8)):
            audio_cache = build_audio_cache(tracks, SAMPLE_RATE, n_samples, work / "cache")
            features_cache, feature_figure = figure_feature_extraction(audio_cache, work)  # the cache 2 and 4 read
            extractor = build_frontend(DEFAULTS.features)
            n_frames, clip_frames = extractor.n_frames(n_samples), extractor.n_frames(int(CLIP_SECONDS * SAMPLE_RATE))
        if wanted(2):
            figures["2_epoch_data_cost"] = figure_epoch_data_cost(tracks, features_cache, n_frames, clip_frames, n_clips)
        if wanted(3):
            figures["3_feature_extraction"] = feature_figure
        if wanted(4):
            figures["4_pipeline_overhead"] = figure_pipeline_overhead(features_cache, n_frames, clip_frames, len(tracks))
        if memory and wanted(5):
            figures["5_memory"] = figure_memory(work, tracks_per_genre, seconds)
        if main_command and wanted(6):  # the README's command as it stands; --smoke shrinks it to check the plumbing
            figures["6_main_command"] = figure_main_command(work, [
                f"dataset.tracks_per_genre={tracks_per_genre}", f"dataset.track_seconds={seconds}",
                "trainer.max_epochs=2"] if smoke else [])
        if torch.cuda.is_available() and wanted(7):
            for model in ("cnn3", "resnet"):
                figures[f"7_gpu_clip_paths_{model}"] = figure_clip_paths(features_cache, n_frames, clip_frames,
                                                                        "cuda", paths_tracks, model)
        if wanted(8):
            figures["8_cpu_clip_paths"] = figure_clip_paths(features_cache, n_frames, clip_frames, "cpu", paths_tracks)
        if wanted(9):
            figures["9_command_line"] = figure_command_line(work)
        if wanted(10):
            figures["10_encoders"] = figure_encoders(tracks, work, seconds)
        if wanted(11):
            figures["11_app"] = figure_app(work, Path(tracks[0].path))
    return {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
            "corpus": {"tracks": len(tracks), "seconds": seconds, "format": "MP3 44.1 kHz stereo"},
            "figures": figures}


def _print(results: dict) -> None:
    print(f"machine: {results['machine']}")
    for name, figure in results["figures"].items():
        shown = {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in figure.items()}
        print(f"{name}: {shown}")


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genre.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--tracks-per-genre", type=int, default=10, help="corpus size (10 genres)")
    parser.add_argument("--seconds", type=float, default=30.0, help="track length")
    parser.add_argument("--cache-tracks", type=int, default=1000,
                        help="tracks decoded for figure 1 (default GTZAN's 1000; the corpus's files, repeated)")
    parser.add_argument("--paths-tracks", type=int, default=1000,
                        help="corpus size of figures 7 and 8, the two clip paths (default GTZAN's 1000)")
    parser.add_argument("--clips", type=int, default=100, help="clips for the per-item comparison")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--only", type=int, nargs="+", metavar="N", help="these figures alone (11 brings 9)")
    parser.add_argument("--skip-main-command", action="store_true", help="leave out figure 6 (minutes)")
    parser.add_argument("--skip-memory", action="store_true", help="leave out figure 5 (two training runs)")
    parser.add_argument("--smoke", action="store_true",
                        help="figure 6 on the benchmark's own small corpus for 2 epochs (tests), not the README command")
    args = parser.parse_args(argv)
    results = run(args.tracks_per_genre, args.seconds, args.clips, not args.skip_main_command, not args.skip_memory,
                  args.smoke, args.cache_tracks, args.paths_tracks, set(args.only or ()))
    _print(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

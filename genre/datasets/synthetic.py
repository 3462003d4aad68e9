"""``dataset=synthetic``: the built-in corpus, generated once into ``root``, then read as GTZAN.

Tracks are written as 16-bit AU files in GTZAN's original layout (``genres/<genre>/<genre>.000NN.au``)
so that they are read by exactly the same code as a user's GTZAN; :mod:`genre.datasets.music_generator`
renders them.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from genre.data.index import DatasetIndex, check_genres, select_genres
from genre.data.splits import apply_split
from genre.datasets.gtzan import GTZAN_GENRES, scan_gtzan
from genre.datasets.music_generator import STYLES, TIMBRE_SETS, render_track
from genre.runtime.console import log_stage_done
from genre.runtime.errors import DatasetError
from genre.runtime.parallel import file_lock, process_map, worker_count

log = logging.getLogger(__name__)
CORPUS_VERSION = 2
MANIFEST = "corpus.json"


def build(root: str, tracks_per_genre: int, track_seconds: float, sample_rate: int, seed: int,
          split: str = "random", genres: list[str] | None = None, num_workers: int | None = None,
          timbres: str = "a", **split_options) -> DatasetIndex:
    """The built-in corpus: generated into ``root`` on first use, then read as GTZAN.

    ``timbres``: the instrument sounds and mix (:data:`genre.datasets.music_generator.TIMBRE_SETS`);
    set ``b`` plays the same compositions as ``a`` (same seed, same split): a domain shift to measure.
    A set other than ``a`` is generated beside ``root``, in ``<root>-timbres-<set>``."""
    if timbres not in TIMBRE_SETS:
        raise DatasetError(f"dataset.timbres={timbres!r}: choose one of {sorted(TIMBRE_SETS)}")
    if timbres != "a":
        root = f"{str(root).rstrip('/')}-timbres-{timbres}"
    if tracks_per_genre < 3:
        raise DatasetError(f"dataset.tracks_per_genre={tracks_per_genre}: need at least 3 "
                           f"(one each for train, val and test)")
    check_genres(genres, list(GTZAN_GENRES), "synthetic")
    ensure_corpus(root, tracks_per_genre, track_seconds, sample_rate, seed, GTZAN_GENRES, num_workers, timbres)
    tracks, genre_list = select_genres(scan_gtzan(root), genres, "synthetic")
    tracks, protocol = apply_split(tracks, split, "synthetic", **split_options)
    return DatasetIndex("synthetic", genre_list, tracks, protocol, track_seconds)


def _write_track(job: tuple[str, int, int, float, int, str, str]) -> None:
    genre, index, seed, seconds, sample_rate, out_dir, timbres = job
    path = Path(out_dir) / "genres" / genre / f"{genre}.{index:05d}.au"
    sf.write(str(path), render_track(genre, index, seed, seconds, sample_rate, timbres), sample_rate,
             format="AU", subtype="PCM_16")


def ensure_corpus(root: str | Path, tracks_per_genre: int, track_seconds: float, sample_rate: int,
                  seed: int, genres: tuple[str, ...] = GTZAN_GENRES, num_workers: int | None = None,
                  timbres: str = "a") -> Path:
    """Generate the corpus into ``root`` unless a complete one with these settings is already there.

    The corpus is written into a temporary sibling folder and renamed into place only when every
    track is written, followed by ``corpus.json``: an interrupted generation leaves nothing that a
    later run would take for a corpus. Returns ``root``.
    """
    root = Path(root)
    settings = {"version": CORPUS_VERSION, "tracks_per_genre": tracks_per_genre,
                "track_seconds": track_seconds, "sample_rate": sample_rate, "seed": seed,
                "genres": list(genres)}
    if timbres != "a":   # set a's manifests predate timbre sets: they stay valid
        settings["timbres"] = timbres
    with file_lock(root.parent / f".{root.name}.lock"):
        return _ensure_corpus(root, settings, num_workers)


def _ensure_corpus(root: Path, settings: dict, num_workers: int | None) -> Path:
    tracks_per_genre, track_seconds = settings["tracks_per_genre"], settings["track_seconds"]
    sample_rate, seed, genres = settings["sample_rate"], settings["seed"], settings["genres"]
    manifest = root / MANIFEST
    if manifest.is_file():
        existing = json.loads(manifest.read_text())
        if existing == settings:
            return root
        raise DatasetError(
            f"{root} holds a synthetic corpus generated with other settings ({existing}); "
            f"set dataset.root to another folder or delete this one to regenerate it")
    if root.exists() and any(root.iterdir()):
        raise DatasetError(f"{root} exists, is not empty and is no synthetic corpus; "
                           f"set dataset.root to an empty or new folder")
    unknown = sorted(set(genres) - set(STYLES))
    if unknown:
        raise DatasetError(f"the synthetic corpus has no genre {unknown}; it has {list(GTZAN_GENRES)}")

    staging = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    for genre in genres:
        (staging / "genres" / genre).mkdir(parents=True)
    jobs = [(g, i, seed, track_seconds, sample_rate, str(staging), settings.get("timbres", "a"))
            for g in genres for i in range(tracks_per_genre)]
    log.info("Generating the synthetic corpus: %d genres x %d tracks x %.0f s into %s",
             len(genres), tracks_per_genre, track_seconds, root)
    started = time.perf_counter()
    try:
        with process_map(_write_track, jobs, num_workers, chunksize=4) as written:
            for _ in tqdm(written, total=len(jobs), desc="synthetic corpus", unit="track"):
                pass
        (staging / MANIFEST).write_text(json.dumps(settings, indent=2))
        if root.exists():
            root.rmdir()
        os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log_stage_done(log, "synthetic corpus", len(jobs), "generated", started, worker_count(num_workers), root)
    return root

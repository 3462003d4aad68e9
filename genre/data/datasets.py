"""Dataset builders named by ``conf/dataset/*.yaml`` (``_target_``): each returns a :class:`DatasetIndex`."""
from __future__ import annotations

from pathlib import Path

from genre.data import gtzan as gtzan_layout
from genre.data.index import DatasetError, DatasetIndex
from genre.data.splits import random_stratified
from genre.data.synthetic import GTZAN_GENRES, ensure_corpus


def _split(tracks, split: dict, dataset: str):
    if split.get("name") != "random":
        raise DatasetError(f"dataset '{dataset}' does not offer dataset.split.name={split.get('name')!r}; "
                           f"use 'random'")
    return random_stratified(tracks, split["train"], split["val"], split["test"], split["seed"])


def synthetic(root: str, tracks_per_genre: int, track_seconds: float, sample_rate: int, seed: int,
              split: dict, genres: list[str] | None = None, num_workers: int | None = None) -> DatasetIndex:
    """The built-in corpus: generated into ``root`` on first use, then read as GTZAN."""
    if tracks_per_genre < 3:
        raise DatasetError(f"dataset.tracks_per_genre={tracks_per_genre}: need at least 3 "
                           f"(one each for train, val and test)")
    gtzan_layout.check_genres(genres, list(GTZAN_GENRES), "synthetic")
    ensure_corpus(root, tracks_per_genre, track_seconds, sample_rate, seed, GTZAN_GENRES, num_workers)
    tracks, genre_list = gtzan_layout.select_genres(gtzan_layout.scan_gtzan(root), genres, "synthetic")
    tracks, protocol = _split(tracks, split, "synthetic")
    return DatasetIndex("synthetic", genre_list, tracks, protocol, track_seconds)


def gtzan(root: str, split: dict, track_seconds: float = 30.0,
          genres: list[str] | None = None) -> DatasetIndex:
    """A user's GTZAN copy (any of the layouts in :mod:`genre.data.gtzan`)."""
    tracks, genre_list = gtzan_layout.select_genres(gtzan_layout.scan_gtzan(Path(root)), genres, "gtzan")
    tracks, protocol = _split(tracks, split, "gtzan")
    return DatasetIndex("gtzan", genre_list, tracks, protocol, track_seconds)

"""Split protocols. Splits are made by track (or by artist where artists are known), never by clip,
so the clips of one track always stay on one side."""
from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np

from genre.data.index import Track
from genre.runtime.errors import DatasetError


def _shuffled_by_genre(tracks: list[Track], seed: int) -> list[list[Track]]:
    """The tracks of each genre (genres in name order) in a seeded random order: the same for the
    same tracks and seed, whatever order they were listed in."""
    by_genre: dict[str, list[Track]] = defaultdict(list)
    for track in sorted(tracks, key=lambda t: t.track_id):
        by_genre[track.genre].append(track)
    rng = np.random.default_rng(seed)
    return [[by_genre[genre][i] for i in rng.permutation(len(by_genre[genre]))] for genre in sorted(by_genre)]


def _check_fractions(train: float, val: float, test: float) -> None:
    if min(train, val, test) < 0 or abs(train + val + test - 1.0) > 1e-6:
        raise DatasetError(f"dataset.fractions train={train}, val={val}, test={test} must be "
                           f"non-negative and add up to 1")


def random_stratified(tracks: list[Track], train: float, val: float, test: float,
                      seed: int) -> tuple[list[Track], str]:
    """Seeded split by track, stratified by genre: each genre is shuffled and cut into fractions.

    Returns the tracks with ``split`` set, and the protocol string tagged on the run.
    """
    _check_fractions(train, val, test)
    assigned: list[Track] = []
    for members in _shuffled_by_genre(tracks, seed):
        n_test = int(round(len(members) * test))
        n_val = int(round(len(members) * val))
        for position, track in enumerate(members):
            split = "test" if position < n_test else "val" if position < n_test + n_val else "train"
            assigned.append(dataclasses.replace(track, split=split))
    protocol = f"random-stratified-by-track(train={train:g},val={val:g},test={test:g},seed={seed})"
    return assigned, protocol


def artist_stratified(tracks: list[Track], train: float, val: float, test: float, seed: int,
                      dataset: str = "this dataset") -> tuple[list[Track], str]:
    """Seeded artist-conditional split: all tracks of an artist land in one split, so a model cannot
    score by recognising an artist it heard in training (the artist effect; FMA's official split and
    GTZAN's filtered split are made the same way).

    Artists are grouped by their most frequent genre; each genre's artists, in a seeded order, go
    one by one to the split furthest below its share of that genre's tracks.
    """
    _check_fractions(train, val, test)
    unknown = [t for t in tracks if not t.artist]
    if unknown:
        raise DatasetError(f"dataset.split=artist: {len(unknown)} of {len(tracks)} tracks of {dataset} have no "
                           f"artist (e.g. {unknown[0].track_id}); artists come from FMA's tracks.csv and, for "
                           f"dataset=msd, from dataset.metadata (the MSD summary file or data/ folder)")
    by_artist: dict[str, list[Track]] = defaultdict(list)
    for track in sorted(tracks, key=lambda t: t.track_id):
        by_artist[track.artist].append(track)
    artists_of_genre: dict[str, list[str]] = defaultdict(list)
    for artist in sorted(by_artist):
        genres = sorted(t.genre for t in by_artist[artist])
        artists_of_genre[max(genres, key=genres.count)].append(artist)
    rng = np.random.default_rng(seed)
    shares = {"test": test, "val": val, "train": train}
    assigned: list[Track] = []
    for genre in sorted(artists_of_genre):
        artists = [artists_of_genre[genre][i] for i in rng.permutation(len(artists_of_genre[genre]))]
        total = sum(len(by_artist[a]) for a in artists)
        counts = dict.fromkeys(shares, 0)
        for artist in artists:
            split = max(shares, key=lambda s: shares[s] * total - counts[s])  # ties: test, val, train
            counts[split] += len(by_artist[artist])
            assigned += [dataclasses.replace(t, split=split) for t in by_artist[artist]]
    protocol = f"random-stratified-by-artist(train={train:g},val={val:g},test={test:g},seed={seed})"
    return assigned, protocol


def kfold_stratified(tracks: list[Track], k: int, fold: int, seed: int) -> tuple[list[Track], str]:
    """Seeded stratified k-fold by track: fold ``fold`` is the test set, the next fold the validation
    set, the other ``k - 2`` folds the training set (the 10-fold protocol older GTZAN papers report,
    with a validation fold for checkpoint selection)."""
    if k < 3:
        raise DatasetError(f"dataset.folds={k}: k-fold needs k >= 3 (a test, a validation and a training fold)")
    if not 0 <= fold < k:
        raise DatasetError(f"dataset.fold={fold}: choose a fold from 0 to {k - 1}")
    assigned: list[Track] = []
    for members in _shuffled_by_genre(tracks, seed):
        for position, track in enumerate(members):
            track_fold = position % k
            split = "test" if track_fold == fold else "val" if track_fold == (fold + 1) % k else "train"
            assigned.append(dataclasses.replace(track, split=split))
    return assigned, f"stratified-{k}-fold-by-track(test_fold={fold},val_fold={(fold + 1) % k},seed={seed})"


def from_lists(tracks: list[Track], lists: dict[str, list[str]]) -> tuple[list[Track], list[tuple[str, str]]]:
    """Assign splits from fixed id lists (split -> track ids). Tracks in no list are left out.

    Returns the assigned tracks and ``(track_id, split)`` for each listed id that is not on disk,
    so the caller can report them without failing.
    """
    split_of = {track_id: split for split, ids in lists.items() for track_id in ids}
    present = {t.track_id for t in tracks}
    assigned = [dataclasses.replace(t, split=split_of[t.track_id]) for t in tracks if t.track_id in split_of]
    missing = [(track_id, split) for track_id, split in split_of.items() if track_id not in present]
    return assigned, missing


def apply_split(tracks: list[Track], split: str, dataset: str, fractions: dict | None = None,
                split_seed: int = 0, folds: int = 10, fold: int = 0, offers: tuple[str, ...] = ()
                ) -> tuple[list[Track], str]:
    """The protocols every dataset offers (``dataset.split``): ``random`` (``dataset.fractions``,
    ``dataset.split_seed``), ``artist`` (the same, artist-conditional; needs the tracks' artists) and
    ``kfold`` (``dataset.folds``, ``dataset.fold``, ``dataset.split_seed``).
    ``offers`` names the dataset's own protocols, for the error message."""
    fractions = fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
    if split == "random":
        return random_stratified(tracks, fractions["train"], fractions["val"], fractions["test"], split_seed)
    if split == "artist":
        return artist_stratified(tracks, fractions["train"], fractions["val"], fractions["test"], split_seed,
                                 dataset)
    if split == "kfold":
        return kfold_stratified(tracks, folds, fold, split_seed)
    raise DatasetError(f"dataset.split={split!r}: dataset '{dataset}' offers "
                       f"{sorted({'random', 'artist', 'kfold', *offers})}")

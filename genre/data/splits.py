"""Split protocols. Splits are made by track (or by artist where artists are known), never by clip,
so the clips of one track always stay on one side."""
from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np

from genre.data.index import DatasetError, Track


def random_stratified(tracks: list[Track], train: float, val: float, test: float,
                      seed: int) -> tuple[list[Track], str]:
    """Seeded split by track, stratified by genre: each genre is shuffled and cut into fractions.

    Returns the tracks with ``split`` set, and the protocol string tagged on the run.
    """
    total = train + val + test
    if min(train, val, test) < 0 or abs(total - 1.0) > 1e-6:
        raise DatasetError(f"dataset.split fractions train={train}, val={val}, test={test} must be "
                           f"non-negative and add up to 1")
    by_genre: dict[str, list[Track]] = defaultdict(list)
    for track in sorted(tracks, key=lambda t: t.track_id):
        by_genre[track.genre].append(track)
    rng = np.random.default_rng(seed)
    assigned: list[Track] = []
    for genre in sorted(by_genre):
        members = [by_genre[genre][i] for i in rng.permutation(len(by_genre[genre]))]
        n_test = int(round(len(members) * test))
        n_val = int(round(len(members) * val))
        for position, track in enumerate(members):
            split = "test" if position < n_test else "val" if position < n_test + n_val else "train"
            assigned.append(dataclasses.replace(track, split=split))
    protocol = f"random-stratified-by-track(train={train:g},val={val:g},test={test:g},seed={seed})"
    return assigned, protocol

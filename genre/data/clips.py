"""Clips cut out of the feature cache: random crops for training, windows covering each track for evaluation."""
from __future__ import annotations

import math

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset


def window_starts(n_frames: int, clip_frames: int) -> np.ndarray:
    """Start frames of the fewest evenly spaced clips of ``clip_frames`` that cover ``n_frames`` frames.

    The first clip starts at frame 0 and the last ends at the last frame; neighbours overlap by the
    smallest amount that makes this possible.
    """
    if clip_frames > n_frames:
        raise ValueError(f"a clip of {clip_frames} frames does not fit in {n_frames} frames")
    count = math.ceil(n_frames / clip_frames)
    return np.unique(np.linspace(0, n_frames - clip_frames, count).round().astype(np.int64))


class _CachedFeatures(Dataset):
    """Reads ``features[row, :, start:start + clip_frames]`` from the HDF5 feature cache.

    The file is opened lazily in the process that reads it (each DataLoader worker opens its own):
    h5py handles must not cross a fork and cannot be pickled.
    """

    def __init__(self, path: str, rows: list[int], labels: list[int], clip_frames: int):
        self.path = str(path)
        self.rows = list(rows)
        self.labels = list(labels)
        self.clip_frames = clip_frames
        self._features = None

    def _read(self, row: int, start: int) -> torch.Tensor:
        if self._features is None:
            self._features = h5py.File(self.path, "r")["features"]
        clip = self._features[row, :, start:start + self.clip_frames]
        return torch.from_numpy(clip).unsqueeze(0)  # (1, n_bands, clip_frames)

    def __getstate__(self):
        return {**self.__dict__, "_features": None}


class RandomClips(_CachedFeatures):
    """``clips_per_track`` random crops of each training track per epoch: ``(clip, label)``."""

    def __init__(self, path, rows, labels, clip_frames: int, n_frames: int, clips_per_track: int = 1):
        super().__init__(path, rows, labels, clip_frames)
        self.max_start = n_frames - clip_frames
        self.clips_per_track = clips_per_track

    def __len__(self) -> int:
        return len(self.rows) * self.clips_per_track

    def __getitem__(self, i: int):
        track = i % len(self.rows)
        start = int(torch.randint(0, self.max_start + 1, ()))
        return self._read(self.rows[track], start), self.labels[track]


class WindowClips(_CachedFeatures):
    """Every window of every track (see :func:`window_starts`): ``(clip, label, track position, clip index)``.

    The clip index lets outputs gathered from several processes be de-duplicated (a distributed
    sampler pads the last batches with repeats)."""

    def __init__(self, path, rows, labels, clip_frames: int, n_frames: int):
        super().__init__(path, rows, labels, clip_frames)
        starts = window_starts(n_frames, clip_frames)
        self.items = [(track, int(start)) for track in range(len(self.rows)) for start in starts]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        track, start = self.items[i]
        return self._read(self.rows[track], start), self.labels[track], track, i

"""Clips cut out of the feature cache: random crops for training, windows covering each track for evaluation.

Which clips an epoch sees is decided in one place, a *plan* (:func:`train_plan`, :func:`window_plan`):
for each clip, the position of its track in the split, its first frame and (for evaluation) its clip
index. Two paths cut the planned clips:

- :class:`CachedClips` reads them from the HDF5 feature cache through a DataLoader (any corpus size);
- :class:`ResidentClips` holds the feature rows as one tensor on the training device (GPU memory or
  RAM) and cuts a whole batch with one indexing operation, no DataLoader and no workers.

Both follow the same plan, so for the same seed they give the same batches (tested), and a run's
metrics do not depend on the path. The plan of a training epoch is drawn from ``(seed, epoch, rank)``
alone, never from the global generators: a resumed run cuts the crops the uninterrupted run would
have cut, whatever else drew random numbers before.

Under DDP each process owns a share of each split's tracks (:func:`owned_positions`, padded with
repeats like ``DistributedSampler`` so that every process runs the same number of batches); the
resident path loads only the rows its process owns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from genre.data.cache import open_rows, open_rows_here, row_blocks
from genre.models.inference import window_starts


def owned_positions(n_tracks: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """Positions (in the split's track list) of the tracks process ``rank`` of ``world_size`` works on.

    Every process gets ``ceil(n_tracks / world_size)``: the list is padded with its own first tracks,
    as ``DistributedSampler`` does, so that all processes run the same number of steps."""
    per_rank = -(-n_tracks // world_size)
    padded = np.resize(np.arange(n_tracks, dtype=np.int64), per_rank * world_size)
    return padded[rank::world_size]


@dataclass(frozen=True)
class Plan:
    """The clips of one pass, in order: track ``position`` in the split, ``start`` frame and, for
    evaluation, the clip's index among all windows of the split (outputs gathered from several
    processes are de-duplicated by it)."""

    position: np.ndarray
    start: np.ndarray
    clip: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.position)


def train_plan(positions: np.ndarray, clips_per_track: int, max_start: int, seed: int, epoch: int,
               rank: int = 0) -> Plan:
    """``clips_per_track`` random crops of each of ``positions`` in random order, drawn from
    ``(seed, epoch, rank)`` only."""
    rng = np.random.default_rng([seed, epoch, rank])
    items = np.tile(np.asarray(positions, dtype=np.int64), clips_per_track)
    order = rng.permutation(len(items))
    starts = rng.integers(0, max_start + 1, size=len(items), dtype=np.int64)
    return Plan(items[order], starts)


def window_plan(positions: np.ndarray, n_frames: int, clip_frames: int) -> Plan:
    """Every window (:func:`window_starts`) of each of ``positions``, track by track; the clip index of
    window ``w`` of the track at position ``p`` is ``p * windows_per_track + w``."""
    starts = window_starts(n_frames, clip_frames)
    positions = np.asarray(positions, dtype=np.int64)
    return Plan(np.repeat(positions, len(starts)), np.tile(starts, len(positions)),
                (positions[:, None] * len(starts) + np.arange(len(starts))).reshape(-1))


class PlanSampler(Sampler):
    """Yields the items of ``make_plan()`` (called at each pass, so each epoch gets its own plan) as
    ``(position, start, clip)`` tuples for :class:`CachedClips`. The DataLoader iterates it in the main
    process, also with workers."""

    def __init__(self, make_plan: Callable[[], Plan], length: int):
        self.make_plan = make_plan
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        plan = self.make_plan()
        clips = plan.clip if plan.clip is not None else np.full(len(plan), -1)
        return iter(zip(plan.position.tolist(), plan.start.tolist(), clips.tolist(), strict=True))


class CachedClips(Dataset):
    """Reads planned clips ``features[row, :, start:start + clip_frames]`` from the HDF5 feature cache:
    ``(clip, label)`` for training, ``(clip, label, track position, clip index)`` for evaluation.

    The file is opened lazily in the process that reads it (each DataLoader worker opens its own):
    h5py handles must not cross a fork and cannot be pickled.
    """

    def __init__(self, path: str, rows: list[int], labels: list[int], clip_frames: int, evaluation: bool):
        self.path = str(path)
        self.rows = list(rows)
        self.labels = list(labels)
        self.clip_frames = clip_frames
        self.evaluation = evaluation
        self._features = None

    def __getitem__(self, item: tuple[int, int, int]):
        position, start, clip = item
        if self._features is None:
            self._features = open_rows_here(self.path)
        x = torch.from_numpy(self._features[self.rows[position], :, start:start + self.clip_frames]).unsqueeze(0)
        if self.evaluation:
            return x, self.labels[position], position, clip
        return x, self.labels[position]

    def __getstate__(self):
        return {**self.__dict__, "_features": None}


def cached_loader(path: str, rows: list[int], labels: list[int], clip_frames: int, make_plan: Callable[[], Plan],
                  length: int, batch_size: int, evaluation: bool, num_workers: int = 0, pin_memory: bool = False,
                  seed: int = 0) -> DataLoader:
    """The HDF5 path: a DataLoader reading the clips of ``make_plan()`` (``length`` of them) with
    :class:`CachedClips`. It has its own generator: a DataLoader draws its workers' base seed at each
    pass, which from the global generator would shift the dropout masks and make the paths train apart."""
    return DataLoader(CachedClips(path, rows, labels, clip_frames, evaluation), batch_size=batch_size,
                      sampler=PlanSampler(make_plan, length), num_workers=num_workers,
                      persistent_workers=num_workers > 0, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed))


def load_rows(path: str, rows: list[int], device: torch.device, dtype: torch.dtype = torch.float32,
              chunk: int = 256) -> torch.Tensor:
    """Feature rows ``(len(rows), n_bands, n_frames)`` of the HDF5 cache as one tensor on ``device``, in
    the order given; read ``chunk`` rows at a time, so the host never holds more than a chunk."""
    with open_rows(path) as features:
        shape = features.shape[1:]
    out = torch.empty((len(rows), *shape), dtype=dtype, device=device)
    for begin, block in row_blocks(path, rows, chunk):
        out[begin:begin + len(block)] = torch.from_numpy(block).to(device, dtype)
    return out


class ResidentRows:
    """The feature rows of some tracks of a split as one tensor on ``device`` (``dtype``), with their labels.

    ``positions``: the split positions held (a process's share under DDP); clips are cut from them by
    :meth:`cut`, which takes split positions and maps them to the rows held."""

    def __init__(self, path: str, rows: list[int], labels: list[int], positions: np.ndarray,
                 device: torch.device, dtype: torch.dtype = torch.float32):
        held = np.unique(positions)
        self.slot = torch.full((len(rows),), -1, dtype=torch.long)
        self.slot[torch.from_numpy(held)] = torch.arange(len(held))
        self.slot = self.slot.to(device)
        self.features = load_rows(path, [rows[p] for p in held.tolist()], device, dtype)
        self.labels = torch.as_tensor(labels, dtype=torch.long, device=device)
        self.device = device

    @property
    def nbytes(self) -> int:
        return self.features.numel() * self.features.element_size()

    def cut(self, position: torch.Tensor, start: torch.Tensor, clip_frames: int) -> torch.Tensor:
        """Clips ``(batch, 1, n_bands, clip_frames)`` (float32) at ``start`` of the tracks at ``position``."""
        slot = self.slot[position]
        bands = torch.arange(self.features.shape[1], device=self.device)
        frames = start[:, None] + torch.arange(clip_frames, device=self.device)
        clips = self.features[slot[:, None, None], bands[None, :, None], frames[:, None, :]]
        return clips.unsqueeze(1).float()


@dataclass
class ResidentClips:
    """Batches of planned clips cut on the device from :class:`ResidentRows`: what a DataLoader over
    :class:`CachedClips` yields, batch for batch, without reading a file or starting a worker."""

    rows: ResidentRows
    make_plan: Callable[[], Plan]
    length: int          # clips per pass
    batch_size: int
    clip_frames: int
    evaluation: bool

    def __len__(self) -> int:
        return -(-self.length // self.batch_size)

    def __iter__(self):
        plan = self.make_plan()
        device = self.rows.device
        position = torch.from_numpy(plan.position).to(device)
        start = torch.from_numpy(plan.start).to(device)
        clip = torch.from_numpy(plan.clip).to(device) if plan.clip is not None else None
        for begin in range(0, len(plan), self.batch_size):
            batch = slice(begin, begin + self.batch_size)
            x = self.rows.cut(position[batch], start[batch], self.clip_frames)
            y = self.rows.labels[position[batch]]
            yield (x, y, position[batch], clip[batch]) if self.evaluation else (x, y)

"""From a dataset index to DataLoaders: audio cache -> feature cache -> normalisation -> clips.

:func:`prepare` does all the work that can fail or take long (decoding, feature extraction,
checks) before a Trainer exists, so bad input stops a run before its first epoch.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch

from genre.data.cache import CachedTracks, band_statistics, build_audio_cache, build_feature_cache, open_rows
from genre.data.clips import (
    ResidentClips,
    ResidentRows,
    cached_loader,
    owned_positions,
    train_plan,
    window_plan,
    window_starts,
)
from genre.data.index import SPLITS, DatasetIndex, SkippedFile
from genre.features import FrontEnd
from genre.runtime.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Everything the DataLoaders and the model need to know about the data of a run."""

    index: DatasetIndex
    features: CachedTracks
    rows: dict[str, list[int]]        # split -> rows of the feature cache
    labels: dict[str, list[int]]      # split -> genre index of each row
    track_ids: dict[str, list[str]]
    n_bands: int
    n_frames: int                     # frames per (fixed-length) track
    clip_frames: int
    band_mean: np.ndarray | None      # (n_bands,), from the training split only (None: none, or not standardised)
    band_std: np.ndarray | None

    @property
    def genres(self) -> list[str]:
        return self.index.genres

    @property
    def skipped(self) -> list[SkippedFile]:
        return self.index.skipped + self.features.skipped

    def centre_clips(self, split: str) -> np.ndarray:
        """One clip from the middle of each track of ``split``, ``(n_tracks, n_bands, clip_frames)``, as cached
        (not normalised)."""
        start = (self.n_frames - self.clip_frames) // 2
        with open_rows(self.features.path) as features:
            return np.stack([features[row, :, start:start + self.clip_frames] for row in self.rows[split]])


def prepare(index: DatasetIndex, extractor: FrontEnd, clip_seconds: float, cache_dir: str,
            num_workers: int | None = None, splits: tuple[str, ...] = SPLITS) -> PreparedData:
    """Decode, cache and index the data of a run; raise before training if it cannot work.

    ``splits``: the splits that must hold readable tracks (training: all three; scoring a trained model
    on another corpus: the one scored, and then no normalisation statistics are computed).
    """
    sample_rate = extractor.sample_rate
    if clip_seconds <= 0:
        raise DatasetError(f"clips.clip_seconds={clip_seconds}: must be longer than 0 s")
    if clip_seconds > index.track_seconds:
        raise DatasetError(f"clips.clip_seconds={clip_seconds} is longer than the tracks of "
                           f"'{index.name}' (dataset.track_seconds={index.track_seconds}); "
                           f"shorten the clip")
    window_ms = extractor.settings()["window_ms"]
    if window_ms > clip_seconds * 1000:
        raise DatasetError(f"features.window_ms={window_ms} is longer than a clip "
                           f"(clips.clip_seconds={clip_seconds}); shorten the window or lengthen the clip")
    if "train" in splits:
        index.check()
    n_samples = int(round(index.track_seconds * sample_rate))
    audio = build_audio_cache(index.tracks, sample_rate, n_samples, cache_dir, num_workers,
                              min_seconds=clip_seconds, excerpt=index.excerpt)
    features = build_feature_cache(audio, extractor, cache_dir, num_workers=num_workers)

    row_of = {track_id: row for row, track_id in enumerate(features.track_ids)}
    genre_index = {genre: i for i, genre in enumerate(index.genres)}
    rows, labels, track_ids = {}, {}, {}
    for split in splits:
        kept = [t for t in index.split(split) if t.track_id in row_of]
        if not kept:
            raise DatasetError(f"dataset '{index.name}': no readable track is left in the {split} split "
                               f"({len(index.split(split))} listed, all skipped; see the warnings above)")
        rows[split] = [row_of[t.track_id] for t in kept]
        labels[split] = [genre_index[t.genre] for t in kept]
        track_ids[split] = [t.track_id for t in kept]
    clip_frames = extractor.n_frames(int(round(clip_seconds * sample_rate)))
    n_frames = extractor.n_frames(n_samples)
    # per-band standardisation; not for a front end whose output is its network's input as it is (waveform windows)
    standardise = "train" in splits and getattr(extractor, "standardise", True)
    band_mean, band_std = band_statistics(features, rows["train"]) if standardise else (None, None)
    log.info("%s: %s tracks (%s), %d skipped; %d bands x %d frames per %.1f-s clip; split %s",
             index.name, "/".join(str(len(rows[s])) for s in splits), "/".join(splits), len(index.skipped + features.skipped),
             extractor.n_bands, clip_frames, clip_seconds, index.split_protocol)
    return PreparedData(index, features, rows, labels, track_ids, extractor.n_bands, n_frames,
                        clip_frames, band_mean, band_std)


RESIDENT_CHOICES = ("auto", True, False)
RESIDENT_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def device_memory(device: torch.device, processes_sharing: int = 1) -> int:
    """Bytes of memory one process may count on: the GPU's own memory, or this machine's RAM shared by
    ``processes_sharing`` processes (DDP on the CPU)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    import psutil

    return psutil.virtual_memory().total // max(1, processes_sharing)


def choose_resident(setting, needed: int, budget: int) -> bool:
    """``clips.resident``: ``true`` and ``false`` decide; ``auto`` holds the rows on the device when
    they take at most ``budget`` bytes."""
    if setting not in RESIDENT_CHOICES:
        raise ConfigError(f"clips.resident={setting!r}: choose auto, true or false")
    return needed <= budget if setting == "auto" else bool(setting)


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


class GenreDataModule(pl.LightningDataModule):
    """Random clips of the training tracks; every window of the validation and test tracks.

    The clips of each pass follow a plan (:mod:`genre.data.clips`) cut either on the device from the
    feature rows held there (``resident``) or from the HDF5 cache through a DataLoader; ``resident="auto"``
    holds the rows when those of all splits (this process's share of them) fit in ``memory_share`` of
    the device's memory. :attr:`path_taken` says which path was taken and why.
    """

    def __init__(self, data: PreparedData, batch_size: int, num_workers: int = 0,
                 train_clips_per_track: int = 1, seed: int = 0, resident="auto", memory_share: float = 0.5,
                 resident_dtype: str = "float32", test_split: str = "test"):
        super().__init__()
        if resident_dtype not in RESIDENT_DTYPES:
            raise ConfigError(f"clips.resident_dtype={resident_dtype!r}: choose one of {list(RESIDENT_DTYPES)}")
        choose_resident(resident, 0, 0)  # the setting itself, before any work
        self.data = data
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_clips_per_track = train_clips_per_track
        self.seed = seed
        self.resident = resident
        self.memory_share = memory_share
        self.resident_dtype = RESIDENT_DTYPES[resident_dtype]
        self.test_split = test_split
        self.path_taken: str | None = None   # "resident" or "cache", once set up
        self.path_reason = ""
        self._device = torch.device("cpu")
        self._rank, self._world = 0, 1
        self._owned: dict[str, np.ndarray] = {}
        self._rows: dict[str, ResidentRows] = {}

    def setup(self, stage: str | None = None) -> None:
        trainer = self.trainer
        if trainer is not None:
            self._rank = trainer.global_rank
        if self.path_taken is None:
            self.choose_path(trainer)   # also sets the number of processes and the device
        self._owned = {split: owned_positions(len(rows), self._rank, self._world)
                       for split, rows in self.data.rows.items()}

    def choose_path(self, trainer=None) -> str:
        """Decide where clips are cut for the processes of ``trainer`` (its device and number of processes;
        none: one process on the CPU), log why, and return ``"resident"`` or ``"cache"``."""
        if trainer is not None:
            self._world, self._device = trainer.world_size, trainer.strategy.root_device
        d = self.data
        item = self.resident_dtype.itemsize * d.n_bands * d.n_frames
        # every process holds the same number of rows (its share, padded): rank 0's is everyone's
        needed = sum(len(np.unique(owned_positions(len(rows), 0, self._world))) for rows in d.rows.values()) * item
        sharing = self._world // max(1, trainer.num_nodes) if trainer is not None and \
            self._device.type == "cpu" else 1
        budget = int(self.memory_share * device_memory(self._device, sharing))
        resident = choose_resident(self.resident, needed, budget)
        self.path_taken = "resident" if resident else "cache"
        where = str(self._device) if self._device.type == "cuda" else "RAM"
        size = f"the feature rows ({_gb(needed)} {str(self.resident_dtype).replace('torch.', '')}" + \
            (" per process" if self._world > 1 else "") + ")"
        limit = f"{self.memory_share:.0%} of {where} ({_gb(budget)})"
        if resident:
            self.path_reason = (f"{size} held in {where}, clips cut there batch by batch, no DataLoader workers"
                                + ("" if needed <= budget else f" (clips.resident=true: over {limit})"))
        else:
            self.path_reason = (f"{size} read from the HDF5 cache by a DataLoader with {self.num_workers} workers: "
                                + ("clips.resident=false" if self.resident is False else f"over {limit}"))
        log.info("clips: %s", self.path_reason)
        return self.path_taken

    def _resident_rows(self, split: str) -> ResidentRows:
        if split not in self._rows:
            d = self.data
            self._rows[split] = ResidentRows(str(d.features.path), d.rows[split], d.labels[split], self._owned[split],
                                             self._device, self.resident_dtype)
        return self._rows[split]

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _clips(self, split: str, make_plan, length: int, evaluation: bool):
        d = self.data
        if self.path_taken == "resident":
            return ResidentClips(self._resident_rows(split), make_plan, length, self.batch_size, d.clip_frames,
                                 evaluation)
        return cached_loader(str(d.features.path), d.rows[split], d.labels[split], d.clip_frames, make_plan, length,
                             self.batch_size, evaluation, self.num_workers, self._device.type == "cuda", self.seed)

    def windows_dataloader(self, split: str):
        """Every window of every track of ``split`` (this process's share of them)."""
        if not self._owned:
            self.setup()
        d, owned = self.data, self._owned[split]
        length = len(owned) * len(window_starts(d.n_frames, d.clip_frames))
        return self._clips(split, lambda: window_plan(owned, d.n_frames, d.clip_frames), length, evaluation=True)

    def train_dataloader(self):
        if not self._owned:
            self.setup()
        d, owned = self.data, self._owned["train"]
        max_start = d.n_frames - d.clip_frames

        def plan():
            return train_plan(owned, self.train_clips_per_track, max_start, self.seed, self._epoch(), self._rank)
        return self._clips("train", plan, len(owned) * self.train_clips_per_track, evaluation=False)

    def val_dataloader(self):
        return self.windows_dataloader("val")

    def test_dataloader(self):
        return self.windows_dataloader(self.test_split)

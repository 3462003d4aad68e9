"""From a dataset index to DataLoaders: audio cache -> feature cache -> normalisation -> clips.

:func:`prepare` does all the work that can fail or take long (decoding, feature extraction,
checks) before a Trainer exists, so bad input stops a run before its first epoch.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import h5py
import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from genre.data.cache import CachedTracks, band_statistics, build_audio_cache, build_feature_cache
from genre.data.clips import RandomClips, WindowClips
from genre.data.index import SPLITS, DatasetIndex, SkippedFile
from genre.errors import DatasetError
from genre.features import FeatureExtractor

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
    band_mean: np.ndarray | None      # (n_bands,), from the training split only (None: no training split)
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
        with h5py.File(self.features.path, "r") as f:
            return np.stack([f["features"][row, :, start:start + self.clip_frames] for row in self.rows[split]])


def prepare(index: DatasetIndex, extractor: FeatureExtractor, clip_seconds: float, cache_dir: str,
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
                              min_seconds=clip_seconds)
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
    band_mean, band_std = band_statistics(features, rows["train"]) if "train" in splits else (None, None)
    log.info("%s: %s tracks (%s), %d skipped; %d bands x %d frames per %.1f-s clip; split %s",
             index.name, "/".join(str(len(rows[s])) for s in splits), "/".join(splits), len(index.skipped + features.skipped),
             extractor.n_bands, clip_frames, clip_seconds, index.split_protocol)
    return PreparedData(index, features, rows, labels, track_ids, extractor.n_bands, n_frames,
                        clip_frames, band_mean, band_std)


class GenreDataModule(pl.LightningDataModule):
    """Random clips of the training tracks; every window of the validation and test tracks."""

    def __init__(self, data: PreparedData, batch_size: int, num_workers: int = 0,
                 train_clips_per_track: int = 1):
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_clips_per_track = train_clips_per_track

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def windows_dataloader(self, split: str) -> DataLoader:
        """Every window of every track of ``split`` (validation, test, evaluate.py)."""
        d = self.data
        return self._loader(WindowClips(str(d.features.path), d.rows[split], d.labels[split], d.clip_frames,
                                        d.n_frames), False)

    def train_dataloader(self) -> DataLoader:
        d = self.data
        return self._loader(RandomClips(str(d.features.path), d.rows["train"], d.labels["train"],
                                        d.clip_frames, d.n_frames, self.train_clips_per_track), True)

    def val_dataloader(self) -> DataLoader:
        return self.windows_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.windows_dataloader("test")

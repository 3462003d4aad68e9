"""``dataset=fma``: the Free Music Archive (Defferrard et al. 2017), metadata and MP3 clips.

Layout: ``<root>/fma_metadata/tracks.csv`` (two header levels, then an index-name line) and
``<root>/fma_<size>/<first 3 digits>/<6-digit id>.mp3``; see docs/datasets.md.
"""
from __future__ import annotations

import logging
from pathlib import Path

from genre.data.index import DatasetIndex, Track, select_genres
from genre.data.splits import apply_split
from genre.runtime.errors import DatasetError

log = logging.getLogger(__name__)

FMA_SUBSETS = ("small", "medium", "large")
FMA_SOURCE_HINT = ("FMA's metadata and audio are published by its authors (repository mdeff/fma on GitHub): "
                   "fma_metadata.zip and fma_<size>.zip, unzipped side by side")
FMA_COLUMNS = (("set", "subset"), ("set", "split"), ("track", "genre_top"), ("artist", "name"))


def fma_audio_path(audio_dir: Path, track_id: int) -> Path:
    """``fma_<size>/<first 3 digits>/<6-digit id>.mp3``, e.g. ``fma_small/000/000002.mp3``."""
    name = f"{track_id:06d}"
    return audio_dir / name[:3] / f"{name}.mp3"


def read_fma_tracks(path: Path):
    """``tracks.csv`` as FMA's own code reads it: two header levels, then an index-name line."""
    import pandas as pd

    if not path.is_file():
        raise DatasetError(f"{path} does not exist: expected FMA's metadata at <root>/fma_metadata/tracks.csv. "
                           f"{FMA_SOURCE_HINT}")
    try:
        frame = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
    except (ValueError, pd.errors.ParserError) as error:
        raise DatasetError(f"{path} is not FMA's tracks.csv ({error})") from None
    missing = [column for column in FMA_COLUMNS if column not in frame.columns]
    if missing:
        raise DatasetError(f"{path} has not FMA's tracks.csv header: columns {missing} are missing (the file "
                           f"starts with two header lines, e.g. 'set,...' over 'subset,...', then 'track_id,,...')")
    return frame


def build(root: str, split: str = "official", subset: str = "small", track_seconds: float = 30.0,
          genres: list[str] | None = None, audio_dir: str | None = None, **split_options) -> DatasetIndex:
    """The Free Music Archive: ``<root>/fma_metadata/tracks.csv`` and ``<root>/fma_<subset>/``.

    ``subset`` is nested (medium includes small). Labels are ``('track', 'genre_top')``; tracks
    without one are dropped with a count. ``split``: ``official`` (FMA's artist-conditional
    ``('set', 'split')``), ``random`` or ``kfold``.
    """
    if subset not in FMA_SUBSETS:
        raise DatasetError(f"dataset.subset={subset!r}: choose one of {list(FMA_SUBSETS)}")
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(f"dataset.root={root} does not exist. {FMA_SOURCE_HINT}")
    frame = read_fma_tracks(base / "fma_metadata" / "tracks.csv")
    audio = Path(audio_dir) if audio_dir else next(
        (base / f"fma_{size}" for size in FMA_SUBSETS[FMA_SUBSETS.index(subset):] + ("full",)
         if (base / f"fma_{size}").is_dir()), None)
    if audio is None or not audio.is_dir():
        raise DatasetError(f"no FMA audio folder for subset '{subset}' under {root}: expected "
                           f"{base / f'fma_{subset}'}/000/000002.mp3 and so on (or set dataset.audio_dir). "
                           f"{FMA_SOURCE_HINT}")
    rank = {size: i for i, size in enumerate(FMA_SUBSETS)}
    in_subset = frame[("set", "subset")].map(rank).le(rank[subset])
    frame = frame[in_subset]
    labelled = frame[("track", "genre_top")].notna()
    if (~labelled).sum():
        log.info("fma %s: %d tracks without a top genre dropped", subset, int((~labelled).sum()))
    frame = frame[labelled]
    not_ids = [str(track_id) for track_id in frame.index if not str(track_id).strip().isdigit()]
    if not_ids:   # the id names the file: anything but digits could lead anywhere (../../etc/passwd)
        raise DatasetError(f"{base / 'fma_metadata' / 'tracks.csv'}: track_id {not_ids[0][:60]!r} is not a number "
                           f"({len(not_ids)} such rows); FMA's track ids are digits, and they name the audio "
                           f"files: repair or remove those rows")
    split_names = {"training": "train", "validation": "val", "test": "test"}
    tracks = [Track(f"{track_id:06d}", fma_audio_path(audio, int(track_id)), str(row[("track", "genre_top")]),
                    split_names.get(str(row[("set", "split")]), "train"), str(row[("artist", "name")]))
              for track_id, row in frame.iterrows()]
    tracks, genre_list = select_genres(tracks, genres, "fma")
    if split == "official":
        protocol = f"fma-official-{subset}(artist-conditional)"
    else:
        tracks, protocol = apply_split(tracks, split, "fma", offers=("official",), **split_options)
    return DatasetIndex("fma", genre_list, tracks, protocol, track_seconds)

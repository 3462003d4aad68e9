"""Dataset builders named by ``conf/dataset/*.yaml`` (``_target_``): each returns a :class:`DatasetIndex`.

A builder reads metadata and lists files; it opens no audio (the audio cache does, and reports the
damaged files). Every builder fails with a :class:`DatasetError` that says what was expected where,
and where the dataset can be obtained, before any work starts.
"""
from __future__ import annotations

import dataclasses
import logging
from importlib import resources
from pathlib import Path

from genre.data import gtzan as gtzan_layout
from genre.data.audio import AUDIO_EXTENSIONS
from genre.data.index import DatasetError, DatasetIndex, SkippedFile, Track
from genre.data.splits import apply_split, from_lists
from genre.data.synthetic import GTZAN_GENRES, ensure_corpus

log = logging.getLogger(__name__)


def synthetic(root: str, tracks_per_genre: int, track_seconds: float, sample_rate: int, seed: int,
              split: str = "random", genres: list[str] | None = None, num_workers: int | None = None,
              **split_options) -> DatasetIndex:
    """The built-in corpus: generated into ``root`` on first use, then read as GTZAN."""
    if tracks_per_genre < 3:
        raise DatasetError(f"dataset.tracks_per_genre={tracks_per_genre}: need at least 3 "
                           f"(one each for train, val and test)")
    gtzan_layout.check_genres(genres, list(GTZAN_GENRES), "synthetic")
    ensure_corpus(root, tracks_per_genre, track_seconds, sample_rate, seed, GTZAN_GENRES, num_workers)
    tracks, genre_list = gtzan_layout.select_genres(gtzan_layout.scan_gtzan(root), genres, "synthetic")
    tracks, protocol = apply_split(tracks, split, "synthetic", **split_options)
    return DatasetIndex("synthetic", genre_list, tracks, protocol, track_seconds)


def gtzan_filtered_lists() -> dict[str, list[str]]:
    """The fault-filtered, artist-conditional split of Kereliuk, Sturm & Larsen (2015): 443/197/290 ids."""
    folder = resources.files("genre.data") / "gtzan_filtered"
    return {split: (folder / f"{name}.txt").read_text().split()
            for split, name in (("train", "train"), ("val", "valid"), ("test", "test"))}


def gtzan(root: str, split: str = "filtered", track_seconds: float = 30.0, genres: list[str] | None = None,
          **split_options) -> DatasetIndex:
    """A user's GTZAN copy (any of the layouts in :mod:`genre.data.gtzan`).

    ``split``: ``filtered`` (the fault-filtered artist-conditional split; ids it names that are
    not on disk are reported, not fatal), ``random`` or ``kfold`` (leaky: GTZAN's artists repeat).
    """
    tracks, genre_list = gtzan_layout.select_genres(gtzan_layout.scan_gtzan(Path(root)), genres, "gtzan")
    skipped: list[SkippedFile] = []
    if split == "filtered":
        lists = {name: [i for i in ids if i.split(".")[0] in genre_list]
                 for name, ids in gtzan_filtered_lists().items()}
        tracks, missing = from_lists(tracks, lists)
        for track_id, split_name in missing:
            skipped.append(SkippedFile(f"{root}/{track_id}", f"named by the filtered {split_name} list, not on disk"))
        if missing:
            log.warning("%d tracks of the filtered split are not on disk (listed in skipped_files.csv)",
                        len(missing))
        protocol = "gtzan-fault-filtered(Kereliuk-Sturm-Larsen-2015,443/197/290)"
    else:
        tracks, protocol = apply_split(tracks, split, "gtzan", offers=("filtered",), **split_options)
    return DatasetIndex("gtzan", genre_list, tracks, protocol, track_seconds, skipped)


def folder(root: str, split: str = "random", track_seconds: float = 30.0, genres: list[str] | None = None,
           **split_options) -> DatasetIndex:
    """Any collection: ``<root>/<genre>/**/<file>`` in WAV, AU, MP3, FLAC or OGG, any rate, mono or stereo.

    A track longer than ``track_seconds`` is cut to its first ``track_seconds``.
    """
    base = Path(root)
    expected = (f"one sub-folder per genre holding audio files ({', '.join(AUDIO_EXTENSIONS)}), "
                f"e.g. {base}/jazz/take_five.mp3")
    if not base.is_dir():
        raise DatasetError(f"dataset.root={root} does not exist; expected {expected}")
    tracks = [Track(f"{genre_dir.name}/{path.relative_to(genre_dir).with_suffix('')}", path, genre_dir.name)
              for genre_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
              for path in sorted(genre_dir.rglob("*")) if path.suffix.lower() in AUDIO_EXTENSIONS]
    if not tracks:
        raise DatasetError(f"dataset.root={root} holds no audio files in genre sub-folders; expected {expected}")
    tracks, genre_list = gtzan_layout.select_genres(tracks, genres, "folder")
    tracks, protocol = apply_split(tracks, split, "folder", **split_options)
    return DatasetIndex("folder", genre_list, tracks, protocol, track_seconds)


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


def fma(root: str, split: str = "official", subset: str = "small", track_seconds: float = 30.0,
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
    split_names = {"training": "train", "validation": "val", "test": "test"}
    tracks = [Track(f"{track_id:06d}", fma_audio_path(audio, int(track_id)), str(row[("track", "genre_top")]),
                    split_names.get(str(row[("set", "split")]), "train"), str(row[("artist", "name")]))
              for track_id, row in frame.iterrows()]
    tracks, genre_list = gtzan_layout.select_genres(tracks, genres, "fma")
    if split == "official":
        protocol = f"fma-official-{subset}(artist-conditional)"
    else:
        tracks, protocol = apply_split(tracks, split, "fma", offers=("official",), **split_options)
    return DatasetIndex("fma", genre_list, tracks, protocol, track_seconds)


def msd(labels: str, previews: str, split: str = "random", fraction: float = 1.0, sample_seed: int = 0,
        genres: list[str] | None = None, track_seconds: float = 30.0, metadata: str | None = None,
        **split_options) -> DatasetIndex:
    """Million Song Dataset tracks with genre ``labels`` (tagtraum ``.cls``) and their 7digital previews.

    Previews are read from ``<previews>/<TRACKID>.mp3``, however they got there (the downloader
    ``python -m genre.data.sevendigital`` writes that layout). A selected track without a preview is
    reported, not fatal. ``fraction``/``sample_seed`` keep a seeded share of the labelled tracks.
    ``metadata`` (the MSD summary file or ``data/`` folder) gives each track its artist, which
    ``split=artist`` needs.
    """
    from genre.data.msd import read_genre_labels, read_msd_metadata, select_tracks

    labels_by_track = read_genre_labels(labels)
    genre_list = gtzan_layout.check_genres(genres, list(set(labels_by_track.values())), "msd")
    chosen = select_tracks(labels_by_track, genre_list, fraction, sample_seed)
    folder_path = Path(previews)
    preview = {t: folder_path / f"{t}.mp3" for t in chosen}
    on_disk = {t for t, path in preview.items() if path.is_file()}  # one stat per track (MSD: 100k+)
    present = [Track(t, preview[t], g) for t, g in chosen.items() if t in on_disk]
    if not present:
        raise DatasetError(f"no preview of the {len(chosen)} selected tracks is in {previews}: expected "
                           f"<TRACKID>.mp3 files there; fetch them with python -m genre.data.sevendigital "
                           f"--out {previews} (see README)")
    skipped = [SkippedFile(str(preview[t]), "no preview on disk") for t in chosen if t not in on_disk]
    if metadata:
        songs = read_msd_metadata(metadata, [t.track_id for t in present])
        present = [dataclasses.replace(t, artist=songs[t.track_id].artist if t.track_id in songs else None)
                   for t in present]
    tracks, protocol = apply_split(present, split, "msd", **split_options)
    return DatasetIndex("msd", genre_list, tracks, protocol, track_seconds, skipped)

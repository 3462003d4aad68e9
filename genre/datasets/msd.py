"""The Million Song Dataset: per-track HDF5 metadata, tagtraum-style genre labels, and 7digital previews.

MSD ships no audio. Labels come from a ``.cls`` file (tagtraum cd1/cd2/cd2c, Top-MAGD: lines
``TRACKID<TAB>majority genre[<TAB>minority genre]``, ``#`` comments); audio from 30-s 7digital previews,
fetched by :mod:`genre.datasets.sevendigital` (or brought by the user) as ``<previews>/<TRACKID>.mp3``.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from genre.data.index import DatasetIndex, SkippedFile, Track, check_genres
from genre.data.splits import apply_split
from genre.runtime.errors import DatasetError

MSD_TRACK_ID = re.compile(r"^TR[A-Z0-9]{16}$")
MSD_SOURCE_HINT = ("the MSD and its 10,000-track MillionSongSubset are distributed by LabROSA (Columbia); "
                   "tagtraum genre annotations (msd_tagtraum_cd2c.cls) by tagtraum industries")


@dataclass(frozen=True)
class MsdTrack:
    track_id: str
    track_7digitalid: int
    artist: str
    title: str


def msd_track_path(data_dir: Path, track_id: str) -> Path:
    """``<data_dir>/<A>/<B>/<C>/<TRACKID>.h5`` with A, B, C the 3rd-5th characters of the id."""
    return data_dir / track_id[2] / track_id[3] / track_id[4] / f"{track_id}.h5"


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _read_songs(path: Path) -> list[MsdTrack]:
    """All rows of one MSD HDF5 file (a per-track file has one row, a summary file N)."""
    try:
        with h5py.File(path, "r") as f:
            metadata, analysis = f["metadata"]["songs"][()], f["analysis"]["songs"][()]
    except (OSError, KeyError) as error:
        raise DatasetError(f"{path} is not an MSD track file (expected /metadata/songs and /analysis/songs: "
                           f"{error})") from None
    return [MsdTrack(_text(a["track_id"]), int(m["track_7digitalid"]), _text(m["artist_name"]), _text(m["title"]))
            for m, a in zip(metadata, analysis, strict=True)]


def read_msd_metadata(source: str | Path, track_ids: list[str] | None = None) -> dict[str, MsdTrack]:
    """Metadata of ``track_ids`` (all when ``None``) from a summary file or a ``data/A/B/C`` tree.

    In a tree, only the files of the wanted ids are opened; ids without a file are left out.
    """
    source = Path(source)
    if source.is_file():
        songs = _read_songs(source)
    elif source.is_dir():
        if track_ids is None:
            files = sorted(source.rglob("*.h5"))
        else:
            files = [p for p in (msd_track_path(source, t) for t in track_ids) if p.is_file()]
        songs = [song for path in files for song in _read_songs(path)]
    else:
        raise DatasetError(f"MSD metadata {source} does not exist: expected a summary .h5 file or the data/ "
                           f"folder of per-track files (data/A/B/C/TRAAABC....h5); {MSD_SOURCE_HINT}")
    wanted = None if track_ids is None else set(track_ids)
    return {s.track_id: s for s in songs if wanted is None or s.track_id in wanted}


def read_genre_labels(path: str | Path) -> dict[str, str]:
    """Track id -> majority genre from a tagtraum-format ``.cls`` file; a malformed line is an error."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"genre labels {path} do not exist: expected a tagtraum-format .cls file "
                           f"(e.g. msd_tagtraum_cd2c.cls); {MSD_SOURCE_HINT}")
    labels: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) not in (2, 3) or not MSD_TRACK_ID.match(fields[0]) or not fields[1].strip():
            raise DatasetError(f"{path}, line {number}: {line[:80]!r} is not 'TRACKID<TAB>genre[<TAB>genre]'")
        labels[fields[0]] = fields[1].strip()
    if not labels:
        raise DatasetError(f"{path} holds no labelled track")
    return labels


def select_tracks(labels: dict[str, str], genres: list[str] | None, fraction: float, seed: int) -> dict[str, str]:
    """The labelled tracks of ``genres``, then a seeded ``fraction`` of them (the seed project kept ~1 %).

    The downloader and the dataset call this with the same settings and so agree on the tracks.
    """
    if not 0 < fraction <= 1:
        raise DatasetError(f"dataset.fraction={fraction}: choose a fraction in (0, 1]")
    if genres is not None:
        labels = {t: g for t, g in labels.items() if g in set(genres)}
    ids = sorted(labels)
    keep = max(1, int(round(len(ids) * fraction))) if ids else 0
    chosen = np.random.default_rng(seed).choice(len(ids), size=keep, replace=False) if keep else []
    return {ids[i]: labels[ids[i]] for i in sorted(chosen)}


def build(labels: str, previews: str, split: str = "random", fraction: float = 1.0, sample_seed: int = 0,
          genres: list[str] | None = None, track_seconds: float = 30.0, metadata: str | None = None,
          **split_options) -> DatasetIndex:
    """Million Song Dataset tracks with genre ``labels`` (tagtraum ``.cls``) and their 7digital previews.

    Previews are read from ``<previews>/<TRACKID>.mp3``, however they got there (the downloader
    ``python -m genre.datasets.sevendigital`` writes that layout). A selected track without a preview is
    reported, not fatal. ``fraction``/``sample_seed`` keep a seeded share of the labelled tracks.
    ``metadata`` (the MSD summary file or ``data/`` folder) gives each track its artist, which
    ``split=artist`` needs.
    """
    labels_by_track = read_genre_labels(labels)
    genre_list = check_genres(genres, list(set(labels_by_track.values())), "msd")
    chosen = select_tracks(labels_by_track, genre_list, fraction, sample_seed)
    folder_path = Path(previews)
    preview = {t: folder_path / f"{t}.mp3" for t in chosen}
    on_disk = {t for t, path in preview.items() if path.is_file()}  # one stat per track (MSD: 100k+)
    present = [Track(t, preview[t], g) for t, g in chosen.items() if t in on_disk]
    if not present:
        raise DatasetError(f"no preview of the {len(chosen)} selected tracks is in {previews}: expected "
                           f"<TRACKID>.mp3 files there; fetch them with python -m genre.datasets.sevendigital "
                           f"--out {previews} (see README)")
    skipped = [SkippedFile(str(preview[t]), "no preview on disk") for t in chosen if t not in on_disk]
    if metadata:
        songs = read_msd_metadata(metadata, [t.track_id for t in present])
        present = [dataclasses.replace(t, artist=songs[t.track_id].artist if t.track_id in songs else None)
                   for t in present]
    tracks, protocol = apply_split(present, split, "msd", **split_options)
    return DatasetIndex("msd", genre_list, tracks, protocol, track_seconds, skipped)

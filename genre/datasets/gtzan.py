"""GTZAN's on-disk layout: ``<genre>/<genre>.000NN.(au|wav)`` under ``genres/``, ``genres_original/``
or ``Data/genres_original/`` (the original release, converted copies and the Kaggle copy).
The built-in synthetic corpus is written in the same layout and read by the same code."""
from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path

from genre.data.index import DatasetIndex, SkippedFile, Track, select_genres
from genre.data.splits import apply_split, from_lists
from genre.runtime.errors import DatasetError

log = logging.getLogger(__name__)
GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop",
                "jazz", "metal", "pop", "reggae", "rock")

GTZAN_LAYOUTS = ("genres", "genres_original", "Data/genres_original", ".")
_TRACK_FILE = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})\.(?P<ext>au|wav)$")
GTZAN_SOURCE_HINT = ("GTZAN is no longer served from its original host; most users have the Kaggle "
                     "copy ('GTZAN Dataset - Music Genre Classification'), whose Data/genres_original "
                     "folder works as is")


def find_genre_folder(root: Path) -> Path:
    """The folder under ``root`` that holds one sub-folder per genre, whichever copy the user has."""
    if not root.is_dir():
        raise DatasetError(f"dataset.root={root} does not exist. Expected GTZAN's layout "
                           f"<root>/genres/<genre>/<genre>.000NN.au (or .wav, or the Kaggle copy's "
                           f"Data/genres_original/). {GTZAN_SOURCE_HINT}.")
    for layout in GTZAN_LAYOUTS:
        candidate = root / layout
        if candidate.is_dir() and any(_TRACK_FILE.match(f.name)
                                      for sub in candidate.iterdir() if sub.is_dir()
                                      for f in sub.iterdir()):
            return candidate
    raise DatasetError(f"dataset.root={root} has no GTZAN tracks: expected one of "
                       f"{', '.join(str(root / l) for l in GTZAN_LAYOUTS)} to hold <genre>/<genre>.000NN.au "
                       f"or .wav files. {GTZAN_SOURCE_HINT}.")


def scan_gtzan(root: str | Path) -> list[Track]:
    """All tracks found under ``root``, labelled by their folder; ``.au`` wins over ``.wav`` duplicates."""
    folder = find_genre_folder(Path(root))
    tracks: dict[str, Track] = {}
    for genre_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        before = len(tracks)
        for path in sorted(genre_dir.iterdir()):
            match = _TRACK_FILE.match(path.name)
            if match and match["genre"] == genre_dir.name:
                track_id = f"{match['genre']}.{match['number']}"
                if track_id not in tracks or path.suffix == ".au":
                    tracks[track_id] = Track(track_id=track_id, path=path, genre=genre_dir.name)
        if len(tracks) == before:
            log.warning("genre folder %s holds no GTZAN tracks (%s.000NN.au or .wav): genre '%s' is left out",
                        genre_dir, genre_dir.name, genre_dir.name)
    return list(tracks.values())


def gtzan_filtered_lists() -> dict[str, list[str]]:
    """The fault-filtered, artist-conditional split of Kereliuk, Sturm & Larsen (2015): 443/197/290 ids."""
    folder = resources.files("genre.datasets") / "gtzan_filtered"
    return {split: (folder / f"{name}.txt").read_text().split()
            for split, name in (("train", "train"), ("val", "valid"), ("test", "test"))}


def build(root: str, split: str = "filtered", track_seconds: float = 30.0, genres: list[str] | None = None,
          **split_options) -> DatasetIndex:
    """A user's GTZAN copy (any of the layouts above).

    ``split``: ``filtered`` (the fault-filtered artist-conditional split; ids it names that are
    not on disk are reported, not fatal), ``random`` or ``kfold`` (leaky: GTZAN's artists repeat).
    """
    tracks, genre_list = select_genres(scan_gtzan(Path(root)), genres, "gtzan")
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

"""GTZAN's on-disk layout: ``<genre>/<genre>.000NN.(au|wav)`` under ``genres/``, ``genres_original/``
or ``Data/genres_original/`` (the original release, converted copies and the Kaggle copy).
The built-in synthetic corpus is written in the same layout and read by the same code."""
from __future__ import annotations

import re
from pathlib import Path

from genre.data.index import DatasetError, Track

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
        for path in sorted(genre_dir.iterdir()):
            match = _TRACK_FILE.match(path.name)
            if match and match["genre"] == genre_dir.name:
                track_id = f"{match['genre']}.{match['number']}"
                if track_id not in tracks or path.suffix == ".au":
                    tracks[track_id] = Track(track_id=track_id, path=path, genre=genre_dir.name)
    return list(tracks.values())


def check_genres(genres: list[str] | None, available: list[str], dataset: str) -> list[str]:
    """The label order for a run: ``genres`` if all are available (at least two), else all available."""
    if genres is None:
        return sorted(available)
    genres = list(genres)
    unknown = [g for g in genres if g not in available]
    if unknown:
        raise DatasetError(f"dataset.genres names {unknown}, which dataset '{dataset}' does not have; "
                           f"it has {sorted(available)}")
    if len(set(genres)) != len(genres) or len(genres) < 2:
        raise DatasetError(f"dataset.genres={genres}: name at least two different genres")
    return genres


def select_genres(tracks: list[Track], genres: list[str] | None, dataset: str) -> tuple[list[Track], list[str]]:
    """Keep the tracks of ``genres`` (all found if ``None``); the list order is the label order."""
    genres = check_genres(genres, list({t.genre for t in tracks}), dataset)
    return [t for t in tracks if t.genre in genres], genres

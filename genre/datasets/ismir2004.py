"""``dataset=ismir2004``: the ISMIR2004 genre collection (Magnatune; Cano et al. 2006), as Costa et al.
2017 and the Lederman project used it.

Layout (docs/datasets.md)::

    <root>/audio/{training,development,evaluation}/...mp3
    <root>/metadata/{training,evaluation}/tracklist.csv      class, artist, album, track, track number, file path
    <root>/metadata/development/ground_truth.csv              file path, class
    (<root>/metadata/development/tracklist.csv, if there, lists the same files without classes)

Labels come from the tracklists, never from folder names: training and evaluation audio sit in
folders of the ORIGINAL eight genres (jazz, blues, metal, punk, rock, pop, ...), not of the six
classes, and development audio is flat and anonymised. The official split is kept: training ->
train, development -> val, evaluation -> test. Classes are very unbalanced (classical 320 of 729):
read ``test/macro_f1`` beside accuracy.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from genre.data.index import DatasetIndex, SkippedFile, Track, inside_root, select_genres
from genre.runtime.errors import DatasetError

log = logging.getLogger(__name__)

ISMIR2004_CLASSES = ["classical", "electronic", "jazz_blues", "metal_punk", "rock_pop", "world"]
PARTS = (("training", "train"), ("development", "val"), ("evaluation", "test"))
PROTOCOL = "ismir2004-official(training/development/evaluation=729/729/729)"


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return [[cell.strip() for cell in row] for row in csv.reader(f) if any(cell.strip() for cell in row)]


def _labelled_files(path: Path) -> list[tuple[str, str]]:
    """``(file path, class)`` of each row of a tracklist or ground-truth file: the class is the cell that
    names one of the six classes, the file the cell ending in ``.mp3`` (a header row names neither)."""
    found = []
    for row in _rows(path):
        classes = [cell for cell in row if cell.lower() in ISMIR2004_CLASSES]
        files = [cell for cell in row if cell.lower().endswith(".mp3")]
        if classes and files:
            found.append((files[-1], classes[0].lower()))
    if not found:
        raise DatasetError(f"{path} names no file with one of the classes {ISMIR2004_CLASSES}; expected rows "
                           f"'class, artist, album, track, track number, file path' (or 'file path, class')")
    return found


def _resolve(root: Path, part: str, listed: str) -> Path | None:
    """The audio file a list names: relative to ``audio/<part>/``, to ``audio/``, or to the root; None
    when the name leads outside the dataset root (``../../x.mp3``)."""
    relative = Path(listed.replace("\\", "/").lstrip("/"))
    if inside_root(root, root / "audio" / part / relative) is None:
        return None
    for base in (root / "audio" / part, root / "audio", root):
        candidate = inside_root(root, base / relative)
        if candidate is not None and candidate.is_file():
            return candidate
    by_name = [p for p in (root / "audio" / part).rglob(relative.name) if inside_root(root, p) is not None]
    return by_name[0] if len(by_name) == 1 else root / "audio" / part / relative


def build(root: str, track_seconds: float = 60.0, genres: list[str] | None = None, split: str = "official",
          **_split_options) -> DatasetIndex:
    """The collection under ``root`` with its official split (the only one offered: the three parts
    were published as train / development / test)."""
    base = Path(root)
    if split != "official":
        raise DatasetError(f"dataset.split={split}: ismir2004 keeps its official split (training, development, "
                           f"evaluation); use split=official")
    label_files = {"training": base / "metadata" / "training" / "tracklist.csv",
                   "development": base / "metadata" / "development" / "ground_truth.csv",
                   "evaluation": base / "metadata" / "evaluation" / "tracklist.csv"}
    absent = [str(p) for p in label_files.values() if not p.is_file()]
    if absent:
        raise DatasetError(f"dataset.root={root} is not an ISMIR2004 collection: {', '.join(absent)} missing; "
                           f"expected audio/{{training,development,evaluation}}/ and metadata/ with the "
                           f"tracklists (labels come from them, not from folder names)")
    tracks, skipped = [], []
    for part, split_name in PARTS:
        for listed, label in _labelled_files(label_files[part]):
            path = _resolve(base, part, listed)
            if path is None:
                skipped.append(SkippedFile(listed, f"listed in {label_files[part].name} ({part}) with a path that "
                                                   f"leads outside dataset.root: not read"))
                continue
            if not path.is_file():
                skipped.append(SkippedFile(str(path), f"listed in {label_files[part].name} ({part}), not on disk"))
                continue
            tracks.append(Track(f"{part}/{Path(listed).with_suffix('').as_posix()}", path, label, split_name))
    if skipped:
        log.warning("%d files named by the ISMIR2004 lists are not on disk (listed in skipped_files.csv)",
                    len(skipped))
    tracks, genre_list = select_genres(tracks, genres, "ismir2004")
    return DatasetIndex("ismir2004", genre_list, tracks, PROTOCOL, track_seconds, skipped)

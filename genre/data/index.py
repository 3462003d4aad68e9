"""A dataset as data: an index of tracks (id -> file, genre, split, artist) and what was skipped.

Every loader (synthetic, GTZAN, ...) returns a :class:`DatasetIndex`; nothing downstream knows which
dataset it came from. Files are only opened later by the audio cache, which reports damaged ones.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from genre.runtime.errors import DatasetError, printable

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Track:
    """One audio file with its label. ``split`` is one of :data:`SPLITS`."""

    track_id: str
    path: Path
    genre: str
    split: str = "train"
    artist: str | None = None

    def __post_init__(self):
        # ids and genres are names, written to HDF5, MLflow and logs: a folder's non-UTF-8 bytes escaped (the
        # path stays the file's own)
        object.__setattr__(self, "track_id", printable(self.track_id))
        object.__setattr__(self, "genre", printable(self.genre))


def inside_root(root: Path, relative: str | Path) -> Path | None:
    """``root / relative`` when it stays inside ``root`` once ``..`` and links are followed, else None: no
    dataset reader opens a file outside the root it was given, whatever a tracklist or index says."""
    path = Path(root) / relative
    try:
        path.resolve().relative_to(Path(root).resolve())
    except ValueError:
        return None
    return path


@dataclass(frozen=True)
class SkippedFile:
    """A file that was left out of the run, and why (shown in the log and logged to the run)."""

    path: str
    reason: str


@dataclass
class DatasetIndex:
    """The tracks of a run, with the genre list (label order) and the split protocol that made the splits."""

    name: str
    genres: list[str]
    tracks: list[Track]
    split_protocol: str
    track_seconds: float
    skipped: list[SkippedFile] = field(default_factory=list)
    excerpt: str | float = "start"    # which track_seconds of a longer track are used (dataset.excerpt)

    def split(self, name: str) -> list[Track]:
        return [t for t in self.tracks if t.split == name]

    def check(self) -> None:
        """Refuse an index that cannot train: an empty split, a genre without training tracks."""
        for name in SPLITS:
            if not self.split(name):
                raise DatasetError(
                    f"dataset '{self.name}': the {name} split is empty ({len(self.tracks)} tracks in "
                    f"all, protocol {self.split_protocol}); add tracks or change dataset.split")
        missing = sorted(set(self.genres) - {t.genre for t in self.split("train")})
        if missing:
            raise DatasetError(f"dataset '{self.name}': no training track for genre(s) {missing}")


def skipped_csv(skipped: list[SkippedFile]) -> str:
    """The skipped files as CSV text (``path,reason``), the artifact logged to the run."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["path", "reason"])
    for item in skipped:
        writer.writerow([printable(item.path), printable(item.reason)])
    return out.getvalue()


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

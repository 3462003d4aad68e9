"""A dataset as data: an index of tracks (id -> file, genre, split, artist) and what was skipped.

Every loader (synthetic, GTZAN, ...) returns a :class:`DatasetIndex`; nothing downstream knows which
dataset it came from. Files are only opened later by the audio cache, which reports damaged ones.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
    """The dataset on disk or its settings cannot give a meaningful run; the message says what to do."""


@dataclass(frozen=True)
class Track:
    """One audio file with its label. ``split`` is one of :data:`SPLITS`."""

    track_id: str
    path: Path
    genre: str
    split: str = "train"
    artist: str | None = None


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
        writer.writerow([item.path, item.reason])
    return out.getvalue()

"""``dataset=folder``: any collection laid out as one sub-folder per genre."""
from __future__ import annotations

import logging
from pathlib import Path

from genre.data.audio import AUDIO_EXTENSIONS
from genre.data.index import DatasetIndex, SkippedFile, Track, inside_root, select_genres
from genre.data.splits import apply_split
from genre.runtime.errors import DatasetError

log = logging.getLogger(__name__)


def build(root: str, split: str = "random", track_seconds: float = 30.0, genres: list[str] | None = None,
          **split_options) -> DatasetIndex:
    """Any collection: ``<root>/<genre>/**/<file>`` in WAV, AU, MP3, FLAC or OGG, any rate, mono or stereo.

    A track longer than ``track_seconds`` is cut to its first ``track_seconds``.
    """
    base = Path(root)
    expected = (f"one sub-folder per genre holding audio files ({', '.join(AUDIO_EXTENSIONS)}), "
                f"e.g. {base}/jazz/take_five.mp3")
    if not base.is_dir():
        raise DatasetError(f"dataset.root={root} does not exist; expected {expected}")
    tracks, outside = [], []
    for genre_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        audio = [path for path in sorted(genre_dir.rglob("*")) if path.suffix.lower() in AUDIO_EXTENSIONS]
        # a link that leads out of dataset.root is not read (no reader opens a file outside its root)
        outside += [SkippedFile(str(path), "a link leading outside dataset.root: not read")
                    for path in audio if inside_root(base, path) is None]
        found = [Track(f"{genre_dir.name}/{path.relative_to(genre_dir).with_suffix('')}", path, genre_dir.name)
                 for path in audio if inside_root(base, path) is not None]
        if not found:
            log.warning("genre folder %s holds no audio files (%s): genre '%s' is left out", genre_dir,
                        ", ".join(AUDIO_EXTENSIONS), genre_dir.name)
        tracks += found
    if not tracks:
        raise DatasetError(f"dataset.root={root} holds no audio files in genre sub-folders; expected {expected}")
    tracks, genre_list = select_genres(tracks, genres, "folder")
    tracks, protocol = apply_split(tracks, split, "folder", **split_options)
    if outside:
        log.warning("%d files under %s are links leading outside it: not read (listed in skipped_files.csv)",
                    len(outside), root)
    return DatasetIndex("folder", genre_list, tracks, protocol, track_seconds, outside)

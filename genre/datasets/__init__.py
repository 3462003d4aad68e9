"""Where data comes from: one module per dataset, each with a ``build(...)`` that ``conf/dataset/*.yaml``
names as ``_target_`` and that returns a :class:`genre.data.index.DatasetIndex`.

A builder reads metadata and lists files; it opens no audio (the audio cache does, and reports the
damaged files). Every builder fails with a :class:`genre.runtime.errors.DatasetError` that says what was
expected where, and where the dataset can be obtained, before any work starts. The on-disk formats
and their traps are in docs/datasets.md.

A new dataset is its module here and its yaml in ``conf/dataset/`` (``name``, ``_target_``, ``root``,
``track_seconds`` and its own settings; ``defaults: [split/defaults@_here_]`` for the shared split
settings); its builder meets :class:`DatasetBuilder`.
"""
from __future__ import annotations

from typing import Protocol

from genre.data.index import DatasetIndex


class DatasetBuilder(Protocol):
    """``build(**dataset settings) -> DatasetIndex``: reads the metadata under its root and lists the tracks
    with their genre, split (named by the index's ``split_protocol``) and artist where known, plus the
    files it left out and why (``skipped``). It opens no audio and reads nothing outside its root."""

    def __call__(self, *, track_seconds: float, **settings) -> DatasetIndex: ...

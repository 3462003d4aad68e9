"""Front ends: what turns a waveform into what a model reads (``conf/features/``).

- :mod:`genre.features.spectral`: log-mel, MFCC and STFT spectrograms (:class:`FeatureExtractor`), computed
  once per track into the feature cache (:mod:`genre.data.cache`).
- :mod:`genre.features.encoders`: pretrained encoders (MERT, MuQ, CLAP, AST) whose hidden states, window by
  window, are the features (genre's own MERT and MuQ: :mod:`genre.features.mert`, :mod:`genre.features.muq`).

A new front end is a module of this folder and a yaml in ``conf/features/`` whose ``_target_`` names it; it
meets :class:`FrontEnd`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class FrontEnd(Protocol):
    """What the caches, the clips, the exported model and inference need of a front end: waveforms at
    ``sample_rate`` ``(..., n_samples)`` -> features ``(..., n_bands, n_frames)``, frames ``hop_length``
    samples apart (centred), ``n_frames(n_samples)`` of them; ``settings()`` decide its output and key the
    feature cache. A new one is a ``kind`` of :class:`~genre.features.spectral.FeatureExtractor` or a module of its own, with its yaml
    in ``conf/features/``."""

    kind: str
    sample_rate: int
    hop_length: int
    n_bands: int

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor: ...

    def n_frames(self, n_samples: int) -> int: ...

    def settings(self) -> dict: ...

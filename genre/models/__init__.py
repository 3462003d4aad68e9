"""What learns: the networks, the Lightning module that trains them, the classical baselines, the schedules.

- The networks, each built from ``conf/model/*.yaml`` with the input shape ``(n_bands, clip_frames)`` and
  the number of genres: ``cnn3`` (the seed project's 3-layer CNN) and ``resnet`` (short-chunk ResNet).
- :mod:`genre.models.module`: the LightningModule (normalisation, loss, metrics, track aggregation).
- :mod:`genre.models.classical`: the scikit-learn baselines (``model=svm|logreg|knn|tree|naive_bayes``).
- :mod:`genre.models.schedules`: learning-rate schedules that need the run's length in steps.
- :mod:`genre.models.predictor`: a checkpoint as a function of audio.

A new network is its module here and its yaml in ``conf/model/`` (``name``, ``_target_`` and its own
settings); :func:`genre.assembly.targets.build_network` builds it, and it must meet :class:`Network`.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Network(Protocol):
    """What the trainer, the exported model, the plots and ``similar=`` need of a network.

    Built as ``Net(input_shape=(n_bands, clip_frames), n_classes=n, **settings)``; it takes clips
    ``(batch, 1, n_bands, clip_frames)`` of normalised features. ``forward(x) == head(embed(x))`` gives
    logits ``(batch, n_classes)``; ``embed(x)`` is the learned embedding ``(batch, width)`` (t-SNE and PCA
    plots, separation scores, the tracks like a song); ``head`` maps it to logits.
    """

    head: torch.nn.Module

    def embed(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

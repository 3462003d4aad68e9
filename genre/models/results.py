"""What scoring one split gives: the predictions per clip and per track, the value the reports, plots and
the logged model's metadata are made from (numpy only)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TestResults:
    """The predictions of one scored split, as genre indices.

    ``clip_*`` per clip, ``track_*`` per track (a classical baseline scores tracks: its clips are its
    tracks). ``track_scores`` are the aggregated probabilities and ``track_embedding`` the learned embedding
    of each track (networks); ``statistics`` the per-track features a classical baseline was scored on.
    """

    __test__ = False   # not a pytest test class, whatever its name

    clip_true: np.ndarray
    clip_pred: np.ndarray
    track_true: np.ndarray
    track_pred: np.ndarray
    track_scores: np.ndarray | None = None
    track_embedding: np.ndarray | None = None
    statistics: np.ndarray | None = None

    @property
    def acc(self) -> float:
        """Clip accuracy."""
        return float(np.mean(self.clip_true == self.clip_pred)) if len(self.clip_true) else float("nan")

    @property
    def track_acc(self) -> float:
        """Track accuracy."""
        return float(np.mean(self.track_true == self.track_pred)) if len(self.track_true) else float("nan")

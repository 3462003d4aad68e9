"""From a waveform to genre scores: windows covering the track, clip probabilities, track aggregation.

This file imports only numpy and torch, never the rest of ``genre``: it travels inside every logged
MLflow model (as its code), so the model classifies audio where this package is not installed, with
the very code ``evaluate.py audio=`` runs (:meth:`genre.models.module.GenreClassifier.classify_waveform`).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

AGGREGATION_METHODS = ("mean", "vote")   # clips -> track: mean of probabilities, or majority vote


def window_starts(n_frames: int, clip_frames: int) -> np.ndarray:
    """Start frames of the fewest evenly spaced clips of ``clip_frames`` that cover ``n_frames`` frames.

    The first clip starts at frame 0 and the last ends at the last frame; neighbours overlap by the
    smallest amount that makes this possible.
    """
    if clip_frames > n_frames:
        raise ValueError(f"a clip of {clip_frames} frames does not fit in {n_frames} frames")
    count = math.ceil(n_frames / clip_frames)
    return np.unique(np.linspace(0, n_frames - clip_frames, count).round().astype(np.int64))


def aggregate_tracks(clip_probs: torch.Tensor, track: torch.Tensor, method: str = "mean"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine clip predictions ``(n_clips, n_classes)`` into one per track.

    ``method="mean"`` averages the clip probabilities; ``"vote"`` takes the share of clips voting
    for each class (majority vote), ties going to the class with the higher mean probability.
    Returns the sorted unique track positions ``(n_tracks,)`` and their scores ``(n_tracks, n_classes)``.
    """
    if method not in AGGREGATION_METHODS:
        raise ValueError(f"aggregation {method!r}: choose one of {AGGREGATION_METHODS}")
    tracks, inverse = torch.unique(track, return_inverse=True)
    counts = torch.bincount(inverse, minlength=len(tracks)).unsqueeze(1).to(clip_probs.dtype)
    mean = torch.zeros(len(tracks), clip_probs.shape[1], dtype=clip_probs.dtype,
                       device=clip_probs.device).index_add_(0, inverse, clip_probs) / counts
    if method == "mean":
        return tracks, mean
    votes = F.one_hot(clip_probs.argmax(1), clip_probs.shape[1]).to(clip_probs.dtype)
    share = torch.zeros_like(mean).index_add_(0, inverse, votes) / counts
    return tracks, share + 1e-6 * mean  # the tie-break term is below any difference of two shares


def min_samples(clip_frames: int, hop_length: int) -> int:
    """The shortest waveform whose centred frames fill one clip: shorter ones are zero-padded to it."""
    return (clip_frames - 1) * hop_length + 1


def cut_windows(features: torch.Tensor, clip_frames: int) -> torch.Tensor:
    """Every window (:func:`window_starts`) of a feature matrix ``(n_bands, n_frames)``, as clips
    ``(n, 1, n_bands, clip_frames)``."""
    starts = window_starts(features.shape[-1], clip_frames)
    return torch.stack([features[:, s:s + clip_frames] for s in starts]).unsqueeze(1)


def waveform_clips(waveform: np.ndarray, frontend: Callable[[torch.Tensor], torch.Tensor], clip_frames: int,
                   hop_length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The windows covering a whole mono waveform (:func:`window_starts`), ``(n, 1, n_bands, clip_frames)``:
    zero-padded to one clip if shorter, features computed once for the whole waveform and then cut."""
    return cut_windows(waveform_features(waveform, frontend, clip_frames, hop_length, device), clip_frames)


def waveform_features(waveform: np.ndarray, frontend: Callable[[torch.Tensor], torch.Tensor], clip_frames: int,
                      hop_length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The features ``(n_bands, n_frames)`` of a whole mono waveform, zero-padded to one clip if shorter: what
    :func:`waveform_clips` cuts its windows from."""
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    shortest = min_samples(clip_frames, hop_length)
    if waveform.shape[0] < shortest:
        waveform = np.pad(waveform, (0, shortest - waveform.shape[0]))
    return frontend(torch.from_numpy(waveform).to(device))


@torch.no_grad()
def classify_waveform(waveform: np.ndarray, frontend: Callable[[torch.Tensor], torch.Tensor],
                      clip_probabilities: Callable[[torch.Tensor], torch.Tensor], clip_frames: int,
                      hop_length: int, aggregation: str = "mean", batch_size: int = 32,
                      device: torch.device | str = "cpu") -> np.ndarray:
    """Genre scores ``(n_genres,)`` of a whole mono waveform at the front end's sample rate.

    ``frontend``: waveform ``(n_samples,)`` -> features ``(n_bands, n_frames)``; ``clip_probabilities``:
    clips ``(n, 1, n_bands, clip_frames)`` -> probabilities ``(n, n_genres)`` (normalisation included).
    Each window of :func:`waveform_clips` is classified and the windows aggregated as in evaluation.
    """
    probs = window_probabilities(waveform, frontend, clip_probabilities, clip_frames, hop_length, batch_size, device)
    return aggregate_windows(probs, aggregation)


@torch.no_grad()
def window_probabilities(waveform: np.ndarray, frontend: Callable[[torch.Tensor], torch.Tensor],
                         clip_probabilities: Callable[[torch.Tensor], torch.Tensor], clip_frames: int,
                         hop_length: int, batch_size: int = 32, device: torch.device | str = "cpu") -> torch.Tensor:
    """The genre probabilities ``(n_windows, n_genres)`` of each window of :func:`waveform_clips`."""
    clips = waveform_clips(waveform, frontend, clip_frames, hop_length, device)
    return torch.cat([clip_probabilities(clips[i:i + batch_size]) for i in range(0, len(clips), batch_size)])


def aggregate_windows(probs: torch.Tensor, aggregation: str = "mean") -> np.ndarray:
    """One track's scores ``(n_genres,)`` from its windows' probabilities, as evaluation aggregates clips."""
    _, scores = aggregate_tracks(probs, torch.zeros(len(probs), dtype=torch.long, device=probs.device), aggregation)
    return scores[0].cpu().numpy()


def window_count(n_samples: int, hop: int) -> int:
    """Windows an encoder front end covers ``n_samples`` with: one every ``hop`` samples, ``ceil(n / hop)`` of
    them (at least one)."""
    return max(1, math.ceil(n_samples / hop))


def embed_windows(waveform: torch.Tensor, window_embedder: Callable[[torch.Tensor], torch.Tensor], window: int,
                  hop: int, batch_windows: int = 8) -> torch.Tensor:
    """An encoder front end's output for one mono waveform ``(n_samples,)``: windows of ``window`` samples every
    ``hop`` (:func:`window_count` of them, the last zero-padded), embedded ``batch_windows`` at a time by
    ``window_embedder`` (``(n, window)`` -> ``(n, n_bands)``), as ``(n_bands, n_windows)``. Memory grows with
    ``batch_windows``, not with the waveform's length; each window is embedded on its own."""
    count = window_count(waveform.shape[-1], hop)
    padded = torch.nn.functional.pad(waveform, (0, (count - 1) * hop + window - waveform.shape[-1]))
    windows = padded.unfold(-1, window, hop)
    return torch.cat([window_embedder(windows[i:i + batch_windows]) for i in range(0, count, batch_windows)]).T

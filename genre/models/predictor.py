"""A trained network as a function of audio, without Lightning or MLflow: what ``evaluate.py audio=``
loads from a checkpoint to classify a file in about the time torch takes to import.

:func:`read_checkpoint` reads a checkpoint as plain data only; :func:`genre.assembly.predictor.load_predictor`
rebuilds the front end, the normalisation and the network from the run's config inside it, with the trained
weights. The
prediction itself is :mod:`genre.models.inference`'s, the code the logged MLflow model and
:class:`genre.models.module.GenreClassifier` run, so all three agree to the last bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from genre.models.inference import classify_waveform, waveform_clips, window_probabilities
from genre.runtime.errors import ConfigError


class Normalize(nn.Module):
    """Per-band standardisation with statistics of the training split: ``(x - mean) / std``."""

    def __init__(self, n_bands: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_bands, 1))
        self.register_buffer("std", torch.ones(n_bands, 1))

    def set(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean).reshape(-1, 1))
        self.std.copy_(torch.as_tensor(std).reshape(-1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ClipClassifier(nn.Module):
    """What MLflow stores as the model: feature clips ``(batch, 1, n_bands, n_frames)`` -> genre probabilities."""

    def __init__(self, normalize: Normalize, net: nn.Module):
        super().__init__()
        self.normalize = normalize
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(self.normalize(x)), dim=-1)


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by :func:`genre.train.train`; its run information (config, genres, run id)
    is under ``"genre"``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path={path} does not exist; name a checkpoint written by train.py "
                          f"(outputs/runs/<date>/checkpoints/best-NN.ckpt or last.ckpt)")
    import pickle

    try:
        # plain data only (tensors, numbers, strings, lists, dicts): unpickling anything else could run code
        # that whoever wrote the file put in it, and a shared tracking server hands out anyone's checkpoints
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).split("\n")
        named = next((line.strip() for line in reason if "GLOBAL" in line or "Unsupported" in line), reason[0])
        raise ConfigError(f"ckpt_path={path} holds more than plain data ({named[:200]}); it was refused, because "
                          f"loading it could run code written into it. train.py writes tensors and plain values "
                          f"only: use a checkpoint of this project from a source you trust") from None
    except Exception as error:   # torch's unpickler raises many types for what is not a checkpoint
        raise ConfigError(f"ckpt_path={path} cannot be read as a checkpoint ({type(error).__name__}: "
                          f"{str(error).splitlines()[0][:200] if str(error) else 'truncated'}); it may be damaged "
                          f"or cut short, or not a checkpoint at all: name a .ckpt written by train.py") from None
    if not isinstance(checkpoint, dict) or not checkpoint.get("genre"):
        raise ConfigError(f"ckpt_path={path} was not written by genre's train.py (no run information in it)")
    return checkpoint


@dataclass
class Predictor:
    """The front end, normalisation and network of a trained run, in evaluation mode, on the CPU."""

    frontend: nn.Module
    normalize: Normalize
    net: nn.Module
    genres: list[str]
    clip_frames: int
    aggregation: str
    config: DictConfig
    run_info: dict = field(default_factory=dict)

    def _probabilities(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(clips)).softmax(-1)

    @torch.no_grad()
    def classify_waveform(self, waveform: np.ndarray) -> np.ndarray:
        """Genre scores ``(n_genres,)`` of a whole mono waveform at the front end's sample rate."""
        return classify_waveform(waveform, self.frontend, self._probabilities, self.clip_frames,
                                 self.frontend.hop_length, self.aggregation)

    @torch.no_grad()
    def window_probabilities(self, waveform: np.ndarray) -> torch.Tensor:
        """The probabilities ``(n_windows, n_genres)`` of each window covering ``waveform``."""
        return window_probabilities(waveform, self.frontend, self._probabilities, self.clip_frames,
                                    self.frontend.hop_length)

    @torch.no_grad()
    def embed_waveform(self, waveform: np.ndarray) -> np.ndarray:
        """The learned embedding of a waveform: the mean of its windows' embeddings."""
        clips = waveform_clips(waveform, self.frontend, self.clip_frames, self.frontend.hop_length)
        return self.net.embed(self.normalize(clips)).mean(0).numpy()

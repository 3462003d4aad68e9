"""Probes of a frozen pretrained encoder (``model=probe`` over ``features=mert_v1_95m`` and the other encoders).

A clip of an encoder front end (:mod:`genre.features.encoders`) is ``(1, n_layers * width, n_windows)``: every
hidden state of each window, averaged over the window's time. The probe averages the clip's windows (MARBLE's
pooling over the time of the whole clip), takes the layers ``layer`` names, and puts a linear or an MLP head
on them. It trains through the same Lightning path as the CNNs, from the cached embeddings, in seconds.
"""
from __future__ import annotations

import torch
from torch import nn

from genre.runtime.errors import ConfigError


class Probe(nn.Module):
    """Args:
        input_shape: ``(n_layers * width, n_windows)`` of a clip.
        n_classes: genres.
        n_layers: hidden states per window (``encoder.layers``).
        layer: one index (negative counts from the last), a list of indices (their vectors side by side), or
            ``weighted``: a learned softmax-weighted sum over all layers (SUPERB's and MARBLE's).
        head: ``linear`` or ``mlp``.
        hidden: the MLP's hidden width (the learned embedding of the plots); dropout: before each linear map.
        encoder: the ``encoder`` settings; with ``encoder.trainable`` (``top:N``, ``true``) the encoder is part of
            this network and learns, at ``encoder_lr`` (default a tenth of the optimizer's rate).
    """

    def __init__(self, input_shape: tuple[int, int], n_classes: int, n_layers: int | None = None,
                 layer: int | list[int] | str = "weighted", head: str = "mlp", hidden: int = 512, dropout: float = 0.2,
                 encoder: dict | None = None, encoder_lr: float | None = None):
        super().__init__()
        bands = input_shape[0]
        if not n_layers:
            raise ConfigError("model=probe reads a pretrained encoder's embeddings: choose one with "
                              "features=mert_v1_95m (or mert_v1_330m, muq, clap_music, ast), not a spectrogram front end")
        from genre.features.encoders import embedder, trainable_layers

        self.encoder, self.encoder_lr, self.encoder_name = None, encoder_lr, None
        if encoder is not None and trainable_layers(encoder.get("trainable")) is not None:
            # fine-tuning: clips are windows of waveform (bands = the window's samples), embedded here, with grads
            self.encoder, _ = embedder(encoder["name"], encoder["loader"], encoder["hub_id"], encoder["revision"],
                                       encoder.get("path"), n_layers, encoder["trainable"])
            self.window_samples, self.encoder_name = bands, encoder["name"]
            bands = n_layers * int(encoder["width"])   # checked on the encoder's first windows
        if bands % n_layers:
            raise ConfigError(f"model.n_layers={n_layers} does not divide the front end's {bands} bands")
        self.n_layers, self.width = n_layers, bands // n_layers
        if layer == "weighted":
            self.layer_weights = nn.Parameter(torch.zeros(n_layers))
            chosen = list(range(n_layers))   # all of them, summed with weights
        else:
            chosen = [layer] if isinstance(layer, int) else list(layer)
            if not chosen or not all(isinstance(i, int) and -n_layers <= i < n_layers for i in chosen):
                raise ConfigError(f"model.layer={layer!r}: an index from 0 to {n_layers - 1} (or negative, from the "
                                  f"last), a list of them, or weighted")
            self.layer_weights = None
        self.register_buffer("chosen", torch.tensor([i % n_layers for i in chosen], dtype=torch.long), persistent=False)
        features = self.width * (1 if layer == "weighted" else len(chosen))
        if head == "linear":
            self.embedding = nn.Identity()
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, n_classes))
        elif head == "mlp":
            self.embedding = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, hidden), nn.ReLU())
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))
        else:
            raise ConfigError(f"model.head={head!r}: choose linear or mlp")

    def layer_mix(self) -> torch.Tensor | None:
        """The weights of the layers' sum (``layer=weighted``), ``(n_layers,)``; else ``None``."""
        return None if self.layer_weights is None else self.layer_weights.softmax(0)

    def param_groups(self) -> list[dict]:
        """The optimizer's parameter groups: the head (and layer weights) at the optimizer's rate; a trained
        encoder's layers at ``encoder_lr``, or else at a tenth of that rate (``lr_scale``, applied by
        :meth:`genre.models.module.GenreClassifier.configure_optimizers`): a pretrained network takes smaller
        steps than a new head."""
        encoder = [p for p in self.encoder.parameters() if p.requires_grad] if self.encoder is not None else []
        ours = [p for name, p in self.named_parameters() if not name.startswith("encoder.")]
        rate = {"lr": self.encoder_lr} if self.encoder_lr else {"lr_scale": 0.1}
        return [{"params": ours}] + ([{"params": encoder, **rate}] if encoder else [])

    def embedded(self, x: torch.Tensor) -> torch.Tensor:
        """Clips of waveform windows ``(batch, 1, window_samples, n_windows)`` through the trained encoder ->
        ``(batch, 1, n_layers * width, n_windows)``, as the frozen path's cache holds them."""
        batch, frames = x.shape[0], x.shape[-1]
        from genre.features.encoders import checked_width

        windows = x[:, 0].transpose(1, 2).reshape(batch * frames, self.window_samples)
        embedded = checked_width(self.encoder(windows), self.n_layers, self.width, self.encoder_name)
        return embedded.reshape(batch, frames, -1).transpose(1, 2).unsqueeze(1)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Clips ``(batch, 1, n_layers * width, n_windows)`` -> the probe's input ``(batch, features)``."""
        if self.encoder is not None:
            x = self.embedded(x)
        layers = x.reshape(x.shape[0], self.n_layers, self.width, x.shape[-1]).mean(-1)   # (batch, layers, width)
        if self.layer_weights is not None:
            return torch.einsum("l,blw->bw", self.layer_mix(), layers)
        return layers.index_select(1, self.chosen).flatten(1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.pooled(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

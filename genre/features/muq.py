"""MuQ (Zhu et al. 2025, ``OpenMuQ/MuQ-large-msd-iter``), written here from its released structure so that its
weights load without the ``muq`` package.

The ``muq`` package imports its music-text model (MuQ-MuLan) and that model's dependencies (``x_clip`` and
through it ``torchvision``) whenever it is imported, and its encoder was written for transformers 4, whose
conformer encoder returned every hidden state itself. What MuQ computes, and what this module does alike:

- a log-mel spectrogram (torchaudio: 24 kHz, 2048-point FFT, hop 240, 128 bands, power to dB), its last frame
  dropped, standardised with the checkpoint's statistics (``stat``: ``melspec_2048_mean``/``_std``);
- two residual 2-D convolution blocks that take it to 25 frames a second, and a linear projection;
- a wav2vec 2.0 conformer encoder (transformers' ``Wav2Vec2ConformerEncoder``), whose hidden states are, as
  transformers 4 returned them: the encoder's input, each layer's output, and the last one layer-normed.

The weights' names are MuQ's (``model.conv...``, ``model.conformer...``); its pre-training heads (the random
quantizer, the prediction layer) are not needed for embeddings and are not loaded. The weights are licensed
CC-BY-NC 4.0 (the code MIT).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from genre.runtime.errors import ConfigError, EncoderUnavailable


class ResidualBlock(nn.Module):
    """MuQ's ``Res2dModule``: two 3x3 convolutions with batch norm, and a strided 3x3 shortcut when the shape changes."""

    def __init__(self, channels_in: int, channels_out: int, stride: tuple[int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1, stride=stride)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.relu = nn.ReLU()
        self.diff = channels_in != channels_out or stride[0] > 1
        if self.diff:
            self.conv3 = nn.Conv2d(channels_in, channels_out, 3, padding=1, stride=stride)
            self.bn3 = nn.BatchNorm2d(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu((self.bn3(self.conv3(x)) if self.diff else x) + out)


class Subsampling(nn.Module):
    """MuQ's ``Conv2dSubsampling``: (batch, bands, frames) -> (batch, frames / 4, width)."""

    def __init__(self, hidden: int, width: int, strides: list[int], n_bands: int):
        super().__init__()
        self.conv = nn.Sequential(ResidualBlock(1, hidden, (2, strides[0])), ResidualBlock(hidden, hidden, (2, strides[1])))
        self.linear = nn.Linear(hidden * n_bands // 2 // 2, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.unsqueeze(1))                                  # (batch, channels, bands, frames)
        return self.linear(x.permute(0, 3, 1, 2).flatten(2))           # (batch, frames, channels * bands)


class Backbone(nn.Module):
    """What of ``MuQModel`` the embeddings need: its convolutions and its conformer (its names: ``conv``,
    ``conformer``)."""

    def __init__(self, config: dict):
        from transformers import Wav2Vec2ConformerConfig
        from transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer import Wav2Vec2ConformerEncoder

        super().__init__()
        n_fold = 100 // int(config.get("label_rate", 25))
        strides = {4: [2, 2], 2: [2, 1]}.get(n_fold)
        if strides is None:
            raise ConfigError(f"MuQ with label_rate={config.get('label_rate')}: only 25 and 50 Hz were released")
        width = int(config.get("encoder_dim", 1024))
        self.conv = Subsampling(int(config.get("conv_dim", 512)), width, strides, int(config.get("n_mels", 128)))
        conformer = Wav2Vec2ConformerConfig(**{**config.get("w2v2_config", {}),
                                               "num_hidden_layers": int(config.get("encoder_depth", 12)),
                                               "hidden_size": width})
        conformer._attn_implementation = "eager"   # MuQ's attention: relative positions, as transformers 4 ran it
        self.conformer = Wav2Vec2ConformerEncoder(conformer)


class MuQ(nn.Module):
    """MuQ's encoder: waveforms ``(batch, samples)`` at 24 kHz -> its hidden states, each ``(batch, frames, width)``
    at 25 frames a second (``encoder_depth + 1`` of them)."""

    def __init__(self, config: dict):
        import torchaudio

        super().__init__()
        if config.get("features", ["melspec_2048"]) != ["melspec_2048"]:
            raise ConfigError(f"MuQ with features={config.get('features')}: only melspec_2048 was released")
        self.config = dict(config)
        self.model = Backbone(config)
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=24000, n_fft=2048,
                                                        hop_length=int(config.get("hop_length", 240)),
                                                        n_mels=int(config.get("n_mels", 128)))
        self.to_db = torchaudio.transforms.AmplitudeToDB()
        stat = config.get("stat") or {}
        self.mean, self.std = float(stat.get("melspec_2048_mean", 0.0)), float(stat.get("melspec_2048_std", 1.0))

    @classmethod
    def from_folder(cls, folder: Path) -> "MuQ":
        """MuQ as its hub repository holds it (``config.json`` of ``MuQConfig`` fields, ``model.safetensors``);
        the conformer's and the convolutions' weights must all be there."""
        from safetensors.torch import load_file

        config = json.loads((folder / "config.json").read_text())
        if "encoder_dim" not in config or "w2v2_config" not in config:
            raise EncoderUnavailable(f"{folder} holds no MuQ (its config.json has no encoder_dim or w2v2_config): "
                                     f"encoder.path names another model's weights")
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise EncoderUnavailable(f"{folder} has no model.safetensors: download MuQ's weights again")
        model = cls(config)
        tensors = {k: v for k, v in load_file(weights).items() if k.startswith(("model.conv.", "model.conformer."))}
        missing, _ = model.load_state_dict(tensors, strict=False)
        missing = [k for k in missing if k.startswith("model.")]
        if missing:
            raise EncoderUnavailable(f"the weights in {folder} lack {len(missing)} of MuQ's tensors ({missing[0]}, "
                                     f"...): they are incomplete or another model's; download them again")
        return model

    def layers(self) -> nn.ModuleList:
        """The conformer layers, bottom to top (``encoder.trainable=top:N`` trains the last N)."""
        return self.model.conformer.layers

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mel = (self.to_db(self.mel(waveform))[..., :-1] - self.mean) / self.std
        conformer = self.model.conformer
        hidden = conformer.dropout(self.model.conv(mel))
        positions = conformer.embed_positions(hidden) if conformer.embed_positions is not None else None
        states = [hidden]
        for layer in conformer.layers:
            hidden = layer(hidden, attention_mask=None, relative_position_embeddings=positions)
            states.append(hidden)
        states[-1] = conformer.layer_norm(states[-1])
        return tuple(states)

"""A short-chunk residual CNN on log-mel: what trains best from scratch on small music datasets
(Won, Ferraro, Bogdanov & Serra 2020, "Evaluation of CNN-based automatic music tagging models":
short chunks, 3x3 residual blocks with batch norm, max pooling, global max pooling over time)."""
from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a (1x1 projected) skip, ReLU, then max pooling."""

    def __init__(self, in_channels: int, out_channels: int, pool: tuple[int, int]):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.pool = nn.MaxPool2d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.body(x) + self.skip(x)))


class ShortChunkResNet(nn.Module):
    """Input ``(batch, 1, n_bands, n_frames)``; any clip length (global max pooling over time).

    Each block halves frequency and time while they are at least 2; after the last block the
    remaining map is max-pooled to one value per channel, then a batch-normed fully connected
    layer gives the embedding (t-SNE) and a linear layer the logits.
    """

    def __init__(self, input_shape: tuple[int, int], n_classes: int,
                 channels: tuple[int, ...] = (32, 32, 64, 64, 128, 128, 128), hidden: int = 128,
                 dropout: float = 0.5):
        super().__init__()
        height, width = input_shape
        blocks, in_channels = [], 1
        for out_channels in channels:
            pool = (2 if height >= 2 else 1, 2 if width >= 2 else 1)
            blocks.append(ResidualBlock(in_channels, out_channels, pool))
            height, width, in_channels = height // pool[0], width // pool[1], out_channels
        self.input_norm = nn.BatchNorm2d(1)
        self.blocks = nn.Sequential(*blocks)
        self.embedding = nn.Sequential(nn.Linear(in_channels, hidden), nn.BatchNorm1d(hidden),
                                       nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.input_norm(x))
        return self.embedding(features.amax(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

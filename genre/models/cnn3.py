"""The classic network of the seed project (Lachmish 2016): three convolution layers, each followed by
max pooling, then a fully connected layer and a softmax over the genres."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SameConv2d(nn.Conv2d):
    """A convolution whose output has its input's size ('same' padding), for even kernels too.

    ``padding="same"`` with an even kernel makes torch warn, on every run, that it copies the input
    to pad it unevenly; this pads the same way (the extra row and column at the end) with one
    explicit ``F.pad``, so outputs, parameters and checkpoints are those of ``padding="same"``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size, padding=0)
        total = kernel_size - 1
        self.pads = (total // 2, total - total // 2) * 2  # (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pads))


class CNN3(nn.Module):
    """Input ``(batch, 1, n_bands, n_frames)``; works for 128 mel bands and for 13 MFCCs alike.

    Each block is a ``kernel_size`` x ``kernel_size`` convolution ('same' padding), ReLU, and
    ``pool`` x ``pool`` max pooling; a dimension that has shrunk below ``pool`` is no longer pooled
    (13 MFCCs: 13 -> 6 -> 3 -> 1). The fully connected layer's input size is measured by passing a
    dummy input through the blocks, never hand-computed. ``embed`` returns the fully connected layer's
    output, the learned embedding shown in the t-SNE plots; ``forward`` returns logits (the softmax
    is in the loss).
    """

    def __init__(self, input_shape: tuple[int, int], n_classes: int, channels: tuple[int, ...] = (16, 32, 32),
                 kernel_size: int = 4, pool: int = 2, hidden: int = 128, dropout: float = 0.5):
        super().__init__()
        height, width = input_shape
        layers: list[nn.Module] = []
        in_channels = 1
        for out_channels in channels:
            pool_shape = (pool if height >= pool else 1, pool if width >= pool else 1)
            layers += [SameConv2d(in_channels, out_channels, kernel_size),
                       nn.ReLU(inplace=True), nn.MaxPool2d(pool_shape)]
            height, width = height // pool_shape[0], width // pool_shape[1]
            in_channels = out_channels
        self.blocks = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.blocks(torch.zeros(1, 1, *input_shape)).numel()
        self.embedding = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, hidden),
                                       nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

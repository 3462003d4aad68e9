"""Augmentation of training batches, on the device the batch is on (``augment=...``, off by default).

Applied in :meth:`genre.models.module.GenreClassifier.training_step` to the cached features before their
normalisation, so the level operations work in dB: a random gain (a dB offset), a random spectral tilt
and random band gains (an EQ on the log spectrum), additive noise at a random SNR (added in power),
mixup, then SpecAugment's time and frequency masks. Every draw comes from a generator seeded with
``(seed, global step)``: a run and its resumed continuation augment the same way, and validation and
test batches are never touched. The settings are part of the run's config and so of its params.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from genre.runtime.errors import ConfigError

LEVEL_OPERATIONS = ("gain_db", "tilt_db", "band_gain_db", "noise_snr_db")   # need dB features (mel, stft)


class Augment:
    """Each setting at 0 (or ``None``) leaves its augmentation out; any combination may be on."""

    def __init__(self, time_masks: int = 0, time_mask_frames: int = 0, freq_masks: int = 0,
                 freq_mask_bands: int = 0, mixup_alpha: float = 0.0, gain_db: float = 0.0, tilt_db: float = 0.0,
                 band_gain_db: float = 0.0, band_gain_points: int = 6,
                 noise_snr_db: tuple[float, float] | list[float] | None = None, seed: int = 0):
        if noise_snr_db is not None and (len(noise_snr_db) != 2 or noise_snr_db[0] > noise_snr_db[1]):
            raise ConfigError(f"augment.noise_snr_db={noise_snr_db}: give [lowest, highest] SNR in dB, or null")
        if min(time_masks, time_mask_frames, freq_masks, freq_mask_bands, mixup_alpha, gain_db, tilt_db,
               band_gain_db) < 0 or band_gain_points < 2:
            raise ConfigError("augment: mask counts and widths, mixup_alpha and dB ranges must be >= 0, "
                              "band_gain_points >= 2")
        self.time_masks, self.time_mask_frames = time_masks, time_mask_frames
        self.freq_masks, self.freq_mask_bands = freq_masks, freq_mask_bands
        self.mixup_alpha = mixup_alpha
        self.gain_db, self.tilt_db = gain_db, tilt_db
        self.band_gain_db, self.band_gain_points = band_gain_db, band_gain_points
        self.noise_snr_db = tuple(noise_snr_db) if noise_snr_db is not None else None
        self.seed = seed

    def uses_levels(self) -> bool:
        return bool(self.gain_db or self.tilt_db or self.band_gain_db or self.noise_snr_db)

    def check_features(self, kind: str) -> None:
        """Gain, tilt, EQ and noise act on a log spectrum: refuse them on MFCCs and on a pretrained encoder's
        embeddings (before any work)."""
        if kind not in ("mel", "stft") and self.uses_levels():
            on = [name for name in LEVEL_OPERATIONS if getattr(self, name)]
            what = "is cepstral" if kind == "mfcc" else "gives a pretrained encoder's embeddings"
            raise ConfigError(f"augment: {', '.join(on)} act on a log spectrum in dB, and features={kind} {what}; "
                              f"use features=mel or stft, or set those to 0 (masks and mixup work on any features)")

    def __call__(self, x: torch.Tensor, y: torch.Tensor, n_classes: int, step: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented clips ``(batch, 1, bands, frames)`` (dB features) and their target probabilities
        ``(batch, n_classes)`` (one-hot unless mixup mixed them)."""
        g = torch.Generator(device=x.device).manual_seed(self.seed * 1_000_003 + step)
        batch, _, bands, frames = x.shape
        x = x.clone()

        def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            return low + (high - low) * torch.rand(*shape, generator=g, device=x.device)

        if self.gain_db:
            x += uniform(-self.gain_db, self.gain_db, batch, 1, 1, 1)
        if self.tilt_db:   # the change in dB from the lowest band to the highest
            ramp = torch.linspace(-0.5, 0.5, bands, device=x.device).view(1, 1, bands, 1)
            x += uniform(-self.tilt_db, self.tilt_db, batch, 1, 1, 1) * ramp
        if self.band_gain_db:  # a smooth random EQ: gains at a few points across the bands, interpolated
            points = uniform(-self.band_gain_db, self.band_gain_db, batch, 1, self.band_gain_points)
            curve = F.interpolate(points, size=bands, mode="linear", align_corners=True)
            x += curve.view(batch, 1, bands, 1)
        if self.noise_snr_db:  # white noise's periodogram: exponential values around its power
            snr = uniform(*self.noise_snr_db, batch, 1, 1, 1)
            power = torch.pow(10.0, x / 10)
            noise = power.mean(dim=(1, 2, 3), keepdim=True) / torch.pow(10.0, snr / 10)
            exponential = -torch.log1p(-torch.rand(x.shape, generator=g, device=x.device).clamp(max=1 - 1e-7))
            x = 10 * torch.log10(power + noise * exponential)
        target = F.one_hot(y, n_classes).to(x.dtype)
        if self.mixup_alpha:
            rng = np.random.default_rng([self.seed, step])
            lam = float(rng.beta(self.mixup_alpha, self.mixup_alpha))
            partner = torch.randperm(batch, generator=g, device=x.device)
            x = lam * x + (1 - lam) * x[partner]
            target = lam * target + (1 - lam) * target[partner]
        fill = x.mean(dim=(2, 3), keepdim=True)   # masked cells take the clip's mean (0 once normalised)
        for count, width, axis, size in ((self.time_masks, self.time_mask_frames, 3, frames),
                                         (self.freq_masks, self.freq_mask_bands, 2, bands)):
            for _ in range(count if width else 0):
                widths = torch.randint(0, min(width, size) + 1, (batch,), generator=g, device=x.device)
                starts = (torch.rand(batch, generator=g, device=x.device) * (size - widths + 1)).long()
                index = torch.arange(size, device=x.device)
                masked = (index >= starts[:, None]) & (index < (starts + widths)[:, None])   # (batch, size)
                shape = (batch, 1, size, 1) if axis == 2 else (batch, 1, 1, size)
                x = torch.where(masked.view(shape), fill, x)
        return x, target

"""Learning-rate schedules that need the run's length in steps (``scheduler=onecycle|warmup_cosine``).

:meth:`genre.models.module.GenreClassifier.configure_optimizers` passes ``total_steps`` (Lightning's estimate of
the optimizer steps of the whole fit) to a schedule that takes it, and steps such a schedule every
batch; the others (``scheduler=cosine``) step once per epoch.
"""
from __future__ import annotations

import math

import torch


def one_cycle(optimizer: torch.optim.Optimizer, total_steps: int, warmup_share: float = 0.3,
              final_div_factor: float = 1e3) -> torch.optim.lr_scheduler.LRScheduler:
    """Smith's one-cycle policy peaking at each group's configured learning rate after ``warmup_share``
    of the steps (cosine annealing both ways)."""
    peaks = [group["lr"] for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=max(2, total_steps),
                                               pct_start=warmup_share, final_div_factor=final_div_factor)


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_share: float = 0.05,
                  floor: float = 0.01) -> torch.optim.lr_scheduler.LRScheduler:
    """A linear warm-up over ``warmup_share`` of the steps, then cosine decay to ``floor`` x the rate.

    By hand (a ``LambdaLR``), not ``SequentialLR(LinearLR, CosineAnnealingLR)``: that one's ``eta_min`` is one
    absolute rate for every parameter group, where the floor here is a share of each group's own rate."""
    warmup = max(1, int(warmup_share * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

"""Checkpoints written whole or not at all, and the random states they carry.

Lightning writes a checkpoint straight under its final name: a full disk (or a kill) halfway left a
truncated ``best-00.ckpt`` (5.2 of 25.3 MB) that looked like any other. Here the bytes go to a hidden
partial file beside it, are flushed to the disk, and only then renamed over the final name (a rename
within a folder is atomic on POSIX file systems), so a checkpoint under its final name is complete.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` whose files appear under their names only once complete."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        try:
            super().save_checkpoint(checkpoint, partial, storage_options)
            with open(partial, "rb") as f:
                os.fsync(f.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def random_states() -> dict:
    """The state of every generator a training epoch draws from: Python's, NumPy's and torch's (the
    shuffle order, the training crops, dropout, and the DataLoader workers' seeds all come from these).
    Plain lists and tensors only: Lightning loads checkpoints with ``weights_only=True``."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states = {"python": random.getstate(), "numpy": [kind, keys.tolist(), position, has_gauss, cached],
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    """Put back what :func:`random_states` took: the run draws what it would have drawn had it not stopped."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])

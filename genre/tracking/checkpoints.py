"""Checkpoints written whole or not at all.

Lightning writes a checkpoint straight under its final name: a full disk (or a kill) halfway left a
truncated ``best-00.ckpt`` (5.2 of 25.3 MB) that looked like any other. Here the bytes go to a hidden
partial file beside it, are flushed to the disk, and only then renamed over the final name (a rename
within a folder is atomic on POSIX file systems), so a checkpoint under its final name is complete.
"""
from __future__ import annotations

import os
from pathlib import Path

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

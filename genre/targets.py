"""Calling what ``conf/`` names with ``_target_``, without Hydra's ``instantiate`` (which wraps a
:class:`genre.errors.GenreError`, meant for the user, in an exception of its own). Light: the commands that
only classify a file import it without Lightning or MLflow."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf


def call_target(node: DictConfig, _leave_out: tuple[str, ...] = (), **extra):
    """``node._target_(**node, **extra)`` (without the keys in ``_leave_out``), called directly: Hydra's
    ``instantiate`` would wrap a :class:`genre.errors.GenreError` (whose message is meant for the user)
    in its own exception."""
    settings = OmegaConf.to_container(node, resolve=True)
    for key in _leave_out:
        settings.pop(key, None)
    return hydra.utils.get_method(settings.pop("_target_"))(**settings, **extra)

"""Calling what ``conf/`` names with ``_target_``, without Hydra's ``instantiate`` (which wraps a
:class:`genre.runtime.errors.GenreError`, meant for the user, in an exception of its own). Light: the commands that
only classify a file import it without Lightning or MLflow."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf


def call_target(node: DictConfig, _leave_out: tuple[str, ...] = (), **extra):
    """``node._target_(**node, **extra)`` (without the keys in ``_leave_out``), called directly: Hydra's
    ``instantiate`` would wrap a :class:`genre.runtime.errors.GenreError` (whose message is meant for the user)
    in its own exception."""
    settings = OmegaConf.to_container(node, resolve=True)
    for key in _leave_out:
        settings.pop(key, None)
    return hydra.utils.get_method(settings.pop("_target_"))(**settings, **extra)


def build_network(model_cfg: DictConfig, input_shape: tuple[int, int], n_classes: int):
    """The network of ``model=...`` for clips of ``input_shape`` (bands, frames) and ``n_classes`` genres: the one
    place a network is built (training, a checkpoint's predictor, the benchmark). ``name`` names the run and
    ``meant_for`` lists the settings the network was designed with (``genre.shift`` applies them): neither is
    an argument of the network."""
    return call_target(model_cfg, _leave_out=("name", "meant_for"), input_shape=tuple(input_shape),
                       n_classes=n_classes)

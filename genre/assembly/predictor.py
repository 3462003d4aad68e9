"""A checkpoint's :class:`~genre.models.predictor.Predictor`: the front end, the normalisation and the network
rebuilt from the run's config inside it, with the trained weights. Light (no Lightning, no MLflow): what
``evaluate.py audio=`` and the benchmark load to classify a file. The config is a checkpoint's, so every
``_target_`` in it is checked against genre's components before anything is built
(:mod:`genre.assembly.targets`)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from genre.assembly.targets import build_network, call_target, check_targets
from genre.models.predictor import Normalize, Predictor, read_checkpoint


def load_predictor(ckpt_path: str | Path) -> Predictor:
    """The :class:`Predictor` of a checkpoint written by ``train.py`` (read as plain data only)."""
    checkpoint = read_checkpoint(ckpt_path)
    info = checkpoint["genre"]
    config = OmegaConf.create(info["config"])
    check_targets(config)
    frontend = call_target(config.features)
    net = build_network(config.model, (frontend.n_bands, info["clip_frames"]), len(info["genres"]))
    normalize = Normalize(frontend.n_bands)
    state = checkpoint["state_dict"]
    parts = (("normalize.", normalize), ("net.", net))
    if not getattr(frontend, "weights_outside_checkpoints", False):   # a frozen encoder loads its own weights
        parts = (("frontend.", frontend), *parts)
    for prefix, part in parts:
        part.load_state_dict({key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)})
    return Predictor(frontend.eval(), normalize.eval(), net.eval(), list(info["genres"]), info["clip_frames"],
                     config.clips.aggregation, config, dict(info))

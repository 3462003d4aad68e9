"""Every object of a run, built from the composed config: training and evaluation both build here.

``conf/`` names each object's class or function with ``_target_`` (dataset builder, feature front
end, network, optimizer, scheduler, callbacks); this module calls them. A checkpoint carries the
resolved config of its run, so :func:`load_classifier` rebuilds the same module from it.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from genre import CONFIG_DIR
from genre.assembly.targets import build_network, call_target, check_targets, instantiate
from genre.data.datamodule import GenreDataModule, PreparedData, prepare
from genre.data.index import DatasetIndex
from genre.features import FrontEnd
from genre.models.module import GenreClassifier
from genre.models.predictor import read_checkpoint


def compose_config(config_name: str = "train", overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config ``python <config_name>.py <overrides>`` would get, composed outside a Hydra run (so
    the run's output directory is not set): what the commands besides train and evaluate read."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=["paths.output_dir=unused", *overrides])


def build_index(dataset_cfg: DictConfig) -> DatasetIndex:
    """The dataset index of ``dataset=...`` (its builder in :mod:`genre.datasets`), named ``dataset.name`` (a
    thin wrapper of ``folder`` names itself), with the excerpt setting every dataset offers
    (``dataset.excerpt``, applied when the audio cache is built)."""
    excerpt = dataset_cfg.get("excerpt", "start")
    index = call_target(dataset_cfg, _leave_out=("excerpt", "name"))
    return dataclasses.replace(index, excerpt=excerpt, name=dataset_cfg.get("name") or index.name)


def build_frontend(features_cfg: DictConfig) -> FrontEnd:
    """The feature front end of ``features=...`` (its settings also key the feature cache)."""
    return call_target(features_cfg)


def prepare_data(cfg: DictConfig, frontend: FrontEnd) -> PreparedData:
    """Index, decode, cache and split the data of ``cfg`` (everything that can fail before training)."""
    return prepare(build_index(cfg.dataset), frontend, cfg.clips.clip_seconds, cfg.paths.cache_dir,
                   cfg.clips.cache_workers)


def build_datamodule(cfg: DictConfig, data: PreparedData, test_split: str = "test") -> GenreDataModule:
    """The clips of ``cfg.clips`` over ``data``: batches, crops per track, and where they are cut
    (``clips.resident``); the training crops follow ``cfg.seed``."""
    clips = cfg.clips
    return GenreDataModule(data, clips.batch_size, clips.num_workers, clips.train_clips_per_track, seed=cfg.seed,
                           resident=clips.get("resident", "auto"),
                           memory_share=clips.get("resident_memory_share", 0.5),
                           resident_dtype=clips.get("resident_dtype", "float32"), test_split=test_split)


def build_classifier(cfg: DictConfig, genres: list[str], clip_frames: int, frontend: FrontEnd | None = None,
                     band_mean=None, band_std=None, run_info: dict | None = None,
                     lr_scale: float = 1.0) -> GenreClassifier:
    """The LightningModule of ``cfg`` in one step: network, front end, optimizer and scheduler from
    their config groups, normalisation statistics, and the run information saved into checkpoints.

    ``lr_scale`` multiplies ``optimizer.lr`` (``scale_lr=true``: the number of DDP processes).
    """
    frontend = frontend or build_frontend(cfg.features)
    net = build_network(cfg.model, (frontend.n_bands, clip_frames), len(genres))
    optimizer = instantiate(cfg.optimizer)
    if lr_scale != 1.0:
        optimizer = functools.partial(optimizer, lr=cfg.optimizer.lr * lr_scale)
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    augment = call_target(cfg.augment) if cfg.get("augment") else None
    return GenreClassifier(net, frontend, genres, clip_frames, optimizer=optimizer, scheduler=scheduler,
                           aggregation=cfg.clips.aggregation, band_mean=band_mean, band_std=band_std,
                           run_info=run_info, augment=augment, label_smoothing=cfg.get("label_smoothing", 0.0),
                           divergence=dict(cfg.get("divergence") or {}))


def build_callbacks(callbacks_cfg: DictConfig, checkpoint_dir: Path | None = None) -> dict:
    """The callbacks of ``callbacks=...`` by name; ``checkpoint_dir`` replaces every checkpoint
    callback's ``dirpath`` (a resumed run keeps writing where it was)."""
    built = {}
    for name, node in callbacks_cfg.items():
        extra = {"dirpath": str(checkpoint_dir)} if checkpoint_dir is not None and "dirpath" in node else {}
        built[name] = instantiate(node, **extra)
    return built


@dataclass
class LoadedClassifier:
    module: GenreClassifier
    config: DictConfig          # the training run's resolved config
    run_id: str | None
    tracking_uri: str | None


def load_classifier(ckpt_path: str | Path) -> LoadedClassifier:
    """Rebuild the trained LightningModule of a checkpoint, in evaluation mode."""
    checkpoint = read_checkpoint(ckpt_path)
    info = checkpoint["genre"]
    config = OmegaConf.create(info["config"])
    check_targets(config)   # a checkpoint's config names only genre's components (genre.assembly.targets)
    module = build_classifier(config, info["genres"], info["clip_frames"], run_info=info)
    module.load_state_dict(checkpoint["state_dict"])
    return LoadedClassifier(module.eval(), config, info.get("run_id"), info.get("tracking_uri"))

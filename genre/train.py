"""``train(cfg)``: one run from a composed config. ``train.py`` at the top level is its command line."""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from genre.data.datamodule import GenreDataModule, PreparedData, prepare
from genre.data.index import DatasetIndex
from genre.features import FeatureExtractor
from genre.module import GenreClassifier
from genre.tracking import (create_logger, git_commit, log_training_outputs, resolve_artifact_location,
                            resolve_tracking_uri)

log = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parent.parent
FEATURE_KEYS = ("kind", "sample_rate", "window_ms", "stride_ms", "n_mels", "n_mfcc", "f_min", "f_max", "n_fft")


def feature_settings(features_cfg: DictConfig) -> dict:
    """The feature settings that decide what the front end computes (and the feature cache's key)."""
    return {key: features_cfg[key] for key in FEATURE_KEYS}


def build_frontend(features_cfg: DictConfig) -> FeatureExtractor:
    return FeatureExtractor(**feature_settings(features_cfg))


def build_classifier(cfg: DictConfig, genres: list[str], frontend: FeatureExtractor,
                     clip_frames: int) -> GenreClassifier:
    """The LightningModule for ``cfg``; evaluate.py rebuilds a checkpoint's module with this too."""
    net = hydra.utils.instantiate(cfg.model, input_shape=(frontend.n_bands, clip_frames),
                                  n_classes=len(genres), _convert_="all")
    return GenreClassifier(net, frontend, genres, clip_frames, lr=cfg.optimizer.lr,
                           weight_decay=cfg.optimizer.weight_decay, aggregation=cfg.data.aggregation)


def build_index(dataset_cfg: DictConfig) -> DatasetIndex:
    """Call the dataset builder named by ``_target_`` (directly: Hydra's instantiate would wrap the
    builder's DatasetError, whose message is meant for the user, in its own exception)."""
    settings = OmegaConf.to_container(dataset_cfg, resolve=True)
    return hydra.utils.get_method(settings.pop("_target_"))(**settings)


def prepare_data(cfg: DictConfig, frontend: FeatureExtractor) -> PreparedData:
    index = build_index(cfg.dataset)
    return prepare(index, frontend, feature_settings(cfg.features), cfg.data.clip_seconds,
                   cfg.paths.cache_dir, cfg.data.cache_workers)


def run_tags(cfg: DictConfig, data: PreparedData) -> dict[str, str]:
    return {"dataset": data.index.name, "features": cfg.features.kind,
            "model": cfg.model._target_.rsplit(".", 1)[-1].lower(), "split_protocol": data.index.split_protocol,
            "git_commit": git_commit(PROJECT_DIR), "seed": str(cfg.seed),
            "skipped_files": str(len(data.skipped))}


def train(cfg: DictConfig) -> dict:
    """Train, test the best checkpoint, and record the run in MLflow.

    Returns the final metrics (floats, e.g. ``test/track_acc``, ``val/track_acc_best``) plus
    ``run_id`` and ``best_checkpoint``.
    """
    pl.seed_everything(cfg.seed, workers=True)
    frontend = build_frontend(cfg.features)          # invalid settings fail here, before any work
    data = prepare_data(cfg, frontend)               # and bad data here, before any epoch
    module = build_classifier(cfg, data.genres, frontend, data.clip_frames)
    module.normalize.set(data.band_mean, data.band_std)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    root_dir = cfg.paths.root_dir
    tracking_uri = resolve_tracking_uri(cfg.logger.tracking_uri, root_dir)
    logger = create_logger(cfg.logger.experiment_name, tracking_uri,
                           resolve_artifact_location(cfg.logger.artifact_location, root_dir,
                                                     cfg.logger.experiment_name),
                           cfg.logger.run_name, run_tags(cfg, data))
    module.run_info = {"config": resolved, "genres": data.genres, "clip_frames": data.clip_frames,
                       "run_id": logger.run_id, "tracking_uri": tracking_uri,
                       "split_protocol": data.index.split_protocol}
    logger.log_hyperparams({k: v for k, v in resolved.items() if k != "reference"})
    output_dir = Path(cfg.paths.output_dir)
    checkpoint = ModelCheckpoint(dirpath=output_dir / "checkpoints", filename="best-{epoch:02d}",
                                 monitor="val/track_acc", mode="max", save_last=True,
                                 auto_insert_metric_name=False)
    callbacks = [checkpoint, EarlyStopping(monitor="val/track_acc", mode="max",
                                           patience=cfg.early_stopping.patience)]
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, logger=logger, callbacks=callbacks,
                                                  default_root_dir=str(output_dir))
    datamodule = GenreDataModule(data, cfg.data.batch_size, cfg.data.num_workers, cfg.data.train_clips_per_track)
    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule, ckpt_path="best")

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        logger.experiment.set_tag(logger.run_id, "best_checkpoint", str(Path(checkpoint.best_model_path).resolve()))
        logger.experiment.log_artifact(logger.run_id, checkpoint.best_model_path, "checkpoints")
        log_training_outputs(logger, module, data, OmegaConf.to_yaml(cfg, resolve=True), cfg.seed)
        log.info("test (%s): clip accuracy %.3f, track accuracy %.3f; MLflow run %s in %s",
                 data.index.split_protocol, metrics.get("test/acc", float("nan")),
                 metrics.get("test/track_acc", float("nan")), logger.run_id, logger._tracking_uri)
    return {**metrics, "run_id": logger.run_id, "best_checkpoint": checkpoint.best_model_path}

"""Hydra callbacks of ``python train.py`` (conf/train.yaml, ``hydra.callbacks``): work Hydra must see done
before a run or a sweep's jobs start.

Hydra imports this module for every command line, a refused setting included, so it imports nothing
heavy at its top: MLflow and Lightning cost seconds, and a bad setting is refused in one.
"""
from __future__ import annotations

import sys

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genre.runtime.errors import ConfigError, refuse_unwritable


class RefuseUnwritableFolders(Callback):
    """Before Hydra makes the run's folder: a read-only or foreign ``paths.log_dir`` is named in one line
    (exit status 2), instead of a traceback from Hydra's ``mkdir``."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config)

    @staticmethod
    def _check(config: DictConfig) -> None:
        try:
            refuse_unwritable(config.paths.log_dir, "paths.root_dir")   # paths.log_dir follows it
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)


class PrepareTrackingStore(Callback):
    """Before the jobs of a multirun start (possibly in parallel), create the sqlite store and the
    experiment once, so parallel jobs never race in its schema migration (docs/pitfalls.md)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from genre.tracking.store import (
            close_store_connections,
            open_store,
            resolve_artifact_location,
            resolve_tracking_uri,
        )

        tracking_uri = resolve_tracking_uri(config.logger.tracking_uri, config.paths.root_dir)
        name = config.logger.experiment_name
        open_store(tracking_uri, name, resolve_artifact_location(config.logger.artifact_location,
                                                                 config.paths.root_dir, name, tracking_uri))
        close_store_connections(tracking_uri)   # the jobs may be forked from this process (genre.runtime.launcher)

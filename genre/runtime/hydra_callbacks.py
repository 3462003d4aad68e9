"""Hydra callbacks of ``python train.py`` (conf/train.yaml, ``hydra.callbacks``): work Hydra must see done
before a run or a sweep's jobs start.

Hydra imports this module for every command line, a refused setting included, so it imports nothing
heavy at its top: MLflow and Lightning cost seconds, and a bad setting is refused in one.
"""
from __future__ import annotations

import logging
import sys

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genre.runtime.errors import ConfigError, refuse_unwritable

log = logging.getLogger(__name__)


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
    experiment once, so parallel jobs never race in its schema migration (docs/pitfalls.md), and open the
    sweep's parent run, which the jobs' runs are nested under; at the end, record its summary
    (genre.tracking.sweep)."""

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
        from genre.tracking.sweep import open_sweep_run

        try:
            open_sweep_run(config, tracking_uri)
        except Exception as error:   # Hydra would turn it into a warning few read: say what it means
            log.warning("the sweep's MLflow parent run could not be created (%s: %s); its jobs are logged as "
                        "runs of their own", type(error).__name__, str(error)[:300])
        close_store_connections(tracking_uri)   # the jobs may be forked from this process (genre.runtime.launcher)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """The sweeper returned: every job it launched returned a result (a failed one makes it raise, and the
        parent run is then closed at exit, FAILED)."""
        from genre.tracking.sweep import close_sweep_run

        close_sweep_run(completed=True)

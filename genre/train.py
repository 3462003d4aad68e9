"""``train(cfg)``: one run from a composed config, top to bottom: check the settings and the tracking
store, prepare the data (:mod:`genre.data`), open the MLflow run, build the trainer and the module
(:mod:`genre.assembly.build`), fit, test the best checkpoint, record the outputs (:mod:`genre.tracking.report`).
``train.py`` at the top level (``genre-train``) is its command line."""
from __future__ import annotations

import logging
import os
import secrets
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from genre.assembly.build import (
    build_callbacks,
    build_classifier,
    build_datamodule,
    build_frontend,
    call_target,
    prepare_data,
    read_checkpoint,
)
from genre.assembly.targets import check_targets, instantiate
from genre.data.datamodule import PreparedData
from genre.models.classical import fit_and_score, is_classical
from genre.models.module import GenreClassifier, tested
from genre.models.results import TestResults
from genre.runtime.console import resume_command
from genre.runtime.errors import ConfigError, refuse_unwritable
from genre.runtime.settings import check_settings
from genre.runtime.signals import Interrupted, interrupted
from genre.tracking.checkpoints import AtomicCheckpointIO
from genre.tracking.logger import closing_lines, create_logger, log_dataset_input, start_system_metrics
from genre.tracking.report import log_classical_outputs, log_training_outputs
from genre.tracking.store import (
    check_store,
    git_commit,
    is_tracking_server,
    resolve_artifact_location,
    resolve_tracking_uri,
    sqlite_path,
)
from genre.tracking.sweep import parent_tags, refresh_parent

log = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parent.parent
def run_tags(cfg: DictConfig, data: PreparedData, tracking_uri: str) -> dict[str, str]:
    tags = {"dataset": data.index.name, "features": cfg.features.kind,
            "model": cfg.model.name,   # the option chosen (model=resnet), not derived from its class
            "split_protocol": data.index.split_protocol,
            "git_commit": git_commit(PROJECT_DIR), "seed": str(cfg.seed), "skipped_files": str(len(data.skipped)),
            **numerics_tags(data)}
    if _in_multirun():
        hydra_cfg = HydraConfig.get()
        tags.update({"sweep": Path(hydra_cfg.sweep.dir).name, "sweep_job": str(hydra_cfg.job.num),
                     "sweep_overrides": " ".join(hydra_cfg.overrides.task)})
        tags.update(parent_tags(   # a job of a sweep: a child of the sweep's run
            hydra_cfg.sweep.dir, tracking_uri, cfg.logger.experiment_name))
    return tags


def numerics_tags(data: PreparedData) -> dict[str, str]:
    """What decides whether two runs of the same settings agree bit for bit (README, Reproducibility):
    the feature values, torch's CPU kernels and thread count, and the numerical libraries' versions."""
    from importlib.metadata import version

    import torch

    libraries = ("torch", "numpy", "scipy", "librosa", "soxr", "pytorch-lightning")
    return {"features_digest": data.features.content_digest,
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(), "torch_threads": str(torch.get_num_threads()),
            "library_versions": " ".join(f"{name}={version(name)}" for name in libraries)}


def run_name(cfg: DictConfig, tags: dict[str, str]) -> str:
    """``logger.run_name`` if set, else what ran and something unique: ``cnn3-mel-gtzan-s42[-j3]-9f1c``
    (model, features, dataset, seed, sweep job). The suffix comes from the OS, not from Python's
    ``random``, which the run's seed has just fixed: MLflow's own names were the same for every run."""
    if cfg.logger.run_name:
        return str(cfg.logger.run_name)
    parts = [tags["model"], tags["features"], tags["dataset"], f"s{tags['seed']}"]
    if "sweep_job" in tags:
        parts.append(f"j{tags['sweep_job']}")
    return "-".join(parts + [secrets.token_hex(2)])


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def refuse_relaunching_ddp_in_sweeps(cfg: DictConfig) -> None:
    """Lightning's ``ddp`` strategy relaunches the script with its original arguments, so inside a
    Hydra multirun every rank would start a sweep of its own (docs/pitfalls.md)."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    started_by_slurm = int(os.environ.get("SLURM_NTASKS", "1")) > 1  # srun starts the ranks: no relaunch
    if _in_multirun() and not started_by_slurm and strategy == "ddp" and cfg.trainer.get("devices", 1) not in (1, "1"):
        raise ConfigError("a multirun sweep cannot use trainer.strategy=ddp: Lightning relaunches the script "
                          "per process and each relaunch would start the whole sweep again. Inside sweeps use "
                          "trainer.strategy=ddp_spawn (with clips.num_workers=0), or run each configuration "
                          "without -m")


RESUME_MUST_MATCH = ("dataset", "features", "model", "clips.clip_seconds", "clips.aggregation")
RESUME_MAY_DIFFER = ("root", "num_workers", "name")  # the data may have moved; workers and names change nothing


@dataclass
class ResumePoint:
    ckpt_path: Path
    run_id: str | None


def resume_point(cfg: DictConfig) -> ResumePoint | None:
    """The checkpoint to resume from (``ckpt_path=.../last.ckpt``), after checking it fits ``cfg``."""
    if not cfg.get("ckpt_path"):
        return None
    path = Path(cfg.ckpt_path)
    saved = read_checkpoint(path)["genre"]
    before, now = OmegaConf.create(saved["config"]), cfg
    differing = []
    for key in RESUME_MUST_MATCH:
        old, new = OmegaConf.select(before, key), OmegaConf.select(now, key)
        old, new = (OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for v in (old, new))
        if isinstance(old, dict) and isinstance(new, dict):
            old = {k: v for k, v in old.items() if k not in RESUME_MAY_DIFFER}
            new = {k: v for k, v in new.items() if k not in RESUME_MAY_DIFFER}
        if old != new:
            differing.append(key)
    if differing:
        raise ConfigError(f"cannot resume {path}: {', '.join(differing)} differ from the run that wrote it, "
                          f"which would make the run meaningless; start a new run instead (drop ckpt_path)")
    return ResumePoint(path, saved.get("run_id"))


def check_folders(cfg: DictConfig, tracking_uri: str, artifact_location: str | None) -> None:
    """Every local folder the run writes is writable, before any work (a read-only store was found only
    after the data was prepared)."""
    database = sqlite_path(tracking_uri)
    if database is not None:
        for written in (database.parent, database) if database.exists() else (database.parent,):  # + its journal
            refuse_unwritable(written, "logger.tracking_uri (its sqlite file)")
    if artifact_location and "://" not in artifact_location:
        refuse_unwritable(artifact_location, "logger.artifact_location")
    refuse_unwritable(cfg.paths.cache_dir, "paths.cache_dir")
    refuse_unwritable(cfg.paths.output_dir, "paths.output_dir")


def train(cfg: DictConfig) -> dict:
    """Train, test the best checkpoint, and record the run in MLflow.

    With ``ckpt_path`` (a ``last.ckpt``), training resumes from it and logs into the same MLflow run.
    Returns the final metrics (floats, e.g. ``test/track_acc``, ``val/track_acc_best``) plus
    ``run_id`` and ``best_checkpoint``.
    """
    check_settings(cfg)                              # cheap, complete, before anything else
    check_targets(cfg)                               # every _target_ is one of genre's components
    return train_checked(cfg)


def train_checked(cfg: DictConfig) -> dict:
    """:func:`train` for a config whose settings were checked already (``train.py`` checks them before it
    imports this module, so that a bad one is refused before torch is imported)."""
    refuse_relaunching_ddp_in_sweeps(cfg)
    if is_classical(cfg.model) and cfg.get("ckpt_path"):
        raise ConfigError(f"model={cfg.model.name} fits in seconds and writes no checkpoint: drop ckpt_path")
    resume = resume_point(cfg)
    root_dir = cfg.paths.root_dir
    tracking_uri = resolve_tracking_uri(cfg.logger.tracking_uri, root_dir)
    artifact_location = resolve_artifact_location(cfg.logger.artifact_location, root_dir, cfg.logger.experiment_name,
                                                  tracking_uri)
    check_store(tracking_uri)                        # a missing server or broken store: before any cache build
    check_folders(cfg, tracking_uri, artifact_location)   # and a read-only one
    pl.seed_everything(cfg.seed, workers=True)
    frontend = build_frontend(cfg.features)          # invalid settings fail here, before any work
    if cfg.get("augment"):
        call_target(cfg.augment).check_features(frontend.kind)
    data = prepare_data(cfg, frontend)               # and bad data here, before any epoch
    resolved = OmegaConf.to_container(cfg, resolve=True)
    tags = run_tags(cfg, data, tracking_uri)
    logger = create_logger(cfg.logger.experiment_name, tracking_uri, artifact_location, run_name(cfg, tags),
                           tags, run_id=resume.run_id if resume else None,
                           unsent_path=Path(cfg.paths.output_dir) / "unsent_metrics.jsonl")
    try:
        if is_classical(cfg.model):
            return _train_classical(cfg, data, logger, resolved, tracking_uri)
        return _train_network(cfg, data, logger, resolved, tracking_uri, resume, frontend)
    except BaseException as error:
        logger.end_run("failed")   # a failed or interrupted run never stays RUNNING (a SIGKILL leaves it so)
        if isinstance(error, Interrupted):
            error.detail = f"run {logger.run_name} (id {logger.run_id}) is marked FAILED"
            last_cfg = OmegaConf.select(cfg, "callbacks.last_checkpoint")   # where the resume point is written
            last = Path(resume.ckpt_path.parent if resume else last_cfg.dirpath) / f"{last_cfg.filename}.ckpt" \
                if last_cfg is not None else None
            if last is not None and last.is_file():
                error.detail += f"; resume it with: {resume_command(ckpt_path=last)}"
        raise


def _train_network(cfg: DictConfig, data: PreparedData, logger, resolved: dict, tracking_uri: str,
                   resume: ResumePoint | None, frontend) -> dict:
    """Train a network, test its best checkpoint, record the outputs, then finish the run."""
    callbacks = build_callbacks(cfg.callbacks, resume.ckpt_path.parent if resume else None)
    checkpoint: ModelCheckpoint = callbacks["best_checkpoint"]
    checkpoint_dir = Path(checkpoint.dirpath)
    # a resumed run passed its sanity check before it stopped; running it again would also draw random
    # numbers the uninterrupted run did not draw at this point
    resumed = {"num_sanity_val_steps": 0} if resume else {}
    # the data module gives each process its own share of the tracks (genre.data.clips): no sampler wrapping
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=logger,
                                                  callbacks=[*callbacks.values(), *progress_bar(cfg.trainer)],
                                                  default_root_dir=str(cfg.paths.output_dir),
                                                  use_distributed_sampler=False, plugins=[AtomicCheckpointIO()],
                                                  **resumed)
    # The batch is per process: with more processes the effective batch grows, and the learning rate
    # follows it only when asked (linear scaling rule); both are recorded on the run.
    processes = trainer.world_size
    lr_scale = processes if cfg.scale_lr else 1
    run_info = {"config": resolved, "genres": data.genres, "clip_frames": data.clip_frames,
                "run_id": logger.run_id, "tracking_uri": tracking_uri, "split_protocol": data.index.split_protocol}
    module = build_classifier(cfg, data.genres, data.clip_frames, frontend, data.band_mean, data.band_std,
                              run_info, lr_scale)
    if resume is None:  # MLflow refuses to change a logged param: a resumed run keeps its own
        logger.log_hyperparams({**{k: v for k, v in resolved.items() if k != "reference"},
                                "processes": processes, "effective_batch_size": cfg.clips.batch_size * processes,
                                "effective_lr": cfg.optimizer.lr * lr_scale})
        if trainer.is_global_zero:
            log_dataset_input(logger, data)
    else:
        logger.experiment.set_tag(logger.run_id, "resumed_from", str(resume.ckpt_path))
    datamodule = build_datamodule(cfg, data)
    if trainer.is_global_zero:
        logger.experiment.set_tag(logger.run_id, "clip_path", datamodule.choose_path(trainer))
        log.info("model %s: %.2f M parameters, clips of %d bands x %d frames, %d genres", cfg.model.name,
                 sum(p.numel() for p in module.parameters()) / 1e6, module.frontend.n_bands, data.clip_frames,
                 len(data.genres))
    monitor = start_system_metrics(logger, tracking_uri, cfg.logger.system_metrics_interval, resume is not None) \
        if trainer.is_global_zero and cfg.logger.get("system_metrics") else None
    try:
        with warnings.catch_warnings():
            if resume:  # it continues in its own checkpoint folder, on purpose
                warnings.filterwarnings("ignore", r"Checkpoint directory .* exists and is not empty")
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume.ckpt_path) if resume else None,
                        weights_only=True)   # plain data only (genre.assembly.build.read_checkpoint)
        fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}  # testing resets them
        # verbose=False: its table prints 16 digits; the run's last lines give the test accuracy
        _, test_results = tested(trainer, module, datamodule=datamodule, ckpt_path=checkpoint.best_model_path or None,
                                 weights_only=True, verbose=False)
    except SIGTERMException:   # Lightning's own SIGTERM flag ended the loop (status 0): the same rule applies
        _stop_launched_processes(trainer)
        raise interrupted(signal.SIGTERM) from None
    except Interrupted:
        _stop_launched_processes(trainer)
        raise
    finally:
        if monitor is not None:
            monitor.finish()

    metrics = {**fit_metrics, **{k: float(v) for k, v in trainer.callback_metrics.items()}}
    if trainer.is_global_zero:
        try:
            _record_outputs(cfg, module, data, logger, checkpoint, test_results)
        except Exception as error:  # a tracking server gone mid-run: the trained model must not be lost with it
            if not is_tracking_server(tracking_uri):
                raise
            log.error("the tracking server did not take the run's outputs (%s); the checkpoints are in %s and "
                      "metrics it refused in %s", type(error).__name__, checkpoint_dir, logger.unsent_path)
        logger.end_run("success")   # only now: a run shown FINISHED has all its outputs
        if resume is not None:      # a sweep's job resumed: its sweep's summary says so
            refresh_parent(logger.run_id, tracking_uri)
        log.info("test (%s): clip accuracy %.3f, track accuracy %.3f", data.index.split_protocol,
                 metrics.get("test/acc", float("nan")), metrics.get("test/track_acc", float("nan")))
        _say_where(logger, cfg, tracking_uri, resume=resume)
    return {**metrics, "run_id": logger.run_id, "best_checkpoint": checkpoint.best_model_path}


def progress_bar(trainer_cfg: DictConfig) -> list:
    """tqdm's bar, whatever is installed: Lightning switches to its rich bar when ``rich`` is importable (the
    test and sweep extras bring it), and log lines then land at the end of bar lines."""
    from pytorch_lightning.callbacks import TQDMProgressBar

    return [TQDMProgressBar()] if trainer_cfg.get("enable_progress_bar", True) else []


def _stop_launched_processes(trainer: pl.Trainer) -> None:
    """The DDP processes Lightning launched beside this one end with it (Lightning does so for its own
    KeyboardInterrupt, not for other signals)."""
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = trainer.strategy.launcher
    if isinstance(launcher, _SubprocessScriptLauncher):
        launcher.kill(signal.SIGKILL)


def _train_classical(cfg: DictConfig, data: PreparedData, logger, resolved: dict, tracking_uri: str) -> dict:
    """A scikit-learn baseline (:mod:`genre.models.classical`) on the same data and split, as an ordinary run."""
    pipeline, metrics, test_results = fit_and_score(cfg.model, data, cfg.seed)
    logger.log_hyperparams({k: v for k, v in resolved.items() if k != "reference"})
    log_dataset_input(logger, data)
    logger.log_metrics(metrics, step=0)
    log_classical_outputs(logger, pipeline, test_results, data, cfg)
    logger.end_run("success")
    log.info("test (%s): track accuracy %.3f with %s", data.index.split_protocol, metrics["test/track_acc"],
             cfg.model.name)
    _say_where(logger, cfg, tracking_uri, servable=False)
    return {**metrics, "run_id": logger.run_id, "best_checkpoint": None}


def _say_where(logger, cfg: DictConfig, tracking_uri: str, resume: ResumePoint | None = None,
               servable: bool = True) -> None:
    """The run's last lines: its name and id, its output folder, the command that shows it (from what
    the logger learned at the start: the server may be gone by now), and the app's command when the run has a
    checkpoint to serve (``servable``). A resumed run's folder is the one its checkpoints stay in."""
    output_dir = Path(cfg.paths.output_dir).resolve()
    if resume is not None:
        output_dir = resume.ckpt_path.resolve().parent.parent
    for line in closing_lines(logger.run_name, logger.run_id, logger.experiment_id, str(output_dir), tracking_uri,
                              cfg.paths.root_dir, servable=servable):
        log.info(line)


def _record_outputs(cfg: DictConfig, module: GenreClassifier, data: PreparedData, logger,
                    checkpoint: ModelCheckpoint, test_results: TestResults | None) -> None:
    """Tag the best checkpoint, upload it, and log plots, reports and the model (rank 0)."""
    if test_results is None:  # ddp_spawn tested in other processes: test again here, for the outputs
        _, test_results = tested(pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False),
                                 module, datamodule=build_datamodule(cfg, data), ckpt_path=checkpoint.best_model_path,
                                 verbose=False, weights_only=True)
    logger.experiment.set_tag(logger.run_id, "best_checkpoint", str(Path(checkpoint.best_model_path).resolve()))
    logger.experiment.log_artifact(logger.run_id, checkpoint.best_model_path, "checkpoints")
    log_training_outputs(logger, module, test_results, data, cfg, cfg.logger.get("register_model"))

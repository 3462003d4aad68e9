"""The commands: ``genre-train`` (``python train.py``: :func:`train_command`), ``genre-evaluate``
(``python evaluate.py``: :func:`evaluate_command`),
``genre-app`` (``python -m genre.app``: :func:`app_command`), ``genre-check``, ``genre-compare``, ``genre-replay``, ``genre-bench``
and ``genre-download-previews``.

Every command leaves the same way: a :class:`genre.runtime.errors.GenreError` (bad input or settings) prints
``error: <message>`` on stderr and exits with status 2, without a traceback; anything else is a bug
and keeps its traceback. The Hydra commands read the configuration shipped inside the package
(``genre/conf``, which the checkout's top-level ``conf/`` links to), so an installed package runs
without a checkout.
"""
from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from genre.assembly.targets import check_targets
from genre.runtime import signals
from genre.runtime.console import quiet_console
from genre.runtime.errors import ConfigError, exit_on_user_error
from genre.runtime.settings import check_settings


def _unique_suffix() -> str:
    """What makes a run's folder its own (``${now:...}-${unique:}`` in conf/train.yaml): runs started in the
    same second, on this machine or another sharing the folder, never share one (their checkpoints and
    logs would overwrite each other). Cached like Hydra's ``now``: every job of a sweep sees the one value."""
    import secrets

    return f"{os.getpid()}-{secrets.token_hex(2)}"


OmegaConf.register_new_resolver("unique", _unique_suffix, use_cache=True, replace=True)
signals.install()   # from the first moment a command runs, Hydra's composition included (genre.runtime.signals)


@exit_on_user_error   # outside Hydra too: a sweep's launcher interrupted while its jobs run (genre.runtime.launcher)
@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error   # inside: each run, or each job of a sweep
def train(cfg: DictConfig) -> float:
    """``python train.py ...``: one run (or, with ``-m``, one job of a sweep).

    The settings are checked first, before torch, the data or MLflow are imported: a bad one stops
    the command in a second, and the run folder Hydra made for it is removed (nothing ran in it).
    """
    try:
        check_settings(cfg)
        check_targets(cfg)   # every _target_ is one of genre's components (genre.assembly.targets)
    except ConfigError:
        _remove_empty_run_dir(cfg)
        raise
    quiet_console()
    from genre.train import train_checked

    metrics = train_checked(cfg)
    return metrics.get("val/track_acc_best", float("nan"))  # the objective of sweeps


def _exit_at_once(command):
    """Run ``command`` (a Hydra main), then end the process as soon as its work is flushed.

    After a run's last line, Python's own teardown of torch, its CUDA libraries and MLflow took 2 s on a
    quiet machine and 6-16 s on a loaded one, for nothing: the exit handlers (logging's flush among them)
    run here, then the process ends without the module teardown. For the command line only
    (``train.py``, ``genre-train``); :func:`train` itself returns as a function does."""
    import atexit

    try:
        command()
        status = 0
    except SystemExit as leaving:
        status = leaving.code if isinstance(leaving.code, int) else (0 if leaving.code is None else 1)
        if leaving.code is not None and not isinstance(leaving.code, int):
            print(leaving.code, file=sys.stderr)
    atexit._run_exitfuncs()   # private, but the documented order: what would run at exit, runs now
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


@exit_on_user_error
def _refuse_typos(config_name: str) -> None:
    """A setting of the command line that names nothing is ``error: ...`` with the closest valid name, exit 2,
    before Hydra composes it (:mod:`genre.runtime.overrides`)."""
    from genre import CONFIG_DIR
    from genre.runtime.overrides import check_overrides

    check_overrides(CONFIG_DIR, config_name, sys.argv[1:])


def train_command() -> None:
    """``python train.py`` and ``genre-train``."""
    _refuse_typos("train")
    _exit_at_once(train)


def evaluate_command() -> None:
    """``python evaluate.py`` and ``genre-evaluate``."""
    _refuse_typos("evaluate")
    _exit_at_once(evaluate)


def _remove_empty_run_dir(cfg: DictConfig) -> None:
    """Hydra makes a run's folder (its config copy and log) before the run starts; a run refused at its
    settings leaves none behind, nor the empty folders made for it up to ``paths.log_dir``."""
    import shutil
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    run_dir, log_dir = Path(HydraConfig.get().runtime.output_dir).resolve(), Path(cfg.paths.log_dir).resolve()
    if HydraConfig.get().mode.name != "RUN" or log_dir not in run_dir.parents or \
            any(p.name != ".hydra" and p.suffix != ".log" for p in run_dir.iterdir()):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in run_dir.parents:
        if parent == log_dir.parent:
            break
        try:
            parent.rmdir()                  # only if empty
        except OSError:
            break


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_user_error
def evaluate(cfg: DictConfig) -> None:
    """``python evaluate.py ...``: score a trained model or classify a file."""
    quiet_console()
    from genre.evaluate import evaluate as evaluate_model

    evaluate_model(cfg)


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
@exit_on_user_error
def app(cfg: DictConfig) -> None:
    """``genre-app ...`` (``python -m genre.app``): the page for one song, until Ctrl-C."""
    quiet_console()
    from genre.app.main import serve

    serve(cfg)


def app_command() -> None:
    """``genre-app`` and ``python -m genre.app``."""
    _refuse_typos("app")
    _exit_at_once(app)


def compare() -> None:
    """``python -m genre.compare``: the comparison table of an experiment's runs."""
    from genre.compare import main

    main()


def check() -> None:
    """``python -m genre.check``: does this machine reproduce the README's default run."""
    from genre.check import main

    sys.exit(main())


def replay() -> None:
    """``python -m genre.replay``: send the metrics a run kept while its tracking server was away."""
    from genre.replay import main

    sys.exit(main())


def bench() -> None:
    """``python -m genre.bench``: the performance figures."""
    from genre.bench import main

    sys.exit(main())


def download_previews() -> None:
    """``python -m genre.datasets.sevendigital``: fetch MSD's 7digital previews."""
    from genre.datasets.sevendigital import main

    sys.exit(main())

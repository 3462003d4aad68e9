"""The commands: ``genre-train`` (``python train.py``), ``genre-evaluate`` (``python evaluate.py``),
``genre-compare``, ``genre-replay``, ``genre-bench`` and ``genre-download-previews``.

Every command leaves the same way: a :class:`genre.errors.GenreError` (bad input or settings) prints
``error: <message>`` on stderr and exits with status 2, without a traceback; anything else is a bug
and keeps its traceback. The Hydra commands read the configuration shipped inside the package
(``genre/conf``, which the checkout's top-level ``conf/`` links to), so an installed package runs
without a checkout.
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from genre.errors import exit_on_user_error

@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def train(cfg: DictConfig) -> float:
    """``python train.py ...``: one run (or, with ``-m``, one job of a sweep)."""
    from genre.train import train as train_run

    metrics = train_run(cfg)
    return metrics.get("val/track_acc_best", float("nan"))  # the objective of sweeps


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_user_error
def evaluate(cfg: DictConfig) -> None:
    """``python evaluate.py ...``: score a trained model or classify a file."""
    from genre.evaluate import evaluate as evaluate_model

    evaluate_model(cfg)


def compare() -> None:
    """``python -m genre.compare``: the comparison table of an experiment's runs."""
    from genre.compare import main

    main()


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

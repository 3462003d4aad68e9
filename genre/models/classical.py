"""The non-deep-learning baselines beside the CNNs (``model=knn|svm|logreg|tree|naive_bayes``): a
scikit-learn estimator on per-track statistics of the same cached features, trained and tested on the
same split protocol, recorded as an ordinary MLflow run with the same metric names.

The seed project compared its CNN with the Homburg benchmark's k-NN, C4.5 (here a CART decision
tree, scikit-learn's) and naive Bayes. Each track is described by the mean and the standard deviation
of every feature band over its excerpt (``dataset.track_seconds``), ``2 * n_bands`` numbers,
standardised with the training split's statistics. A track is one excerpt, so its clip and track
accuracies are the same number (``test/acc`` = ``test/track_acc``); the loss is the cross-entropy of the
estimator's probabilities, as the networks'. The run takes seconds on a CPU.
"""
from __future__ import annotations

import logging

import hydra
import numpy as np
from omegaconf import DictConfig
from sklearn.metrics import f1_score, log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from genre.data.cache import row_blocks
from genre.data.datamodule import PreparedData
from genre.models.results import TestResults
from genre.runtime.errors import ConfigError

log = logging.getLogger(__name__)


def is_classical(model_cfg: DictConfig) -> bool:
    """Whether ``model=...`` names a scikit-learn estimator rather than a network."""
    return str(model_cfg.get("_target_", "")).startswith("sklearn.")


def track_statistics(data: PreparedData, split: str, chunk: int = 64) -> np.ndarray:
    """Mean and standard deviation of each band over each track of ``split``: ``(n_tracks, 2 * n_bands)``."""
    rows = data.rows[split]
    out = np.empty((len(rows), 2 * data.n_bands), dtype=np.float64)
    for start, block in row_blocks(data.features.path, rows, chunk):
        block = block.astype(np.float64)
        out[start:start + len(block)] = np.concatenate([block.mean(axis=2), block.std(axis=2)], axis=1)
    return out


def build_estimator(model_cfg: DictConfig, seed: int):
    """Standardisation (fitted on the training split) followed by the configured estimator; estimators
    that draw random numbers get the run's seed."""
    settings = {key: value for key, value in model_cfg.items() if key != "name"}
    estimator = hydra.utils.instantiate(settings)
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=seed)
    return make_pipeline(StandardScaler(), estimator)


def fit_estimator(pipeline, x: np.ndarray, y: np.ndarray):
    """Fit ``pipeline`` on ``(x, y)``. An estimator calibrated by cross-validation (``model=svm``) uses
    as many folds as asked, but no more than its smallest class has tracks: each fold needs one of each."""
    from sklearn.calibration import CalibratedClassifierCV

    estimator = pipeline[-1]
    if isinstance(estimator, CalibratedClassifierCV) and isinstance(estimator.cv, int):
        smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
        if smallest < 2:
            raise ConfigError(f"the model's probabilities are calibrated by cross-validation ({estimator.cv} folds at "
                              f"most), which needs 2 training tracks per genre, and a genre has {smallest}: add "
                              f"tracks to it, or choose another model")
        estimator.set_params(cv=min(estimator.cv, smallest))
    return pipeline.fit(x, y)


def fit_and_score(model_cfg: DictConfig, data: PreparedData, seed: int) -> tuple[object, dict[str, float], TestResults]:
    """Fit on the training tracks, score validation and test tracks.

    Returns the fitted pipeline, the metrics under the names deep runs use, and what it predicted of the
    test tracks (a track is its own clip here), with their ``statistics``.
    """
    pipeline = build_estimator(model_cfg, seed)
    x_train, y_train = track_statistics(data, "train"), np.asarray(data.labels["train"])
    fit_estimator(pipeline, x_train, y_train)
    metrics: dict[str, float] = {"train/acc": float((pipeline.predict(x_train) == y_train).mean())}
    results = {}
    labels = list(range(len(data.genres)))
    for split in ("val", "test"):
        truth, statistics = np.asarray(data.labels[split]), track_statistics(data, split)
        predicted = pipeline.predict(statistics)
        accuracy = float((predicted == truth).mean())
        metrics.update({f"{split}/acc": accuracy, f"{split}/track_acc": accuracy,
                        f"{split}/loss": float(log_loss(truth, pipeline.predict_proba(statistics), labels=labels))})
        results[split] = TestResults(clip_true=truth, clip_pred=predicted, track_true=truth, track_pred=predicted,
                                     statistics=statistics)
    metrics["val/track_acc_best"] = metrics["val/track_acc"]
    metrics["test/macro_f1"] = float(f1_score(results["test"].track_true, results["test"].track_pred,
                                              labels=labels, average="macro", zero_division=0))
    return pipeline, metrics, results["test"]

"""MLflow: what a run reports besides its metrics: confusion matrices and classification reports,
t-SNE plots and separation scores of the input features and the learned embeddings, skipped files,
and the model. Inputs come from the data layer (:class:`genre.data.datamodule.PreparedData`) and the
trained module (its own normalisation), never re-read or re-computed here.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import torch
from mlflow import MlflowClient
from pytorch_lightning.loggers import MLFlowLogger
from sklearn.metrics import classification_report, confusion_matrix

from genre.data.datamodule import PreparedData
from genre.data.index import skipped_csv
from genre.module import GenreClassifier
from genre.plots import confusion_figure, tsne_figure
from genre.separation import separation_scores


def log_figure(client: MlflowClient, run_id: str, figure: plt.Figure, artifact_file: str) -> None:
    client.log_figure(run_id, figure, artifact_file)
    plt.close(figure)


def log_evaluation(client: MlflowClient, run_id: str, results: dict, genres: list[str], split_label: str,
                   prefix: str = "") -> None:
    """Confusion matrices (PNG with genre names, CSV counts) and classification reports of a test:
    ``results`` holds ``track_true``, ``track_pred``, ``clip_true`` and ``clip_pred`` (genre indices)."""
    labels = list(range(len(genres)))
    for level, true, pred in (("track", results["track_true"], results["track_pred"]),
                              ("clip", results["clip_true"], results["clip_pred"])):
        matrix = confusion_matrix(true, pred, labels=labels)
        header = "true\\predicted," + ",".join(genres)
        rows = [f"{g}," + ",".join(str(int(v)) for v in row) for g, row in zip(genres, matrix)]
        client.log_text(run_id, "\n".join([header, *rows]) + "\n", f"{prefix}confusion_matrix_{level}.csv")
        accuracy = float(np.trace(matrix) / max(matrix.sum(), 1))
        log_figure(client, run_id, confusion_figure(matrix, genres, f"{level} accuracy {accuracy:.1%}\n{split_label}"),
                   f"{prefix}confusion_matrix_{level}.png")
        report = classification_report(true, pred, labels=labels, target_names=genres, digits=3,
                                       zero_division=0)
        client.log_text(run_id, f"{level}-level classification report, {split_label}\n\n{report}",
                        f"{prefix}classification_report_{level}.txt")


def log_training_outputs(logger: MLFlowLogger, module: GenreClassifier, data: PreparedData,
                         config_yaml: str, seed: int) -> None:
    """Everything a run records besides metrics and params (call on rank 0 after testing)."""
    client, run_id = logger.experiment, logger.run_id
    _log_config_evaluation_and_skipped(client, run_id, module.test_results, data, config_yaml)
    results = module.test_results
    inputs = _input_features(data, module)
    for name, points, labels, what in (
            ("embeddings", results["track_embedding"], results["track_true"], "learned track embeddings"),
            ("features", inputs, np.asarray(data.labels["test"]), f"input {module.frontend.kind} features")):
        scores = separation_scores(points, labels)
        # through the logger: a resumed run does not log them twice, a lost server keeps them for replay
        logger.log_metrics({f"test/{name}_{score}": value for score, value in scores.items()}, step=0)
        title = (f"t-SNE of {what} ({data.index.name} test)\n"
                 f"silhouette {scores['silhouette']:.2f}, {scores['knn_k']:.0f}-NN accuracy {scores['knn_acc']:.1%}")
        log_figure(client, run_id, tsne_figure(points, labels, module.genres, title, seed), f"tsne_{name}.png")
    _log_model(logger, module, data)


def _log_config_evaluation_and_skipped(client: MlflowClient, run_id: str, test_results: dict, data: PreparedData,
                                       config_yaml: str) -> None:
    """What every run records, network or classical: its config, its test confusion matrices and reports,
    and the files it left out."""
    client.log_text(run_id, config_yaml, "config.yaml")
    log_evaluation(client, run_id, test_results, data.genres, f"test split, {data.index.split_protocol}")
    if data.skipped:
        client.log_text(run_id, skipped_csv(data.skipped), "skipped_files.csv")


def _input_features(data: PreparedData, module: GenreClassifier) -> np.ndarray:
    """One clip from the middle of each test track, normalised by the module, flattened: what the network sees."""
    with torch.no_grad():
        clips = torch.from_numpy(data.centre_clips("test")).to(module.normalize.mean.device)
        return module.normalize(clips).flatten(1).cpu().numpy()


def _log_model(logger: MLFlowLogger, module: GenreClassifier, data: PreparedData) -> None:
    from mlflow.models import infer_signature

    model = module.export().cpu()
    example = np.zeros((2, 1, data.n_bands, data.clip_frames), dtype=np.float32)
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    with mlflow.start_run(run_id=logger.run_id):
        mlflow.pytorch.log_model(model, name="model", signature=infer_signature(example, output),
                                 input_example=example)


def log_classical_outputs(logger: MLFlowLogger, pipeline, test_results: dict, data: PreparedData,
                          config_yaml: str) -> None:
    """What a classical baseline's run records: its config, confusion matrices and reports, skipped
    files, and the fitted scikit-learn pipeline (per-track band statistics in, genre indices out)."""
    from mlflow.models import infer_signature

    client, run_id = logger.experiment, logger.run_id
    _log_config_evaluation_and_skipped(client, run_id, test_results, data, config_yaml)
    example = test_results["statistics"][:2]
    with mlflow.start_run(run_id=run_id):
        # skops (MLflow's safe format) refuses to load a tree's node arrays unless they are named as trusted:
        # this run wrote them itself
        mlflow.sklearn.log_model(pipeline, name="model", signature=infer_signature(example, pipeline.predict(example)),
                                 input_example=example, skops_trusted_types=["sklearn.tree._tree.Tree"])

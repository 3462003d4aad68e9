"""MLflow: what a run reports besides its metrics: confusion matrices and classification reports,
t-SNE plots and separation scores of the input features and the learned embeddings, skipped files,
and the model. Inputs come from the data layer (:class:`genre.data.datamodule.PreparedData`) and the
trained module (its own normalisation), never re-read or re-computed here.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import torch
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import MLFlowLogger
from sklearn.metrics import classification_report, confusion_matrix

from genre.data.datamodule import PreparedData
from genre.data.index import skipped_csv
from genre.models.module import GenreClassifier
from genre.models.results import TestResults
from genre.tracking.plots import confusion_figure, pca_figure, tsne_figure
from genre.tracking.separation import separation_scores


def log_figure(client: MlflowClient, run_id: str, figure: plt.Figure, artifact_file: str) -> None:
    client.log_figure(run_id, figure, artifact_file)
    plt.close(figure)


def log_evaluation(client: MlflowClient, run_id: str, results: TestResults, genres: list[str], split_label: str,
                   prefix: str = "") -> None:
    """Confusion matrices (PNG with genre names, CSV counts) and classification reports of a test, per track
    and per clip."""
    labels = list(range(len(genres)))
    for level, true, pred in (("track", results.track_true, results.track_pred),
                              ("clip", results.clip_true, results.clip_pred)):
        matrix = confusion_matrix(true, pred, labels=labels)
        header = "true\\predicted," + ",".join(genres)
        rows = [f"{g}," + ",".join(str(int(v)) for v in row) for g, row in zip(genres, matrix, strict=True)]
        client.log_text(run_id, "\n".join([header, *rows]) + "\n", f"{prefix}confusion_matrix_{level}.csv")
        accuracy = float(np.trace(matrix) / max(matrix.sum(), 1))
        log_figure(client, run_id, confusion_figure(matrix, genres, f"{level} accuracy {accuracy:.1%}\n{split_label}"),
                   f"{prefix}confusion_matrix_{level}.png")
        report = classification_report(true, pred, labels=labels, target_names=genres, digits=3,
                                       zero_division=0)
        per_genre = classification_report(true, pred, labels=labels, target_names=genres, zero_division=0,
                                          output_dict=True)
        client.log_table(run_id, {"genre": genres, **{key: [per_genre[g][key] for g in genres]
                                                       for key in ("precision", "recall", "f1-score", "support")}},
                         f"{prefix}per_genre_{level}.json")
        client.log_text(run_id, f"{level}-level classification report, {split_label}\n\n{report}",
                        f"{prefix}classification_report_{level}.txt")


def log_training_outputs(logger: MLFlowLogger, module: GenreClassifier, results: TestResults, data: PreparedData,
                         cfg: DictConfig, register_as: str | None = None) -> None:
    """Everything a run records besides metrics and params (call on rank 0 with what its test predicted)."""
    client, run_id = logger.experiment, logger.run_id
    _log_config_evaluation_and_skipped(client, run_id, results, data, cfg)
    inputs = _input_features(data, module)
    for name, points, labels, what in (
            ("embeddings", results.track_embedding, results.track_true, "learned track embeddings"),
            ("features", inputs, np.asarray(data.labels["test"]), f"input {module.frontend.kind} features")):
        scores = separation_scores(points, labels)
        # through the logger: a resumed run does not log them twice, a lost server keeps them for replay
        logger.log_metrics({f"test/{name}_{score}": scores[score] for score in ("silhouette", "knn_acc")}, step=0)
        split = f"{data.index.name} test split, {data.index.split_protocol}"   # every plot names its protocol
        title = (f"t-SNE of {what}\n{split}\n"
                 f"silhouette {scores['silhouette']:.2f}, {scores['knn_k']:.0f}-NN accuracy {scores['knn_acc']:.1%}")
        log_figure(client, run_id, tsne_figure(points, labels, module.genres, title, cfg.seed), f"tsne_{name}.png")
        log_figure(client, run_id, pca_figure(points, labels, module.genres, f"PCA of {what}\n{split}"),
                   f"pca_{name}.png")
    _log_model(logger, module, results, data, cfg, register_as)


def _log_config_evaluation_and_skipped(client: MlflowClient, run_id: str, test_results: TestResults, data: PreparedData,
                                       cfg: DictConfig) -> None:
    """What every run records, network or classical: its config, its test confusion matrices and reports,
    and the files it left out."""
    client.log_text(run_id, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
    log_evaluation(client, run_id, test_results, data.genres, f"test split, {data.index.split_protocol}")
    if data.skipped:
        client.log_text(run_id, skipped_csv(data.skipped), "skipped_files.csv")


def _input_features(data: PreparedData, module: GenreClassifier) -> np.ndarray:
    """One clip from the middle of each test track, normalised by the module, flattened: what the network sees."""
    with torch.no_grad():
        clips = torch.from_numpy(data.centre_clips("test")).to(module.normalize.mean.device)
        return module.normalize(clips).flatten(1).cpu().numpy()


def model_metadata(module: GenreClassifier, results: TestResults, data: PreparedData, cfg: DictConfig) -> dict:
    """What the logged model needs to run (genres, clip length, hop, aggregation) and what a user needs
    to trust it: sample rate, feature settings, clip length, dataset, split protocol, test accuracy."""
    return {"genres": list(module.genres), "sample_rate": module.frontend.sample_rate,
            "features": module.frontend.settings(),
            "clip_seconds": float(cfg.clips.clip_seconds), "clip_frames": int(module.clip_frames),
            "hop_length": int(module.frontend.hop_length), "aggregation": module.aggregation,
            **({"encoder_window": int(module.frontend.window_samples), "batch_windows": module.frontend.batch_windows}
               if hasattr(module.frontend, "window_samples") else {}),
            "dataset": data.index.name, "split_protocol": data.index.split_protocol,
            "test_clip_accuracy": results.acc, "test_track_accuracy": results.track_acc,
            "input": "mono float32 waveform at sample_rate, any length",
            "output": "genre (top genre) and one probability per genre"}


def export_programs(module: GenreClassifier, folder: Path) -> dict[str, str]:
    """The front end (waveform of any length -> features) and the clip classifier (any number of clips ->
    probabilities, normalisation included) as ``torch.export`` programs in ``folder``: they load with
    torch alone."""
    from genre.models.inference import min_samples

    folder.mkdir(parents=True, exist_ok=True)
    frontend, classifier = module.frontend.cpu().eval(), module.export().cpu()
    shortest = min_samples(module.clip_frames, module.frontend.hop_length)
    clips = torch.zeros(2, 1, module.frontend.n_bands, module.clip_frames)
    if hasattr(frontend, "window_samples"):
        # an encoder: the program embeds windows (any number of them), its weights inside; the model cuts them
        # (genre.models.inference.embed_windows), so that memory is bounded by a window, as in training
        first = (frontend.windows, torch.zeros(2, frontend.window_samples), torch.export.Dim("windows", min=1))
    else:
        first = (frontend, torch.zeros(2 * shortest), torch.export.Dim("samples", min=shortest))
    paths = {}
    for name, program, example, dim in (("frontend", *first),
                                        ("classifier", classifier, clips, torch.export.Dim("clips", min=1))):
        with torch.no_grad():
            exported = torch.export.export(program, (example,), dynamic_shapes=({0: dim},))
        paths[name] = str(folder / f"{name}.pt2")
        torch.export.save(exported, paths[name])
    return paths


def fail_pending_models(client: MlflowClient, run_id: str) -> list[str]:
    """Mark FAILED the models of ``run_id`` still PENDING: a model logging killed halfway left one, which a
    resumed run's finished model then stood beside. Returns their ids."""
    from mlflow.entities import LoggedModelStatus

    run = client.get_run(run_id)
    pending = [m for m in client.search_logged_models([run.info.experiment_id],
                                                      filter_string=f"source_run_id = '{run_id}'")
               if m.status == LoggedModelStatus.PENDING]
    for model in pending:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
    return [m.model_id for m in pending]


def _log_model(logger: MLFlowLogger, module: GenreClassifier, results: TestResults, data: PreparedData,
               cfg: DictConfig, register_as: str | None = None) -> None:
    """The run's model: waveforms in, genres out (:mod:`genre.tracking.audio_model`), registered in the
    model registry as ``register_as`` when given. A model an interrupted attempt left PENDING is marked
    FAILED first."""
    from importlib.metadata import version

    fail_pending_models(logger.experiment, logger.run_id)

    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    import genre.data.waveform
    import genre.models.inference
    import genre.tracking.audio_model

    metadata = model_metadata(module, results, data, cfg)
    signature = ModelSignature(Schema([ColSpec(Array(DataType.double), "waveform")]),  # float32 converts safely
                               Schema([ColSpec(DataType.string, "genre"),
                                       *[ColSpec(DataType.double, g) for g in metadata["genres"]],
                                       ColSpec(DataType.double, "padded_seconds")]))
    rate = metadata["sample_rate"]
    example = {"waveform": (0.1 * np.sin(2 * np.pi * 440.0 * np.arange(rate // 10) / rate)).tolist()}  # 0.1 s, A4
    with tempfile.TemporaryDirectory(prefix="genre-model-") as tmp, mlflow.start_run(run_id=logger.run_id):
        artifacts = export_programs(module, Path(tmp))
        artifacts["metadata"] = str(Path(tmp) / "metadata.json")   # not model_config: MLflow logs that as params
        Path(artifacts["metadata"]).write_text(json.dumps(metadata, indent=1))
        info = mlflow.pyfunc.log_model(
            name="model", step=_step_after_the_last(logger), python_model=genre.tracking.audio_model.__file__, code_paths=[genre.models.inference.__file__,
                                                                                    genre.data.waveform.__file__],
            artifacts=artifacts, metadata=metadata,
            signature=signature, input_example=example,
            pip_requirements=[f"torch=={version('torch')}", f"numpy=={version('numpy')}",
                              f"pandas=={version('pandas')}", f"mlflow=={version('mlflow')}"])
    logger.send_test_metrics(info.model_id)   # the model's page shows what it scored on the test split
    if register_as:   # the version opens on this model, with its metrics
        mlflow.register_model(info.model_uri, register_as)


def _step_after_the_last(logger: MLFlowLogger) -> int:
    """The step to log the run's model at: one past every metric the run has. MLflow links a model to the
    run's metrics at the model's step by logging them again, a second time on the run (system metrics and
    separation scores were on the model's page, and twice on the run); the test's metrics are linked to it
    once, by the logger (:meth:`genre.tracking.logger.ResilientMLFlowLogger.send_test_metrics`)."""
    client, run_id = logger.experiment, logger.run_id
    steps = [m.step for key in client.get_run(run_id).data.metrics for m in client.get_metric_history(run_id, key)]
    return max(steps, default=-1) + 1


SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree", "sklearn.calibration._CalibratedClassifier",
                       "sklearn.calibration._SigmoidCalibration"]


def log_classical_outputs(logger: MLFlowLogger, pipeline, test_results: TestResults, data: PreparedData,
                          cfg: DictConfig) -> None:
    """What a classical baseline's run records: its config, confusion matrices and reports, skipped
    files, and the fitted scikit-learn pipeline (per-track band statistics in, genre indices out)."""
    from mlflow.models import infer_signature

    client, run_id = logger.experiment, logger.run_id
    _log_config_evaluation_and_skipped(client, run_id, test_results, data, cfg)
    example = test_results.statistics[:2]
    with mlflow.start_run(run_id=run_id):
        # skops (MLflow's safe format) refuses to load scikit-learn's internal types unless they are named as
        # trusted: a tree's node arrays, the svm's calibration (this run wrote them itself)
        info = mlflow.sklearn.log_model(pipeline, name="model", step=_step_after_the_last(logger),
                                        signature=infer_signature(example, pipeline.predict(example)),
                                        input_example=example, skops_trusted_types=SKOPS_TRUSTED_TYPES)
    logger.send_test_metrics(info.model_id)

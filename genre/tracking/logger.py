"""The run's MLflow logger: metrics that survive a lost tracking server, the run's system metrics and
dataset input, and the lines that end a run."""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only

from genre.runtime.console import program_here
from genre.tracking.store import (
    check_reachable,
    is_tracking_server,
    limit_http_retries,
    open_store,
    retry_lost_insert_race,
    retry_while_locked,
)
from genre.tracking.unsent import metrics_line, status_line

log = logging.getLogger(__name__)
HELD_PREFIX = "test/"   # metrics that wait for the model they describe (ResilientMLFlowLogger.send_test_metrics)


def epoch_steps(metrics: dict, step: int | None) -> tuple[dict, int | None]:
    """The run's one step scheme (README, "What a run records"): a per-epoch metric's step is the epoch it
    describes, counted from 1 as the console counts them (``train/loss`` at steps 1..N), so that runs of
    different sizes and batch counts line up epoch for epoch; a result computed once (``test/...``, the
    separation scores) is at step 0, which MLflow draws as a bar. Lightning sends its global step and an
    ``epoch`` value with every call: the value becomes the step, and is not logged as a metric of its own."""
    epoch = metrics.get("epoch")
    metrics = {k: v for k, v in metrics.items() if k != "epoch"}
    if any(k.startswith(HELD_PREFIX) for k in metrics):
        return metrics, 0
    if epoch is not None:
        return metrics, int(epoch) + 1
    return metrics, step


class ResilientMLFlowLogger(MLFlowLogger):
    """An MLFlowLogger whose metrics survive the tracking server going away mid-run.

    A metrics call that fails is written to ``unsent_metrics.jsonl`` in the run's output directory
    instead (one JSON object per call: step and values) and training goes on; later calls try the
    server again. Checkpoints are local files and are not affected. ``python -m genre.replay`` sends
    the kept metrics (and the run's final status) once the server is back.
    """

    def __init__(self, *args, unsent_path: Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.unsent_path = unsent_path
        self.unsent = 0
        self.already_logged: set[tuple[str, int]] = set()   # (metric, step) the run has
        self.ended = False
        self.held: list[tuple[dict[str, float], int | None]] = []   # the test's metrics, until the model is logged

    def skip_what_the_run_has(self) -> None:
        """A resumed run repeats the epochs after its last checkpoint; a kill may have come after such an
        epoch's metrics reached the store. What the run already has at a step is not logged again."""
        client = MlflowClient(self._tracking_uri)
        for key in client.get_run(self._run_id).data.metrics:
            self.already_logged |= {(key, m.step) for m in client.get_metric_history(self._run_id, key)}

    @property
    def version(self) -> None:
        """None: the run id is not a version, and the progress bar shows no ``v_num`` (checkpoint folders
        are set by the callbacks, never derived from it)."""
        return None

    @rank_zero_only
    def log_metrics(self, metrics, step=None):
        """Log what the run does not have at ``step`` yet: each metric once per step (Lightning sends its
        ``epoch`` value with the training and again with the validation metrics of a step). The test's
        metrics (``test/...``) wait for the model they describe: :meth:`send_test_metrics` links them to it."""
        metrics, step = epoch_steps(metrics, step)
        metrics = {k: v for k, v in metrics.items() if (k, step or 0) not in self.already_logged}
        if not metrics:
            return
        self.already_logged |= {(k, step or 0) for k in metrics}
        held = {k: v for k, v in metrics.items() if k.startswith(HELD_PREFIX)}
        if held:
            self.held.append((held, step))
        rest = {k: v for k, v in metrics.items() if k not in held}
        if rest:
            self._send(rest, step)

    @rank_zero_only
    def send_test_metrics(self, model_id: str | None = None) -> None:
        """Send the test's metrics, linked to the logged model ``model_id`` when given (MLflow 3 shows them on
        the model's page, and a model registered from it carries them); each is logged once, on the run."""
        held, self.held = self.held, []
        for metrics, step in held:
            # MLflow stores a model's NaN as 0.0: a score that could not be computed stays on the run alone
            linked = {k: v for k, v in metrics.items() if model_id is not None and math.isfinite(float(v))}
            if linked:
                self._send(linked, step, model_id)
            rest = {k: v for k, v in metrics.items() if k not in linked}
            if rest:
                self._send(rest, step)

    def _send(self, metrics: dict[str, float], step: int | None, model_id: str | None = None) -> None:
        try:
            if model_id is None:
                super().log_metrics(metrics, step)
            else:
                from mlflow.entities import Metric

                now = int(time.time() * 1000)
                self.experiment.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step or 0, model_id=model_id)
                                                                for k, v in metrics.items()])
        except Exception as error:  # MlflowException, requests' errors: whatever the client raises
            if self.unsent_path is None:
                raise
            if not self.unsent:
                log.warning("the tracking server did not take metrics (%s): training goes on; metrics are kept "
                            "in %s", type(error).__name__, self.unsent_path)
            self.unsent += 1
            self.unsent_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.unsent_path, "a") as f:
                f.write(metrics_line(self._run_id, step, metrics))

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """Lightning's call at the end of ``fit`` and of ``test``: a failure ends the run now, a success does
        not. The run is not finished before its outputs (plots, reports, the model) are recorded: a run
        killed in between stays RUNNING, never FINISHED without them. :meth:`end_run` finishes it."""
        if status not in ("success", "finished"):
            self.end_run(status)

    @rank_zero_only
    def end_run(self, status: str = "success") -> None:
        """Mark the run ``status`` (FINISHED for success), once: a failure Lightning already ended stays as
        it ended. A server gone keeps the status for the replay."""
        if self.ended:
            return
        self.ended = True
        try:
            self.send_test_metrics()   # no model took them (a failed run, or one whose model was not logged)
        except Exception as error:
            log.warning("could not send the test metrics (%s)", type(error).__name__)
        try:
            retry_while_locked(lambda: super(ResilientMLFlowLogger, self).finalize(status), "marking the run ended")
        except Exception as error:
            log.warning("could not mark the MLflow run finished (%s)", type(error).__name__)
            if self.unsent_path is not None and self._run_id is not None:
                with open(self.unsent_path, "a") as f:
                    f.write(status_line(self._run_id, status))
        if self.unsent and self.unsent_path is not None:
            log.warning("%d metrics calls the tracking server refused are in %s; when it is back: "
                        "python -m genre.replay %s --tracking-uri <server>", self.unsent, self.unsent_path,
                        self.unsent_path)


def create_logger(experiment_name: str, tracking_uri: str, artifact_location: str | None,
                  run_name: str | None, tags: dict[str, str], run_id: str | None = None,
                  unsent_path: Path | None = None) -> MLFlowLogger:
    if is_tracking_server(tracking_uri):
        limit_http_retries()
    check_reachable(tracking_uri)
    open_store(tracking_uri, experiment_name, artifact_location)
    mlflow.set_tracking_uri(tracking_uri)  # for the fluent API (model logging) too
    logger = ResilientMLFlowLogger(experiment_name=experiment_name, tracking_uri=tracking_uri, run_name=run_name,
                                   tags=tags, artifact_location=artifact_location, run_id=run_id,
                                   log_model=False, unsent_path=unsent_path)
    # a resumed run keeps its name; known now, while the store answers
    logger.run_name = MlflowClient(tracking_uri).get_run(run_id).info.run_name if run_id else run_name
    if run_id is not None:   # resumed: a run interrupted (FAILED) or killed (RUNNING) is running again
        MlflowClient(tracking_uri).update_run(run_id, status="RUNNING")
        logger.skip_what_the_run_has()
    return logger


def start_system_metrics(logger: MLFlowLogger, tracking_uri: str, interval_s: float, resumed: bool):
    """MLflow's system metrics of the run (``system/cpu_utilization_percentage``, memory, disk, network;
    GPU utilisation and memory where pynvml is installed, the ``gpu`` extra), sampled every
    ``interval_s`` seconds in a thread of this process until ``.finish()``. A resumed run continues
    the steps it had."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(logger.run_id, sampling_interval=interval_s, resume_logging=resumed,
                                   tracking_uri=tracking_uri)
    monitor.start()
    return monitor


def log_dataset_input(logger: MLFlowLogger, data) -> None:
    """The run's data as an MLflow dataset input: one row per track it used (id, genre, split), named after
    the dataset, with its digest, split protocol and features digest, so runs on other data show it."""
    import pandas as pd
    from mlflow.data import from_pandas
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    genres = data.genres
    frame = pd.DataFrame([(track_id, genres[label], split) for split in data.rows
                          for track_id, label in zip(data.track_ids[split], data.labels[split], strict=True)],
                         columns=["track_id", "genre", "split"])
    dataset = from_pandas(frame, name=data.index.name, targets="genre")
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, "training"),
            InputTag("split_protocol", data.index.split_protocol),
            InputTag("features_digest", data.features.content_digest)]
    dataset_input = DatasetInput(dataset._to_mlflow_entity(), tags)
    retry_lost_insert_race(lambda: logger.experiment.log_inputs(logger.run_id, datasets=[dataset_input]),
                           f"logging dataset {data.index.name!r} as the run's input")


def closing_lines(run_name: str, run_id: str, experiment_id: str, output_dir: str, tracking_uri: str,
                  root_dir: str | Path = ".", servable: bool = True) -> list[str]:
    """The last lines of a run: what it is, where its files are, the command that shows it, and the one that
    starts the app on it (each as typed from the working directory), only for a run with a checkpoint to serve
    (``servable``: a scikit-learn baseline has none)."""
    from genre.tracking.store import resolve_tracking_uri

    if is_tracking_server(tracking_uri):
        show = f"open {tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    else:
        show = (f"{program_here('mlflow')} ui --backend-store-uri {tracking_uri}   then open "
                f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}")
    app = f"{program_here('genre-app')} run_id={run_id}"
    if Path(root_dir).resolve() != Path.cwd().resolve():
        app += f" paths.root_dir={Path(root_dir).resolve()}"
    if tracking_uri != resolve_tracking_uri(None, root_dir):
        app += f" tracking_uri={tracking_uri}"
    lines = [f"run      {run_name}  (id {run_id})", f"outputs  {output_dir}", f"see it   {show}"]
    if servable:
        lines.append(f"try it   {app}   then open http://127.0.0.1:8050")
    return lines

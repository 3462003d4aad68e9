"""The MLflow model a run logs: mono float32 waveforms in, a probability per genre and the top genre out.

Logged as an MLflow *model from code*: this file and ``genre/models/inference.py`` are copied into the model,
beside the front end and the clip classifier as ``torch.export`` programs, so that

    model = mlflow.pyfunc.load_model("runs:/<run id>/model")
    model.predict(pandas.DataFrame({"waveform": [song, another_song]}))   # one row per song
    model.predict({"waveform": song})                                    # one song

classifies a song where ``genre`` is not installed (numpy, pandas, torch and mlflow are enough), with
the code ``evaluate.py audio=`` runs: front end, normalisation, windows covering the track, track
aggregation. ``mlflow models serve`` takes the same as JSON: ``{"dataframe_records": [{"waveform": [...]}]}``.
Waveforms must be mono at the sample rate in the model's metadata (``sample_rate``); any length.
This file imports nothing of ``genre`` outside ``inference``.
"""
from __future__ import annotations

import functools
import json
import warnings

import numpy as np
import pandas as pd
import torch
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

try:
    from inference import (  # inside a logged model: its code/ folder is on sys.path
        classify_waveform,
        embed_windows,
        min_samples,
    )
    from waveform import input_problem
except ImportError:
    from genre.data.waveform import input_problem
    from genre.models.inference import classify_waveform, embed_windows, min_samples


def waveforms_of(model_input) -> list[np.ndarray]:
    """The waveforms in what ``predict`` was given (MLflow turns a dict or records into a DataFrame
    first): a DataFrame with a ``waveform`` column, one waveform per row; else a 1-D array (one waveform),
    a 2-D array or a list (one per row)."""
    if isinstance(model_input, pd.DataFrame):
        column = model_input["waveform"] if "waveform" in model_input else model_input.iloc[:, 0]
        items = list(column)
    elif isinstance(model_input, np.ndarray) and model_input.ndim == 1:
        items = [model_input]
    else:
        items = list(model_input)
    return [np.asarray(item, dtype=np.float32).reshape(-1) for item in items]


class AudioGenreModel(PythonModel):
    """``predict``: a DataFrame with a ``genre`` column (the top genre) and one probability column per genre."""

    def load_context(self, context):
        with open(context.artifacts["metadata"]) as f:
            self.config = json.load(f)
        with warnings.catch_warnings():
            # torch 2.11 loading a saved program says both, by name: its weights are CPU tensors, read-only
            # in the archive and never written to; neither means anything to the model's user
            warnings.filterwarnings("ignore", "No complete tensor found in the group", UserWarning)
            warnings.filterwarnings("ignore", "The given buffer is not writable", UserWarning)
            self.frontend = torch.export.load(context.artifacts["frontend"]).module()
            self.classifier = torch.export.load(context.artifacts["classifier"]).module()
        if "encoder_window" in self.config:   # a pretrained encoder: the program embeds windows, cut here
            self.frontend = functools.partial(embed_windows, window_embedder=self.frontend,
                                              window=self.config["encoder_window"], hop=self.config["hop_length"],
                                              batch_windows=self.config["batch_windows"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """One row per waveform: the top ``genre``, a probability per genre, and ``padded_seconds``, the
        silence added to a waveform shorter than one clip (0 for the others; the answer rests on less audio).

        An empty, silent or non-finite waveform, or one far beyond full scale, is refused with an
        ``MlflowException`` naming the row (``mlflow models serve`` answers it with HTTP 400), never
        classified: such input is not music, and its probabilities would mean nothing (or be NaN).
        """
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        c = self.config
        waveforms = waveforms_of(model_input)
        for row, waveform in enumerate(waveforms):
            problem = input_problem(waveform)
            if problem:
                raise MlflowException(f"waveform {row}: {problem}; send mono float samples in [-1, 1] at "
                                      f"{c['sample_rate']} Hz", error_code=INVALID_PARAMETER_VALUE)
        scores = np.stack([classify_waveform(w, self.frontend, self.classifier, c["clip_frames"], c["hop_length"],
                                             c["aggregation"]) for w in waveforms])
        frame = pd.DataFrame(scores.astype(np.float64), columns=c["genres"])
        frame.insert(0, "genre", [c["genres"][i] for i in scores.argmax(1)])
        shortest = min_samples(c["clip_frames"], c["hop_length"])
        frame["padded_seconds"] = [max(0, shortest - w.shape[0]) / c["sample_rate"] for w in waveforms]
        return frame


set_model(AudioGenreModel())

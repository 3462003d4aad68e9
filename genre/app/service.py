"""What the app knows and does, without the web: a trained run loaded once, one song analysed as ``evaluate.py
audio=`` classifies it, the run's corpus searched for the tracks nearest to it, and a corpus track's audio.

Every answer comes from :mod:`genre.evaluate` and :meth:`genre.models.module.GenreClassifier.analyse_waveform`:
the app, ``evaluate.py audio=`` and the logged MLflow model run one prediction code path.
"""
from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genre.data.audio import duration_seconds, excerpt_start, load_audio, load_excerpt
from genre.data.index import inside_root
from genre.evaluate import (
    corpus_data,
    corpus_embeddings,
    decode_for_classification,
    find_checkpoint,
    nearest_tracks,
    ranked,
    trained_on,
)
from genre.runtime.errors import AudioDecodeError, ConfigError, GenreError, printable

log = logging.getLogger(__name__)

FRONT_END_NAMES = {"mel": "log-mel spectrogram", "mfcc": "MFCC", "stft": "log-power spectrogram",
                   "mert": "MERT embeddings (every layer)", "muq": "MuQ embeddings (every layer)",
                   "clap": "CLAP audio embeddings (every layer)", "ast": "AST embeddings (every layer)"}
IMAGE_ROWS, IMAGE_COLUMNS = 256, 1600    # the front end's picture is pooled down to at most this


class Refused(Exception):
    """An input the app does not take: the page shows ``message``, the API answers HTTP ``status``."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Limits:
    """What one request may ask (``conf/app.yaml``)."""

    max_upload_mb: float = 100.0     # a larger upload is refused before it is read whole
    max_seconds: float = 600.0       # a longer song is refused before it is decoded (from its header)
    workers: int = 2                 # songs analysed at once; the rest wait their turn
    queue: int = 16                  # songs waiting at most; more are answered 503, try again
    min_audio_seconds: float = 1.0   # of real audio: a shorter song is refused (its answer would be the padding's)

    def __post_init__(self):
        if not (self.max_upload_mb > 0 and self.max_seconds > 0 and self.workers >= 1 and self.queue >= 0):
            raise ConfigError(f"max_upload_mb={self.max_upload_mb}, max_seconds={self.max_seconds}, workers="
                              f"{self.workers}, queue={self.queue}: need sizes > 0, workers >= 1, queue >= 0")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def resolve_checkpoint(ckpt_path: str | None, run_id: str | None, registered_model: str | None, alias: str | None,
                       tracking_uri: str, cache_dir: str | Path | None = None) -> tuple[Path, str]:
    """The checkpoint the app serves, and how it was named: exactly one of ``ckpt_path``, ``run_id`` or
    ``registered_model`` (its version ``alias``, else its latest version) in ``tracking_uri``; a logged one is
    fetched once into ``cache_dir`` (:func:`genre.evaluate.find_checkpoint`)."""
    named = [name for name, value in (("ckpt_path", ckpt_path), ("run_id", run_id),
                                      ("registered_model", registered_model)) if value]
    if len(named) != 1:
        raise ConfigError("name the model with exactly one of ckpt_path=..., run_id=... or registered_model=NAME "
                          f"[alias=ALIAS] (given: {named or 'none'})")
    if alias and not registered_model:
        raise ConfigError("alias= names a version of registered_model=NAME: give both")
    if ckpt_path:
        return Path(ckpt_path), f"checkpoint {ckpt_path}"
    if run_id:
        return find_checkpoint(run_id, tracking_uri, cache_dir), f"run {run_id}"
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    try:
        if alias:
            version = client.get_model_version_by_alias(registered_model, alias)
        else:
            versions = client.search_model_versions(f"name = '{registered_model}'")
            if not versions:
                raise mlflow.exceptions.MlflowException(f"no version of {registered_model}")
            version = max(versions, key=lambda v: int(v.version))
    except mlflow.exceptions.MlflowException as error:
        raise ConfigError(f"registered_model={registered_model}{f' alias={alias}' if alias else ''}: not found in "
                          f"{tracking_uri} ({error.message}); see the names with the MLflow UI's Models page, or set "
                          f"tracking_uri=...") from None
    named = f"{registered_model} version {version.version}" + (f" (@{alias})" if alias else "")
    return find_checkpoint(version.run_id, tracking_uri, cache_dir), named


class AppModel:
    """A trained run, loaded once: its classifier, its corpus's learned embeddings and where its tracks are.

    ``similar``: how many corpus tracks a song is given; 0 leaves the corpus alone. A corpus that cannot be
    prepared (moved, gone) leaves the classifier working and says why the list is missing.
    """

    def __init__(self, ckpt_path: str | Path, similar: int = 5, cache_dir: str = "cache",
                 dataset_root: str | None = None, tracking_uri: str | None = None, mlflow_ui: str | None = None,
                 named: str | None = None):
        from genre.assembly.build import load_classifier

        self.ckpt_path = Path(ckpt_path)
        self.model = load_classifier(ckpt_path)
        self.module = self.model.module
        self.genres = list(self.module.genres)
        self.similar = int(similar)
        self.named = named or f"checkpoint {ckpt_path}"
        self.corpus: dict[str, np.ndarray] | None = None
        self.corpus_problem: str | None = None
        self.tracks: dict = {}
        self.skipped: list = []
        self.dataset_root: Path | None = None
        self.excerpt, self.track_seconds = "start", None
        if self.similar > 0:
            self._load_corpus(cache_dir, dataset_root)
        self.facts = self._facts(tracking_uri, mlflow_ui)

    def _load_corpus(self, cache_dir: str, dataset_root: str | None) -> None:
        try:
            data = corpus_data(self.model, cache_dir, dataset_root)
            self.corpus = corpus_embeddings(self.model, self.ckpt_path, cache_dir, dataset_root, data=data)
        except GenreError as error:
            self.corpus_problem = f"the run's corpus cannot be searched: {error}"
            log.warning("%s; the app classifies, without tracks like it", self.corpus_problem)
            return
        self.tracks = {t.track_id: t for t in data.index.tracks}
        self.skipped = list(data.skipped)
        root = dataset_root or self.model.config.dataset.get("root")
        self.dataset_root = Path(root).resolve() if root else None
        self.excerpt, self.track_seconds = data.index.excerpt, data.index.track_seconds

    def _facts(self, tracking_uri: str | None, mlflow_ui: str | None) -> dict:
        config, info = self.model.config, self.module.run_info
        run_id = self.model.run_id
        uri = tracking_uri or self.model.tracking_uri
        facts = {"model": config.model.get("name") or config.model._target_.rsplit(".", 1)[-1],
                 "features": config.features.get("name") or self.module.frontend.kind,
                 "dataset": config.dataset.get("name") or config.dataset._target_.split(".")[-2],
                 "split_protocol": info.get("split_protocol", "unknown"), "genres": self.genres,
                 "clip_seconds": float(config.clips.clip_seconds), "aggregation": self.module.aggregation,
                 "sample_rate": int(self.module.frontend.sample_rate), "run_id": run_id, "named": self.named,
                 "checkpoint": Path(self.ckpt_path).name, "test_track_acc": None, "test_acc": None, "run_url": None,
                 "ui_command": None, "corpus_tracks": 0 if self.corpus is None else len(self.corpus["track_id"]),
                 "corpus_problem": self.corpus_problem, "skipped": [(self._shown_path(s.path), printable(s.reason)) for s in self.skipped],
                 "similar": self.similar}
        facts["trained_on"], facts["trained_on_warning"] = trained_on(config, info)
        if not (run_id and uri):
            return facts
        from genre.tracking.store import is_tracking_server, limit_http_retries

        try:
            import mlflow

            if is_tracking_server(uri):
                limit_http_retries()
            run = mlflow.MlflowClient(uri).get_run(run_id)
            facts["test_track_acc"] = run.data.metrics.get("test/track_acc")
            facts["test_acc"] = run.data.metrics.get("test/acc")
            experiment = run.info.experiment_id
        except Exception as error:   # the store is away: the page says what the checkpoint knows
            log.warning("the run's tracking store %s cannot be read (%s): the page shows no test accuracy", uri,
                        str(error).splitlines()[0][:200] if str(error) else type(error).__name__)
            return facts
        ui = mlflow_ui or (uri if is_tracking_server(uri) else None)
        if ui:
            facts["run_url"] = f"{ui.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"
        else:   # names, not paths: the page says what to type in the folder of the run's store
            store = uri.rsplit("/", 1)[-1] if uri.startswith("sqlite:") else None
            facts["ui_command"] = (f"mlflow ui --backend-store-uri sqlite:///{store}   (in the folder that holds "
                                   f"{store})") if store else "mlflow ui (with the run's store)"
        return facts

    def _shown_path(self, path: str) -> str:
        """A corpus file as the page names it: relative to the dataset's root, never the machine's full path."""
        try:
            return printable(Path(path).resolve().relative_to(self.dataset_root)) if self.dataset_root else \
                printable(Path(path).name)
        except ValueError:
            return printable(Path(path).name)

    def analyse(self, path: str | Path, shown: str, limits: Limits) -> dict:
        """The page's answer for the file at ``path`` (``shown``: its name as the person gave it).

        Refused (:class:`Refused`): a file longer than ``limits.max_seconds`` by its header, before decoding;
        one that does not decode, is truncated or silent. A song shorter than a clip is padded, and says so."""
        declared = duration_seconds(path)
        if declared is not None and declared > limits.max_seconds:
            raise Refused(413, f"{shown} lasts {declared:.0f} s, longer than the {limits.max_seconds:.0f} s this app "
                               f"takes (max_seconds=...): cut it, or start the app with a larger limit")
        try:
            waveform, padded = decode_for_classification(self.module, path, shown, limits.min_audio_seconds)
        except AudioDecodeError as error:
            raise Refused(422, f"{shown}: {error.reason}") from None
        rate = self.module.frontend.sample_rate
        seconds = waveform.shape[0] / rate
        if seconds > limits.max_seconds:   # a header that did not say how long it is
            raise Refused(413, f"{shown} lasts {seconds:.0f} s, longer than the {limits.max_seconds:.0f} s this "
                               f"app takes (max_seconds=...)")
        analysis = self.module.analyse_waveform(waveform)
        hop = self.module.frontend.hop_length
        window = self.module.clip_frames * hop / rate
        return {"file": shown, "seconds": round(seconds, 3), "padded_seconds": round(padded, 3),
                "genres": self.genres,
                "ranking": [{"genre": g, "probability": p} for g, p in ranked(self.genres, analysis.scores)],
                "windows": {"starts": [round(float(s) * hop / rate, 4) for s in analysis.starts],
                            "seconds": round(window, 4), "probabilities": analysis.probabilities.round(6).tolist()},
                "features": self._picture(analysis.features, hop / rate),
                "similar": self.nearest(analysis.embedding), "similar_problem": self.corpus_problem}

    def nearest(self, embedding: np.ndarray) -> list[dict]:
        """The corpus tracks nearest to ``embedding``, each with whether its audio can be played now."""
        if self.corpus is None:
            return []
        rows = []
        for track_id, genre, split, distance in nearest_tracks(self.corpus, embedding, self.similar):
            track = self.tracks.get(track_id)
            available = track is not None and Path(track.path).is_file()
            rows.append({"track_id": track_id, "genre": genre, "split": split, "distance": round(distance, 6),
                         "available": available, "reason": None if available else
                         "its file is gone since the run" if track is not None else "no longer in the corpus"})
        return rows

    def _picture(self, features: np.ndarray, seconds_per_column: float) -> dict:
        """The front end's output as a PNG (low bands at the bottom), pooled to at most IMAGE_ROWS x IMAGE_COLUMNS."""
        from matplotlib.image import imsave

        rows = _pooled(_pooled(features, IMAGE_ROWS, axis=0), IMAGE_COLUMNS, axis=1)
        low, high = np.percentile(rows, [1, 99])
        scaled = np.clip((rows - low) / max(float(high - low), 1e-9), 0, 1)
        buffer = io.BytesIO()
        imsave(buffer, scaled, cmap="magma", origin="lower", format="png")
        settings = self.module.frontend.settings()
        kind = settings.get("loader") or self.module.frontend.kind       # an encoder by its family: mert, ast, ...
        label = FRONT_END_NAMES.get(kind, kind)
        if settings.get("kind") == "waveform windows":
            label = "waveform, window by window (the encoder is trained inside the network)"
        return {"kind": kind, "label": label, "bands": int(features.shape[0]),
                "seconds": round(features.shape[1] * seconds_per_column, 4),
                "image": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()}

    def track_audio(self, track_id: str) -> bytes:
        """A corpus track as WAV (16-bit, at the model's rate), the excerpt the run used: what the page plays.

        Only a track of the run's corpus, by its id, and only a file inside the corpus's root; anything else is
        404, a file gone since is 410, one that no longer decodes is 422."""
        track = self.tracks.get(track_id)
        if track is None:
            raise Refused(404, f"no track {track_id!r} in the run's corpus")
        path = Path(track.path)
        if self.dataset_root is not None and inside_root(self.dataset_root, path) is None:
            raise Refused(404, f"no track {track_id!r} in the run's corpus")
        if not path.is_file():
            raise Refused(410, f"track {track_id}: its file is gone since the run")
        rate = self.module.frontend.sample_rate
        try:   # only the excerpt the run used is decoded into memory, whatever the file's length
            if self.track_seconds:
                n = int(round(self.track_seconds * rate))
                waveform, available = load_excerpt(path, rate, n, self.excerpt)
                waveform = waveform[:max(0, min(n, available - excerpt_start(available, n, self.excerpt, rate)))]
            else:
                waveform = load_audio(path, rate)
        except AudioDecodeError as error:
            raise Refused(422, f"track {track_id}: {error.reason}") from None
        import soundfile as sf

        buffer = io.BytesIO()
        sf.write(buffer, np.clip(waveform, -1, 1), rate, format="WAV", subtype="PCM_16")
        return buffer.getvalue()


def _pooled(values: np.ndarray, most: int, axis: int) -> np.ndarray:
    """``values`` averaged in equal groups along ``axis`` so that at most ``most`` remain."""
    n = values.shape[axis]
    if n <= most:
        return values
    edges = np.linspace(0, n, most + 1).round().astype(int)
    return np.add.reduceat(values, edges[:-1], axis=axis) / np.diff(edges).reshape(
        (-1, 1) if axis == 0 else (1, -1))

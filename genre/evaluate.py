"""Score a trained model on a split of its own data or on another corpus, or classify one audio file.
``evaluate.py`` is the command line.

A checkpoint carries the resolved config of its training run (dataset, features, model, split), so
the same front end, the same split and the same clip windows are rebuilt from it. With ``dataset=...``
the model is scored on another corpus whose genres match its own or map to them (``genre_map``): how
far a model travels.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from genre.assembly.predictor import load_predictor
from genre.data.audio import duration_seconds, load_audio, stream_audio
from genre.data.waveform import input_problem
from genre.models.inference import aggregate_windows, cut_windows, min_samples
from genre.models.predictor import Predictor
from genre.runtime.errors import AudioDecodeError, ConfigError, DatasetError

if TYPE_CHECKING:   # what scores a split needs (Lightning, MLflow, the data pipeline) is imported there:
    from genre.assembly.build import LoadedClassifier  # classifying a file needs none of it, and starts in a second
    from genre.data.datamodule import PreparedData
    from genre.data.index import DatasetIndex

log = logging.getLogger(__name__)


def find_checkpoint(run_id: str, tracking_uri: str, cache_dir: str | Path | None = None) -> Path:
    """The best checkpoint of an MLflow run: its recorded path if present, else the logged artifact, fetched
    once into ``cache_dir/checkpoints/<run id>/`` (inside the roots the command names; a temporary folder was
    left behind by every call) and reused; written whole, then moved into place."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException as error:
        raise DatasetError(f"run_id={run_id}: no such run in {tracking_uri} ({error.message}); "
                           f"set tracking_uri=... to the store that holds it") from None
    recorded = run.data.tags.get("best_checkpoint")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    artifacts = [a.path for a in client.list_artifacts(run_id, "checkpoints") if a.path.endswith(".ckpt")]
    if not artifacts:
        if not recorded:   # a scikit-learn baseline keeps no checkpoint; its logged model is MLflow's
            raise DatasetError(f"run {run_id} has no checkpoint: it trained {run.data.tags.get('model', 'a model')}, "
                               f"which keeps none (a scikit-learn baseline; its logged model serves with mlflow "
                               f"models serve). evaluate.py and genre-app take the run of a network (model=cnn3, "
                               f"resnet or probe)")
        raise DatasetError(f"run {run_id} has no checkpoint: its recorded one ({recorded}) is gone and none was "
                           f"logged to the store; name a checkpoint with ckpt_path=...")
    if cache_dir is None:
        return Path(client.download_artifacts(run_id, artifacts[0]))
    import os
    import shutil

    kept = Path(cache_dir) / "checkpoints" / run_id / Path(artifacts[0]).name
    if kept.is_file():
        return kept
    staging = kept.parent / f".partial-{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        fetched = Path(client.download_artifacts(run_id, artifacts[0], dst_path=str(staging)))
        os.replace(fetched, kept)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return kept


def evaluate_split(model: LoadedClassifier, split: str, cache_dir: str, dataset_root: str | None = None,
                   log_to_mlflow: bool = True) -> dict[str, float]:
    """Clip and track metrics of ``model`` on ``split`` of its own dataset and split protocol.

    With ``log_to_mlflow``, metrics (``evaluate/<split>/...``), confusion matrices and reports are
    added to the training run.
    """
    from genre.assembly.build import prepare_data
    from genre.data.index import SPLITS

    if split not in SPLITS:
        raise DatasetError(f"split={split!r}: choose one of {list(SPLITS)}")
    config = model.config.copy()
    config.paths.cache_dir = cache_dir
    if dataset_root:
        config.dataset.root = dataset_root
    data = prepare_data(config, model.module.frontend)
    if data.genres != model.module.genres:
        raise DatasetError(f"the data has genres {data.genres} but the model was trained on {model.module.genres}")
    return score(model, data, split, f"evaluate/{split}/", f"{split} split, {data.index.split_protocol}",
                 log_to_mlflow)


def map_genres(index: DatasetIndex, genres: list[str], genre_map: dict[str, str] | None) -> DatasetIndex:
    """``index`` with its tracks relabelled into the model's ``genres`` (their label order).

    ``genre_map`` maps the corpus's genre names to the model's (``{Hip-Hop: hiphop}``); a genre neither
    mapped nor among the model's is left out, and said so.
    """
    mapping = {genre: genre for genre in genres} | dict(genre_map or {})
    unknown = sorted({target for target in mapping.values() if target not in genres})
    if unknown:
        raise ConfigError(f"genre_map maps to {unknown}, which the model does not know; its genres are {genres}")
    kept = [dataclasses.replace(t, genre=mapping[t.genre]) for t in index.tracks if t.genre in mapping]
    left_out = sorted({t.genre for t in index.tracks} - set(mapping))
    if left_out:
        log.warning("%s: genres %s are not among the model's %s and not in genre_map: left out", index.name,
                    left_out, genres)
    if not kept:
        raise DatasetError(f"no track of '{index.name}' has one of the model's genres {genres}; map the corpus's "
                           f"genres {sorted({t.genre for t in index.tracks})} with genre_map='{{their: ours}}'")
    return dataclasses.replace(index, genres=list(genres), tracks=kept)


def evaluate_corpus(model: LoadedClassifier, dataset_cfg: DictConfig, split: str, cache_dir: str,
                    genre_map: dict[str, str] | None = None, cache_workers: int | None = None,
                    log_to_mlflow: bool = True) -> dict[str, float]:
    """Clip and track metrics of ``model`` on another corpus (``dataset=...``): ``split`` of that corpus's
    own protocol, or ``all`` its tracks. Logged to the training run as ``evaluate/<dataset>/<split>/...``
    with confusion matrices and reports."""
    from genre.assembly.build import build_index
    from genre.data.datamodule import prepare
    from genre.data.index import SPLITS

    if split not in (*SPLITS, "all"):
        raise ConfigError(f"split={split!r}: choose one of {[*SPLITS, 'all']}")
    index = map_genres(build_index(dataset_cfg), model.module.genres, genre_map)
    if split == "all":
        index = dataclasses.replace(index, tracks=[dataclasses.replace(t, split="test") for t in index.tracks],
                                    split_protocol=f"all-tracks({index.name})")
    scored = "test" if split == "all" else split
    data = prepare(index, model.module.frontend, model.config.clips.clip_seconds, cache_dir, cache_workers,
                   splits=(scored,))
    label = f"{index.name}, {split} ({index.split_protocol})"
    return score(model, data, scored, f"evaluate/{index.name}/{split}/", label, log_to_mlflow)


def score(model: LoadedClassifier, data: PreparedData, split: str, prefix: str, label: str,
          log_to_mlflow: bool) -> dict[str, float]:
    """Test ``model`` on every window of ``split`` of ``data``; metrics named ``<prefix><metric>``, logged
    with confusion matrices and reports to the training run when asked."""
    import mlflow
    import pytorch_lightning as pl

    from genre.assembly.build import build_datamodule
    from genre.models.module import tested

    datamodule = build_datamodule(model.config, data, test_split=split)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_model_summary=False)
    raw, results = tested(trainer, model.module, datamodule=datamodule, verbose=False)
    metrics = {key.replace("test/", prefix, 1): v for key, v in raw.items()}
    if log_to_mlflow and model.run_id and model.tracking_uri:
        record_evaluation(mlflow.MlflowClient(model.tracking_uri), model, results, metrics, prefix, label)
    return metrics


def record_evaluation(client, model: LoadedClassifier, results, metrics: dict[str, float], prefix: str,
                      label: str) -> None:
    """Add an evaluation to the training run, once: scoring the same thing again records nothing new.

    The artifacts go first, then the metrics, then a tag with the evaluation's digest that says it is
    complete. A kill before the tag leaves no mark of completion, so the next call writes every artifact
    of the evaluation again (they belong together) and adds only the metric values the run lacks."""
    import hashlib
    import json

    from genre.tracking.report import log_evaluation

    digest = hashlib.sha256(json.dumps([label, sorted(metrics.items())]).encode()).hexdigest()[:16]
    tag = f"{prefix}recorded"
    if client.get_run(model.run_id).data.tags.get(tag) == digest:
        log.info("this evaluation is already recorded in run %s (%s): nothing logged again", model.run_id, tag)
        return
    log_evaluation(client, model.run_id, results, model.module.genres, label, prefix=prefix)
    for key, value in metrics.items():
        history = client.get_metric_history(model.run_id, key)
        if not history or history[-1].value != value:      # another evaluation: the next step
            client.log_metric(model.run_id, key, value, step=len(history))
    client.set_tag(model.run_id, tag, digest)


LONG_FILE_SECONDS = 600.0   # longer files are decoded and classified a segment at a time
SEGMENT_SECONDS = 120.0
MIN_AUDIO_SECONDS = 1.0   # of real audio below which an answer would rest on padding (min_audio_seconds)


def classify_file(model: LoadedClassifier | Predictor, audio_path: str | Path, long_file_seconds: float = LONG_FILE_SECONDS,
                  segment_seconds: float = SEGMENT_SECONDS, min_seconds: float = MIN_AUDIO_SECONDS
                  ) -> list[tuple[str, float]]:
    """Genres of one audio file of any length, best first, with their scores (probabilities).

    A silent file is refused (nothing to classify); one shorter than a clip is padded with silence, and a
    warning says how much, as the logged model's ``padded_seconds`` does. A file longer than
    ``long_file_seconds`` is decoded and classified ``segment_seconds`` at a time (each segment covered by
    its own windows, all windows aggregated together), so memory does not grow with its length."""
    classifier = getattr(model, "module", model)   # a checkpoint's Predictor, or a training run's module
    duration = duration_seconds(audio_path)
    if duration is not None and duration > max(long_file_seconds, 2 * segment_seconds):
        return ranked(classifier.genres, _classify_in_segments(classifier, audio_path, segment_seconds))
    waveform, _ = decode_for_classification(classifier, audio_path, min_seconds=min_seconds)
    return ranked(classifier.genres, classifier.classify_waveform(waveform))


def ranked(genres: list[str], scores: np.ndarray) -> list[tuple[str, float]]:
    """``(genre, score)`` pairs, best first (ties in the genres' order)."""
    return sorted(zip(genres, map(float, scores), strict=True), key=lambda pair: -pair[1])


def decode_for_classification(classifier: Predictor, audio_path: str | Path, shown: str | None = None,
                              min_seconds: float = MIN_AUDIO_SECONDS) -> tuple[np.ndarray, float]:
    """A file decoded at the classifier's rate, and the seconds of silence classifying it adds: what
    ``evaluate.py audio=`` and the app (:mod:`genre.app`) both classify. A file that cannot be decoded, or a
    silent one, raises :class:`AudioDecodeError`; one shorter than a clip is padded to it, and a warning says so
    (naming the file as ``shown``, the name a person gave it, when that is not its path here)."""
    rate = classifier.frontend.sample_rate
    waveform = load_audio(audio_path, rate)
    problem = input_problem(waveform)
    if problem:
        raise AudioDecodeError(audio_path, problem)
    needed = min(min_seconds, min_samples(classifier.clip_frames, classifier.frontend.hop_length) / rate)
    if waveform.shape[0] < needed * rate:   # a 0.2-s clip padded with 9.8 s of silence read "classical 100 %"
        raise AudioDecodeError(shown or audio_path, f"lasts {waveform.shape[0] / rate:.2f} s: an answer needs at least "
                                                    f"{needed:.2f} s of audio (the min_audio_seconds setting), or it "
                                                    f"would rest on the silence it is padded with")
    padded = max(0, min_samples(classifier.clip_frames, classifier.frontend.hop_length) - waveform.shape[0])
    if padded > 0:
        log.warning("%s lasts %.2f s, less than one clip: padded with %.2f s of silence, so the answer rests on "
                    "%.2f s of audio", shown or audio_path, waveform.shape[0] / rate, padded / rate,
                    waveform.shape[0] / rate)
    return waveform, padded / rate


def _classify_in_segments(module: Predictor, audio_path: str | Path, segment_seconds: float) -> np.ndarray:
    """Scores of a long file from consecutive segments of ``segment_seconds`` (the last one takes the
    remainder, so no segment is shorter than a clip), each segment's windows classified as they come."""
    segment = int(segment_seconds * module.frontend.sample_rate)
    shortest = min_samples(module.clip_frames, module.frontend.hop_length)
    pending, probabilities, peak = np.zeros(0, dtype=np.float32), [], 0.0
    for block in stream_audio(audio_path, module.frontend.sample_rate):
        peak = max(peak, float(np.abs(block).max()))
        pending = np.concatenate([pending, block])
        while pending.shape[0] >= segment + shortest:
            probabilities.append(module.window_probabilities(pending[:segment]))
            pending = pending[segment:]
    silent = input_problem(np.array([peak], dtype=np.float32))   # the blocks were checked for the rest
    if silent:
        raise AudioDecodeError(audio_path, silent)
    probabilities.append(module.window_probabilities(pending))
    return aggregate_windows(torch.cat(probabilities), module.aggregation)


def corpus_data(model: LoadedClassifier, cache_dir: str, dataset_root: str | None = None) -> PreparedData:
    """The run's corpus as it is now (indexed again, its caches built where missing), from ``dataset_root`` if
    it moved since training."""
    from genre.assembly.build import prepare_data

    config = model.config.copy()
    config.paths.cache_dir = cache_dir
    if dataset_root:
        config.dataset.root = dataset_root
    return prepare_data(config, model.module.frontend)


def corpus_embeddings(model: LoadedClassifier, ckpt_path: str | Path, cache_dir: str,
                      dataset_root: str | None = None, data: PreparedData | None = None) -> dict[str, np.ndarray]:
    """The learned embedding of every track of the run's corpus (all splits): ``track_id``, ``genre``,
    ``split``, ``embedding`` arrays. Computed once per checkpoint and corpus, kept beside the checkpoint
    (``<checkpoint>.embeddings-<features cache key>.npz``, written whole or not at all) and reused.
    ``data``: the corpus already prepared (:func:`corpus_data`)."""
    from tqdm import tqdm

    from genre.data.cache import open_rows

    data = data or corpus_data(model, cache_dir, dataset_root)
    ckpt = Path(ckpt_path)
    path = ckpt.with_name(f"{ckpt.name}.embeddings-{data.features.key}.npz")
    if path.is_file() and path.stat().st_mtime >= ckpt.stat().st_mtime:
        try:
            with np.load(path) as saved:
                kept = dict(saved)
            if set(kept) == {"track_id", "genre", "split", "embedding", "predicted"}:
                return kept
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):   # damaged since: computed again below
            pass
        log.warning("%s is damaged: computing the corpus embeddings again", path)
    ids, genres, splits, vectors, predicted = [], [], [], [], []
    module = model.module
    with open_rows(data.features.path) as features, torch.no_grad():
        for split, rows in data.rows.items():
            for row, label, track_id in tqdm(list(zip(rows, data.labels[split], data.track_ids[split], strict=True)),
                                             desc=f"embeddings ({split})", unit="track"):
                clips = cut_windows(torch.from_numpy(features[row]), data.clip_frames)
                vectors.append(module.embed_clips(clips))     # the classifier's own layer, windows, normalisation
                scores = aggregate_windows(module.eval()(clips).softmax(-1), module.aggregation)
                predicted.append(module.genres[int(np.argmax(scores))])
                ids.append(track_id)
                genres.append(data.genres[label])
                splits.append(split)
    result = {"track_id": np.array(ids), "genre": np.array(genres), "split": np.array(splits),
              "embedding": np.stack(vectors).astype(np.float32), "predicted": np.array(predicted)}
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, **result)
    os.replace(partial, path)
    return result


def neighbour_agreement(corpus: dict[str, np.ndarray], k: int = 5, queries: str = "test") -> float:
    """Share of the ``queries`` tracks (a split, or ``all``) whose ``k`` nearest training tracks (cosine,
    learned embeddings, the track itself left out; majority genre, ties to the nearest) have the genre the
    classifier predicts for the track: how far ``similar=`` and the classifier tell the same story."""
    unit = corpus["embedding"] / np.maximum(np.linalg.norm(corpus["embedding"], axis=1, keepdims=True), 1e-12)
    train = corpus["split"] == "train"
    asked = np.ones_like(train) if queries == "all" else corpus["split"] == queries
    agree = []
    for i in np.flatnonzero(asked):
        others = train.copy()
        others[i] = False
        distance = 1.0 - unit[others] @ unit[i]
        nearest = corpus["genre"][others][np.argsort(distance, kind="stable")[:k]]
        names, counts = np.unique(nearest, return_counts=True)
        best = [g for g in nearest if g in set(names[counts == counts.max()])][0]
        agree.append(best == corpus["predicted"][i])
    return float(np.mean(agree)) if agree else float("nan")


def similar_tracks(model: LoadedClassifier, audio_path: str | Path, corpus: dict[str, np.ndarray],
                   k: int) -> list[tuple[str, str, str, float]]:
    """The ``k`` tracks of ``corpus`` nearest to a song in the learned embedding space, nearest first:
    ``(track id, genre, split, cosine distance)``."""
    song = model.module.embed_waveform(load_audio(audio_path, model.module.frontend.sample_rate))
    return nearest_tracks(corpus, song, k)


def nearest_tracks(corpus: dict[str, np.ndarray], embedding: np.ndarray, k: int) -> list[tuple[str, str, str, float]]:
    """The ``k`` tracks of ``corpus`` nearest to ``embedding`` (cosine distance), nearest first:
    ``(track id, genre, split, distance)``."""
    unit = corpus["embedding"] / np.maximum(np.linalg.norm(corpus["embedding"], axis=1, keepdims=True), 1e-12)
    distance = 1.0 - unit @ (embedding / max(float(np.linalg.norm(embedding)), 1e-12))
    nearest = np.argsort(distance, kind="stable")[:k]
    return [(str(corpus["track_id"][i]), str(corpus["genre"][i]), str(corpus["split"][i]), float(distance[i]))
            for i in nearest]


def trained_on(config, run_info: dict) -> tuple[str, str | None]:
    """What a model was trained on, in one line, and a warning when that was the built-in synthetic corpus (its
    genres are timbres made up by genre's generator: a real song gets a confident answer that means little)."""
    dataset = config.dataset.get("name") or str(config.dataset.get("_target_", "?")).split(".")[-2]
    line = f"trained on {dataset} ({run_info.get('split_protocol', 'unknown protocol')})"
    warning = None
    if str(config.dataset.get("_target_", "")).endswith("synthetic.build"):
        warning = ("this model learned the built-in synthetic corpus, made-up timbres, not real music: its genres "
                   "for a real song mean little. Train on real music for that (dataset=gtzan, fma or folder)")
    return line, warning


def _print_ranking(audio: str, ranking: list[tuple[str, float]], top_k: int, model=None) -> None:
    print(f"{audio}:")
    for genre, score in ranking[:top_k]:
        print(f"  {genre:<12} {score:6.1%}")
    if model is not None:
        line, warning = trained_on(model.config, model.run_info if isinstance(model, Predictor) else
                                   model.module.run_info)
        print(f"  ({line})")
        if warning:
            log.warning(warning)


def evaluate(cfg: DictConfig) -> dict:
    """What ``python evaluate.py`` does: load by ``ckpt_path`` or ``run_id``, then score or classify."""
    if bool(cfg.ckpt_path) == bool(cfg.run_id):
        raise ConfigError("name the model with exactly one of ckpt_path=... or run_id=...")
    if cfg.ckpt_path:
        ckpt_path = cfg.ckpt_path
    else:
        from genre.tracking.store import resolve_tracking_uri

        ckpt_path = find_checkpoint(cfg.run_id, resolve_tracking_uri(cfg.tracking_uri, cfg.paths.root_dir),
                                    cfg.paths.cache_dir)
    if cfg.audio and not cfg.get("similar"):   # the network and its front end only: no Lightning, no MLflow
        predictor = load_predictor(ckpt_path)
        ranking = classify_file(predictor, cfg.audio, min_seconds=float(cfg.min_audio_seconds))
        _print_ranking(cfg.audio, ranking, cfg.top_k, predictor)
        return {"ranking": ranking}
    from genre.assembly.build import load_classifier

    model = load_classifier(ckpt_path)
    if cfg.audio:
        ranking = classify_file(model, cfg.audio, min_seconds=float(cfg.min_audio_seconds))
        _print_ranking(cfg.audio, ranking, cfg.top_k, model)
        corpus = corpus_embeddings(model, ckpt_path, cfg.paths.cache_dir, cfg.dataset_root)
        neighbours = similar_tracks(model, cfg.audio, corpus, cfg.similar)
        agreement = neighbour_agreement(corpus, k=cfg.similar)
        print(f"for {agreement:.0%} of the run's test tracks, their {cfg.similar} nearest training tracks have the "
              f"genre the model predicts (how far the list below and the classifier agree)")
        corpus_name = model.config.dataset.get("name") or model.config.dataset._target_.split(".")[-2]  # older runs
        print(f"tracks like it ({corpus_name} corpus, cosine distance of the "
              f"learned embeddings):")
        for track_id, genre, split, distance in neighbours:
            print(f"  {distance:6.3f}  {genre:<12} {track_id}  ({split})")
        return {"ranking": ranking, "similar": neighbours, "neighbour_agreement": agreement}
    if cfg.get("dataset"):
        genre_map = OmegaConf.to_container(cfg.genre_map) if cfg.genre_map else None
        metrics = evaluate_corpus(model, cfg.dataset, cfg.split, cfg.paths.cache_dir, genre_map,
                                  cfg.clips.cache_workers, cfg.log_to_mlflow)
        print(f"{cfg.dataset.name} corpus, {cfg.split}:")
    else:
        metrics = evaluate_split(model, cfg.split, cfg.paths.cache_dir, cfg.dataset_root, cfg.log_to_mlflow)
        protocol = model.module.run_info.get("split_protocol", "unknown protocol")
        print(f"{cfg.split} split ({protocol}):")
    for key, value in sorted(metrics.items()):
        print(f"  {key:<36} {value:.4f}")
    return metrics

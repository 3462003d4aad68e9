"""Every setting checked right after composition, before any import of torch, data or MLflow.

A rule names a setting, what it must be, and checks it; :func:`check_settings` runs them all and
raises one :class:`genre.runtime.errors.ConfigError` that lists every broken setting with its allowed range,
so ``python train.py clips.batch_size=0`` fails in a second, before anything is generated, decoded or
logged. Settings that only the dataset or the feature front end can judge (a genre the data lacks, a
window longer than a clip) are checked by them, still before any work.
"""
from __future__ import annotations

from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from genre.runtime.errors import ConfigError

AGGREGATIONS = ("mean", "vote")   # clips -> track: mean of probabilities, or majority vote


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# (setting, what it must be, check); a missing setting (another dataset's key) is not checked
RULES: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
    ("seed", "an integer", _int),
    ("clips.clip_seconds", "a number of seconds > 0", lambda v: _number(v) and v > 0),
    ("clips.batch_size", "an integer >= 1", lambda v: _int(v) and v >= 1),
    ("clips.num_workers", "an integer >= 0", lambda v: _int(v) and v >= 0),
    ("clips.train_clips_per_track", "an integer >= 1", lambda v: _int(v) and v >= 1),
    ("clips.aggregation", f"one of {', '.join(AGGREGATIONS)}", lambda v: v in AGGREGATIONS),
    ("clips.resident", "auto, true or false", lambda v: v in ("auto", True, False)),
    ("clips.resident_memory_share", "a share > 0 and <= 1", lambda v: _number(v) and 0 < v <= 1),
    ("clips.resident_dtype", "float32, float16 or bfloat16", lambda v: v in ("float32", "float16", "bfloat16")),
    ("logger.system_metrics_interval", "a number of seconds > 0", lambda v: _number(v) and v > 0),
    ("similar", "an integer >= 0 (tracks like the song to list)", lambda v: _int(v) and v >= 0),
    ("clips.cache_workers", "null (one per core) or an integer >= 1", lambda v: v is None or (_int(v) and v >= 1)),
    ("label_smoothing", "a share >= 0 and < 1", lambda v: _number(v) and 0 <= v < 1),
    ("divergence.factor", "a number > 1 (times the loss of the first step)", lambda v: _number(v) and v > 1),
    ("divergence.steps", "an integer >= 1 (training steps running)", lambda v: _int(v) and v >= 1),
    ("augment.mixup_alpha", "a number >= 0 (0 = off)", lambda v: _number(v) and v >= 0),
    ("optimizer.lr", "a learning rate > 0", lambda v: _number(v) and v > 0),
    ("optimizer.weight_decay", "a number >= 0", lambda v: _number(v) and v >= 0),
    ("trainer.max_epochs", "an integer >= 1 (or -1: until early stopping)", lambda v: _int(v) and (v >= 1 or v == -1)),
    ("callbacks.early_stopping.patience", "an integer >= 0", lambda v: _int(v) and v >= 0),
    ("dataset.excerpt", "start, middle or a second >= 0 to start at",
     lambda v: v in ("start", "middle") or (_number(v) and v >= 0)),
    ("dataset.track_seconds", "a number of seconds > 0", lambda v: _number(v) and v > 0),
    ("dataset.tracks_per_genre", "an integer >= 3 (a track each for train, val and test)", lambda v: _int(v) and v >= 3),
    ("dataset.folds", "an integer >= 3 (a test, a validation and a training fold)", lambda v: _int(v) and v >= 3),
    ("dataset.fraction", "a share > 0 and <= 1", lambda v: _number(v) and 0 < v <= 1),
    ("features.sample_rate", "a positive number of Hz", lambda v: _number(v) and v > 0),
    ("features.window_ms", "a number of ms > 0", lambda v: _number(v) and v > 0),
    ("features.stride_ms", "a number of ms > 0", lambda v: _number(v) and v > 0),
    ("features.n_mels", "an integer >= 1", lambda v: _int(v) and v >= 1),
)


def _value(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
        return False, None
    return True, OmegaConf.select(cfg, key)


def _feature_shape_problems(cfg: DictConfig) -> list[str]:
    """What the front end's and the network's sizes must agree on, computed without torch: a stride as long
    as a clip (it trained, then failed in torch.export), more mel bands than FFT bins (empty filters), a
    kernel larger than the input it slides over (model.kernel_size=500 built a 390M-parameter network)."""
    features, clip = OmegaConf.select(cfg, "features"), OmegaConf.select(cfg, "clips.clip_seconds")
    if features is None or not _number(clip) or clip <= 0:
        return []
    rate, window, stride = (features.get(k) for k in ("sample_rate", "window_ms", "stride_ms"))
    if not all(_number(v) and v > 0 for v in (rate, window, stride)):
        return []                                     # the rules above name those
    problems = []
    clip_ms = clip * 1000
    if stride * 2 > clip_ms or window > clip_ms:
        problems.append(f"features.stride_ms={stride}, window_ms={window}: a {clip:g}-s clip "
                        f"(clips.clip_seconds) must hold the window and at least 2 strides; shorten them")
    n_fft = features.get("n_fft") or int(round(window * rate / 1000))
    bins = n_fft // 2 + 1
    n_mels = features.get("n_mels")
    if _int(n_mels) and features.get("kind") in ("mel", "mfcc") and n_mels > bins:
        problems.append(f"features.n_mels={n_mels} is more than the {bins} FFT bins of a {window:g}-ms window at "
                        f"{rate:g} Hz: some mel filters would be empty; use at most {bins} bands or a longer window")
    bands = {"mel": n_mels, "mfcc": features.get("n_mfcc"), "stft": bins}.get(features.get("kind"))
    kernel = OmegaConf.select(cfg, "model.kernel_size")
    if kernel is not None and _int(bands) and not (_int(kernel) and 1 <= kernel <= bands):
        problems.append(f"model.kernel_size={kernel!r}: must be an integer from 1 to the {bands} bands of the "
                        f"features (a larger kernel sees only padding, and its weights grow with its square)")
    return problems


def check_settings(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming every setting of ``cfg`` that is out of its range."""
    problems = []
    for key, allowed, check in RULES:
        present, value = _value(cfg, key)
        if present and not check(value):
            problems.append(f"{key}={value!r}: must be {allowed}")
    present, fractions = _value(cfg, "dataset.fractions")
    if present and fractions is not None:
        values = [fractions.get(split) for split in ("train", "val", "test")]
        if not all(_number(v) and v >= 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
            problems.append(f"dataset.fractions={OmegaConf.to_container(fractions)}: train, val and test must be "
                            f">= 0 and add up to 1")
    present, fold = _value(cfg, "dataset.fold")
    folds = OmegaConf.select(cfg, "dataset.folds")
    if present and _int(folds) and not (_int(fold) and 0 <= fold < folds):
        problems.append(f"dataset.fold={fold!r}: must be a fold from 0 to {folds - 1}")
    clip, track = OmegaConf.select(cfg, "clips.clip_seconds"), OmegaConf.select(cfg, "dataset.track_seconds")
    if _number(clip) and _number(track) and clip > track:
        problems.append(f"clips.clip_seconds={clip} is longer than the tracks (dataset.track_seconds={track}): "
                        f"shorten the clip")
    problems += _feature_shape_problems(cfg)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} invalid settings, nothing was done:\n  " + "\n  ".join(problems))

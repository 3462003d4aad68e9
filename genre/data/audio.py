"""Decoding audio files into mono float32 waveforms at a chosen sample rate.

This is the one place that reads audio; every dataset and ``evaluate.py audio=...`` goes through
:func:`load_audio`, so a file that decodes for training decodes the same way for inference.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Iterator

import librosa  # imported here, before any worker is forked: a lazy import would cost each worker ~1 s
import numpy as np
import soundfile as sf
import soxr

from genre.data.containers import HEAD_BYTES, check_complete, check_signature
from genre.data.waveform import waveform_problem
from genre.runtime.errors import AudioDecodeError

AUDIO_EXTENSIONS = (".wav", ".au", ".mp3", ".flac", ".ogg")


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode ``path`` into a mono float32 waveform at ``sample_rate`` Hz, shape ``(n_samples,)``.

    soundfile (libsndfile) reads WAV, AU, FLAC, OGG and MP3; librosa's audioread fallback covers
    what it cannot. Channels are averaged; resampling uses soxr's high quality (librosa's default).
    Raises :class:`AudioDecodeError` for a file that is not what its extension says, unreadable, empty,
    non-finite, or truncated (markedly shorter than its container declares).
    """
    path = Path(path)
    head = _checked_head(path)
    try:
        data, native_rate = sf.read(os.fsencode(path), dtype="float32", always_2d=True)
        _check_frames(path, head, data.shape[0], "libsndfile")
        # a matrix-vector product: 14x faster than data.mean(axis=1) on (n, 2) arrays
        waveform = data @ np.full(data.shape[1], 1.0 / data.shape[1], dtype=np.float32)
    except Exception as sf_error:  # libsndfile raises several types; fall back before giving up
        try:
            with warnings.catch_warnings():  # librosa warns that it falls back; the caller reports
                warnings.simplefilter("ignore")
                waveform, native_rate = librosa.load(str(path), sr=None, mono=True)
            _check_frames(path, head, waveform.shape[0], "the fallback decoder")
        except Exception as fallback_error:
            raise AudioDecodeError(path, f"{UNREADABLE} ({_decoder_message(sf_error)}; "
                                         f"fallback: {_fallback_message(fallback_error)})") from None
    problem = waveform_problem(waveform)
    if problem:
        raise AudioDecodeError(path, problem)
    check_complete(path, head, waveform.shape[0], native_rate)
    if native_rate != sample_rate:
        # soxr directly: librosa.resample gives the same samples but its first call in a process
        # costs ~1.5 s, paid again by every worker process of a parallel cache build
        waveform = soxr.resample(waveform, native_rate, sample_rate, quality="soxr_hq")
    return np.ascontiguousarray(waveform, dtype=np.float32)


def stream_audio(path: str | Path, sample_rate: int, block_seconds: float = 60.0) -> Iterator[np.ndarray]:
    """:func:`load_audio`'s waveform in consecutive blocks of about ``block_seconds``, so memory stays that
    of one block whatever the file's length (a 3-hour WAV decoded whole took 7.7 GB). The same checks:
    signature, finite samples within reach of full scale (per block), truncation (at the end, once the
    length is known). Formats soundfile reads only; :func:`load_audio` covers the rest."""
    path = Path(path)
    head = _checked_head(path)
    try:
        info = sf.info(os.fsencode(path))
    except Exception as error:
        raise AudioDecodeError(path, f"unreadable audio ({_decoder_message(error)})") from None
    native_rate, weights = info.samplerate, np.full(info.channels, 1.0 / info.channels, dtype=np.float32)
    resampler = soxr.ResampleStream(native_rate, sample_rate, 1, dtype="float32", quality="HQ") \
        if native_rate != sample_rate else None
    decoded = 0
    for block in sf.blocks(os.fsencode(path), blocksize=max(1, int(block_seconds * native_rate)), dtype="float32",
                           always_2d=True):
        mono = block @ weights
        problem = waveform_problem(mono)
        if problem:
            raise AudioDecodeError(path, problem)
        decoded += mono.shape[0]
        out = resampler.resample_chunk(mono) if resampler is not None else mono
        if out.size:
            yield np.ascontiguousarray(out, dtype=np.float32)
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        if tail.size:
            yield np.ascontiguousarray(tail, dtype=np.float32)
    if decoded == 0:
        try:
            _check_frames(path, head, 0, "libsndfile")
        except _NoFrames as no_frames:
            raise AudioDecodeError(path, f"{UNREADABLE} ({no_frames})") from None
        raise AudioDecodeError(path, "empty audio (0 samples)")
    check_complete(path, head, decoded, native_rate)


# Files longer than this (by their header) are read block by block for an excerpt: memory stays that of one
# block and the excerpt, whatever the file's length (a 3-hour WAV used for 6 s peaked at 4.0 GB decoded whole).
# Shorter ones decode whole, as they always did (so their samples, and every cache of them, stay the same).
STREAM_ABOVE_SECONDS = 600.0


def load_excerpt(path: str | Path, sample_rate: int, n_samples: int, excerpt: str | float = "start",
                 block_seconds: float = 60.0) -> tuple[np.ndarray, int]:
    """The ``n_samples`` excerpt of ``path`` that ``excerpt`` names (:func:`excerpt_start`; zero-padded when the
    file is shorter) at ``sample_rate``, and the number of samples the whole file holds: what a cache keeps of a
    track. The checks of :func:`load_audio` hold (signature, truncation, finite samples). A file longer than
    :data:`STREAM_ABOVE_SECONDS` is streamed (:func:`stream_audio`) and only the excerpt is kept."""
    seconds = duration_seconds(path)
    if seconds is None or seconds <= STREAM_ABOVE_SECONDS:
        waveform = load_audio(path, sample_rate)
        n = waveform.shape[0]
        return fix_length(waveform[excerpt_start(n, n_samples, excerpt, sample_rate):], n_samples), n
    start = excerpt_start(int(round(seconds * sample_rate)), n_samples, excerpt, sample_rate)
    kept, seen = _streamed_range(path, sample_rate, start, n_samples, block_seconds)
    actual = excerpt_start(seen, n_samples, excerpt, sample_rate)
    if actual != start:   # the header's length was not the decoded one: take the excerpt the length gives
        kept, seen = _streamed_range(path, sample_rate, actual, n_samples, block_seconds)
    return fix_length(kept, n_samples), seen


def _streamed_range(path, sample_rate: int, start: int, n_samples: int, block_seconds: float):
    """Samples ``[start, start + n_samples)`` of the streamed file, and how many it holds in all."""
    kept, seen = [], 0
    for block in stream_audio(path, sample_rate, block_seconds):
        lo, hi = max(start - seen, 0), min(start + n_samples - seen, block.shape[0])
        if hi > lo:
            kept.append(block[lo:hi].copy())
        seen += block.shape[0]
    return (np.concatenate(kept) if kept else np.zeros(0, dtype=np.float32)), seen


def duration_seconds(path: str | Path) -> float | None:
    """The length a file's header declares, without decoding it (None when soundfile cannot tell)."""
    try:
        return float(sf.info(os.fsencode(path)).duration)
    except Exception:
        return None


def excerpt_start(n_available: int, n_samples: int, excerpt: str | float, sample_rate: int) -> int:
    """First sample of the ``n_samples`` kept of a track of ``n_available`` samples (``dataset.excerpt``).

    ``"start"``: the beginning. ``"middle"``: centred. A number ``s``: from second ``s``; a track too
    short to hold ``s`` plus the excerpt gets its middle instead (Costa et al. 2017: ~60 s from the
    30-s mark, pieces shorter than 90 s apart). A track no longer than the excerpt starts at 0 (and is
    zero-padded at the end).
    """
    if n_available <= n_samples or excerpt == "start":
        return 0
    middle = (n_available - n_samples) // 2
    if excerpt == "middle":
        return middle
    start = int(round(float(excerpt) * sample_rate))
    return start if start + n_samples <= n_available else middle


def fix_length(waveform: np.ndarray, n_samples: int) -> np.ndarray:
    """Crop the end off, or zero-pad the end of, ``waveform`` to exactly ``n_samples``."""
    if waveform.shape[0] >= n_samples:
        return waveform[:n_samples]
    return np.pad(waveform, (0, n_samples - waveform.shape[0]))


def _checked_head(path: Path) -> bytes:
    """The first bytes of an audio file (signatures and headers), once it is known to be a non-empty file
    whose signature matches its extension (:class:`AudioDecodeError` otherwise)."""
    if not path.is_file():
        raise AudioDecodeError(path, _not_a_file(path))
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    check_signature(path, head)
    return head


def _not_a_file(path: Path) -> str:
    """Why ``path`` is not a file to decode, in the words a user can act on."""
    if "://" in str(path) or str(path).startswith(("http:", "https:")):
        return "a URL, not a file: download it first (audio= and datasets read local files)"
    if path.is_dir():
        return "a directory, not an audio file"
    if path.is_symlink():
        return "a symbolic link that leads nowhere (its target is missing, or the links loop)"
    return "file not found"


UNREADABLE = "unreadable audio: the file is damaged or not audio"

# A file holding more than this beyond its header that decodes to no samples at all is damaged, not empty:
# decoders differ in how they say so (soundfile 0.13 raises for an ID3 tag followed by garbage, some 0.14
# builds return 0 samples), and the message must not depend on which one is installed.
EMPTY_CONTAINER_BYTES = 4096


class _NoFrames(Exception):
    """A decoder returned no samples from a file that holds data: treated as the decoder failing."""


def _check_frames(path: Path, head: bytes, n_frames: int, decoder: str) -> None:
    """Raise :class:`_NoFrames` when ``decoder`` gave no samples from a file of more than
    :data:`EMPTY_CONTAINER_BYTES` (a truly empty container, a header without frames, passes on to be
    called "empty audio")."""
    if n_frames == 0:
        size = path.stat().st_size
        if size > EMPTY_CONTAINER_BYTES:
            raise _NoFrames(f"{decoder} decoded no audio from its {size} bytes")


def _fallback_message(error: Exception) -> str:
    """The fallback decoder's reason: our own words for no samples, the exception's type otherwise."""
    return str(error) if isinstance(error, _NoFrames) else type(error).__name__


def _decoder_message(error: Exception) -> str:
    """libsndfile's reason, without its claim that an existing file "does not exist (possibly a pipe?)",
    which is what it says of any file it finds no audio stream in."""
    # the file is named once, by the caller: libsndfile's "Error opening b'/the/path': " goes
    message = re.sub(r"^Error opening .*?: ", "", str(error))
    if "possibly a pipe" in message:
        return "libsndfile found no audio stream it can decode in it"
    return message

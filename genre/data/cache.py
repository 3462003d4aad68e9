"""HDF5 caches: decoded audio, and the features computed from it.

``audio-<key>.h5`` holds every readable track decoded once (mono, resampled, fixed length; row ``i``
is ``track_id[i]``, rows past the last track id are unused);
``features-<key>.h5`` holds the feature matrix of each whole track, computed once from it.
Training reads clips out of the feature cache, so no epoch decodes audio or computes a spectrogram
(docs/pitfalls.md: on a 2-core CPU the spectrogram of 64 ten-second clips costs ~1 s, per batch).

A cache's name is a digest of everything that decides its content (each file's path, size and
modification time; sample rate; length; feature settings; format version): a changed input or
setting makes a new cache. Each cache is written to a ``.partial-<pid>.h5`` file and renamed into
place only after its last row and its ``complete`` flag are written, so an interrupted build leaves
nothing that a later run would trust. A pretrained encoder's cache (hours to days of GPU time) is written
to ``.partial.h5``, which records the rows done after each block: an interrupted build resumes there.

This module is the one that knows the files' layout: the others read rows through :func:`open_rows`,
:func:`read_rows` and :func:`row_blocks` (a whole track's features, a clip of them, a block of tracks).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np
from tqdm import tqdm

from genre.data.audio import load_excerpt
from genre.data.index import SkippedFile, Track
from genre.data.waveform import SILENCE_DBFS, is_silent, loudest_level
from genre.features import FrontEnd
from genre.features.spectral import numpy_features
from genre.runtime.console import log_stage_done
from genre.runtime.errors import AudioDecodeError, DatasetError
from genre.runtime.parallel import file_lock, process_map, worker_count

log = logging.getLogger(__name__)
CACHE_VERSION = 3          # 2: silent and truncated files are skipped; 3: and samples far beyond full scale


def _digest(content: object) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _is_complete(path: Path, key: str) -> bool:
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("complete", False)) and f.attrs.get("key") == key
    except OSError:
        return False


def _open_complete(path: Path, key: str) -> CachedTracks | None:
    """The complete cache at ``path``, or None when there is none to use: missing, incomplete, or damaged (a
    file HDF5 cannot read, 64 bytes overwritten inside it gave ``KeyError: bad symbol table node signature`` on
    every later run). A damaged one is said in one line and rebuilt by the caller, over it."""
    if not _is_complete(path, key):
        return None
    try:
        cached = CachedTracks.open(path, key)
        with open_rows(path) as rows:   # the rows' header too: every later read goes through it
            if rows.shape[0] != len(cached.track_ids):
                raise ValueError(f"{rows.shape[0]} rows for {len(cached.track_ids)} tracks")
        return cached
    except Exception as error:   # h5py raises KeyError, OSError, ValueError... for a damaged file
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        log.warning("the cache %s cannot be read (%s: %s): building it again", path, type(error).__name__, reason)
        return None


def _remove_stale_partials(path: Path) -> None:
    """Delete partial files of this cache left by processes that no longer run (crashed builds)."""
    for partial in path.parent.glob(f"{path.stem}.partial-*.h5"):
        pid = partial.stem.rsplit("-", 1)[-1]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            partial.unlink(missing_ok=True)
        except PermissionError:
            pass


@contextmanager
def _atomic_h5(path: Path, key: str) -> Iterator[h5py.File]:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(path)
    partial = path.with_name(f"{path.stem}.partial-{os.getpid()}.h5")
    try:
        with _naming(partial), h5py.File(partial, "w") as f:
            f.attrs["key"] = key
            yield f
            f.attrs["complete"] = True
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def _naming(partial: Path) -> Iterator[None]:
    """An OSError that names no file (a worker's pwrite, h5py) names the cache file being written, so the user is
    told which (a full disk: genre.runtime.errors)."""
    try:
        yield
    except OSError as error:
        if error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror or str(error), str(partial)) from error


@dataclass(frozen=True)
class CachedTracks:
    """A complete cache file: ``track_ids[i]`` is row ``i``; ``skipped`` lists what could not be decoded."""

    path: Path
    key: str
    track_ids: list[str]
    skipped: list[SkippedFile]
    content_digest: str = ""   # feature cache: digest of the feature values, to tell machines' caches apart

    @classmethod
    def open(cls, path: Path, key: str) -> "CachedTracks":
        with h5py.File(path, "r") as f:
            ids = [s.decode() if isinstance(s, bytes) else s for s in f["track_id"][()]]
            skipped = [SkippedFile(**item) for item in json.loads(f.attrs.get("skipped", "[]"))]
            digest = str(f.attrs.get("content_digest", ""))
        return cls(path, key, ids, skipped, digest)


def _rows_name(path: str | Path) -> str:
    """The HDF5 dataset that holds a cache's rows: ``audio`` (waveforms) or ``features``, as its name says."""
    name = Path(path).name.split("-", 1)[0]
    if name not in ("audio", "features"):
        raise ValueError(f"{path} is not an audio or feature cache (audio-<key>.h5, features-<key>.h5)")
    return name


@contextmanager
def open_rows(path: str | Path) -> Iterator[h5py.Dataset]:
    """The rows of a cache, ``(n_tracks, n_samples)`` or ``(n_tracks, n_bands, n_frames)``, open for reading
    while the block runs: row ``i`` is the cache's ``track_ids[i]``; ``rows[i, :, a:b]`` reads a clip."""
    with h5py.File(path, "r") as f:
        yield f[_rows_name(path)]


def open_rows_here(path: str | Path) -> h5py.Dataset:
    """The rows of a cache, opened in this process for a reader that keeps them (a DataLoader worker:
    h5py handles must not cross a fork, so each process opens its own)."""
    return h5py.File(path, "r")[_rows_name(path)]


def _in_order(data: h5py.Dataset, rows: Sequence[int]) -> np.ndarray:
    unique, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
    return data[unique.tolist()][inverse]   # h5py reads increasing indices only


def read_rows(path: str | Path, rows: Sequence[int]) -> np.ndarray:
    """Rows of a cache in the order given (repeats allowed)."""
    with open_rows(path) as data:
        return _in_order(data, rows)


def row_blocks(path: str | Path, rows: Sequence[int], chunk: int = 64) -> Iterator[tuple[int, np.ndarray]]:
    """``(begin, block)``: the rows ``rows[begin:begin + chunk]`` of a cache, in order, ``chunk`` at a time,
    so that no more than a block is held in memory (the file is opened once)."""
    with open_rows(path) as data:
        yield from row_blocks_of(data, rows, chunk)


def row_blocks_of(data: h5py.Dataset, rows: Sequence[int], chunk: int = 64) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`row_blocks` of a dataset open already."""
    for begin in range(0, len(rows), chunk):
        yield begin, _in_order(data, rows[begin:begin + chunk])


def _file_identity(track: Track) -> tuple[str, int, int] | tuple[str, None, None]:
    try:
        stat = track.path.stat()
        return str(track.path.resolve()), stat.st_size, stat.st_mtime_ns
    except OSError:
        return str(track.path), None, None


def _decode(job: tuple[str, int, int, int, str, int, str | float]) -> str | None:
    """Decode one file straight into its row of the cache file (``None``), or say why it can't be used.

    The row is raw bytes at ``offset`` of the partial HDF5 file (a contiguous dataset, allocated when
    created): each process writes its own tracks, so no waveform goes through a pipe and the main
    process has no serial write to do (``python -m genre.bench``, figure 1).
    """
    path, sample_rate, n_samples, min_samples, target, offset, excerpt_at = job
    try:   # only the excerpt is kept in memory, whatever the file's length (genre.data.audio.load_excerpt)
        excerpt, available = load_excerpt(path, sample_rate, n_samples, excerpt_at)
    except AudioDecodeError as error:
        return error.reason
    if available < min_samples:
        return (f"too short: {available / sample_rate:.2f} s, less than one clip "
                f"({min_samples / sample_rate:.2f} s)")
    if is_silent(excerpt):   # carries nothing to learn from
        return (f"silent: its loudest sample over the {n_samples / sample_rate:.1f} s used is "
                f"{loudest_level(excerpt)} (below {SILENCE_DBFS:.0f} dBFS)")
    _write_at(target, offset, excerpt)
    return None


def _write_at(target: str, offset: int, row: np.ndarray) -> None:
    data = memoryview(np.ascontiguousarray(row, dtype="<f4")).cast("B")
    fd = os.open(target, os.O_WRONLY)
    try:
        while data:  # pwrite may write less than asked
            written = os.pwrite(fd, data, offset)
            data, offset = data[written:], offset + written
    finally:
        os.close(fd)


def build_audio_cache(tracks: list[Track], sample_rate: int, n_samples: int, cache_dir: str | Path,
                      num_workers: int | None = None, min_seconds: float = 0.0,
                      excerpt: str | float = "start") -> CachedTracks:
    """Decode ``tracks`` into ``cache_dir/audio-<key>.h5`` unless a complete cache is there already.

    Tracks whose audio is shorter than ``min_seconds`` (less than one clip), unreadable or empty are
    skipped with their reason; shorter ones are zero-padded, and of longer ones the ``n_samples``
    excerpt that ``excerpt`` names is kept (:func:`genre.data.audio.excerpt_start`).
    ``num_workers`` processes decode in parallel (default: one per core; 1 = in this process).
    """
    identities = [_file_identity(t) for t in tracks]
    key = _digest({"version": CACHE_VERSION, "files": identities, "sample_rate": sample_rate,
                   "n_samples": n_samples, "min_seconds": min_seconds, "excerpt": excerpt})
    path = Path(cache_dir) / f"audio-{key}.h5"
    with file_lock(path.with_suffix(".lock")):   # a parallel job building the same cache: wait for it
        cached = _open_complete(path, key)
        if cached is not None:
            return cached
        return _write_audio_cache(path, key, tracks, sample_rate, n_samples, num_workers, min_seconds, excerpt)


def _preallocated(f: h5py.File, name: str, shape: tuple[int, ...]) -> int:
    """A contiguous float32 dataset whose file space is allocated now and never filled by HDF5;
    returns the byte offset of its first element in the file."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    dataset = f.create_dataset(name, shape=shape, dtype="<f4", dcpl=dcpl)
    offset = dataset.id.get_offset()
    if offset is None and dataset.size:
        raise RuntimeError(f"HDF5 did not allocate {name} in {f.filename}")
    return offset or 0


def _write_audio_cache(path: Path, key: str, tracks: list[Track], sample_rate: int, n_samples: int,
                       num_workers: int | None, min_seconds: float, excerpt: str | float) -> CachedTracks:
    started = time.perf_counter()
    row_bytes = n_samples * 4
    skipped: list[SkippedFile] = []
    kept: list[int] = []
    with _atomic_h5(path, key) as f:
        # contiguous (a chunked row costs 4x as much to write); rows of skipped files end up unused
        offset = _preallocated(f, "audio", (len(tracks), n_samples))
        f.flush()
        jobs = [(str(t.path), sample_rate, n_samples, int(min_seconds * sample_rate), f.filename,
                 offset + i * row_bytes, excerpt) for i, t in enumerate(tracks)]
        with process_map(_decode, jobs, num_workers, chunksize=2) as results:
            for i, (track, reason) in enumerate(tqdm(zip(tracks, results, strict=True), total=len(tracks),
                                                     desc="audio cache", unit="track")):
                if reason is None:
                    kept.append(i)
                else:
                    skipped.append(SkippedFile(str(track.path), reason))
                    log.warning("skipped %s: %s", track.path, reason)
        _compact_rows(f.filename, offset, n_samples, kept)
        kept_ids = [tracks[i].track_id for i in kept]
        f.create_dataset("track_id", data=np.array(kept_ids, dtype=object), dtype=h5py.string_dtype())
        f.attrs["sample_rate"] = sample_rate
        f.attrs["skipped"] = json.dumps([s.__dict__ for s in skipped])
    if skipped:
        log.warning("%d of %d files could not be used (listed in the run's skipped_files.csv)",
                    len(skipped), len(tracks))
    log_stage_done(log, "audio cache", len(kept_ids), "decoded", started, worker_count(num_workers), path)
    return CachedTracks(path, key, kept_ids, skipped)


def _compact_rows(filename: str, offset: int, n_samples: int, kept: list[int]) -> None:
    """Move the rows of kept tracks up over the rows of skipped ones: row ``i`` is ``track_id[i]``."""
    moves = [(source, target) for target, source in enumerate(kept) if source != target]
    if moves:
        rows = np.memmap(filename, dtype="<f4", mode="r+", offset=offset, shape=(kept[-1] + 1, n_samples))
        for source, target in moves:  # upwards, in order: a source row is never overwritten before it moves
            rows[target] = rows[source]
        rows.flush()
        del rows


def _features_of_rows(job: tuple[str, int, int, dict]) -> np.ndarray:
    """Features of rows ``[start, stop)`` of an audio cache, computed in a worker process (no torch)."""
    path, start, stop, settings = job
    with h5py.File(path, "r") as f:
        waveforms = f["audio"][start:stop]
    return numpy_features(waveforms, **settings)


def build_feature_cache(audio: CachedTracks, extractor: FrontEnd, cache_dir: str | Path,
                        batch_tracks: int = 8, num_workers: int | None = None) -> CachedTracks:
    """Compute ``extractor``'s features of every track of ``audio`` into ``cache_dir/features-<key>.h5``.

    The extractor's settings are part of the key. The dataset
    ``features`` has shape ``(n_tracks, n_bands, n_frames)``, one HDF5 chunk per track. Batches of
    ``batch_tracks`` tracks are computed by ``num_workers`` processes (default one per core) with
    :func:`genre.features.spectral.numpy_features`, the extractor's output without torch.
    """
    key = _digest({"version": CACHE_VERSION, "audio": audio.key, "features": extractor.settings()})
    path = Path(cache_dir) / f"features-{key}.h5"
    with file_lock(path.with_suffix(".lock")):
        cached = _open_complete(path, key)
        if cached is not None:
            return cached
        return _write_feature_cache(path, key, audio, extractor, batch_tracks, num_workers)


def _write_feature_cache(path: Path, key: str, audio: CachedTracks, extractor: FrontEnd,
                         batch_tracks: int, num_workers: int | None) -> CachedTracks:
    if not hasattr(extractor, "numpy_settings"):   # a pretrained encoder: torch, in this process, resumable
        return _write_embedding_cache(path, key, audio, extractor, batch_tracks)
    started = time.perf_counter()
    n_tracks, n_bands, n_frames = _feature_shape(audio, extractor)
    jobs = [(str(audio.path), start, min(start + batch_tracks, n_tracks), extractor.numpy_settings())
            for start in range(0, n_tracks, batch_tracks)]
    with _atomic_h5(path, key) as f, process_map(_features_of_rows, jobs, num_workers) as results:
        features = _features_dataset(f, n_tracks, n_bands, n_frames)
        # The key says which inputs and settings made the cache; the digest says which values came out.
        # Two machines with the same key but another digest computed other features (another CPU's
        # vectorised FFT or another library version): their runs cannot agree bit for bit.
        content = hashlib.sha256()
        for (_, start, stop, _), block in tqdm(zip(jobs, results, strict=True), total=len(jobs), desc="feature cache",
                                               unit="batch"):
            features[start:stop] = block
            content.update(np.ascontiguousarray(block, dtype="<f4").tobytes())
        digest = _finish_features(f, audio, content)
    log_stage_done(log, "feature cache", n_tracks, "computed", started, worker_count(num_workers), path)
    return CachedTracks(path, key, list(audio.track_ids), list(audio.skipped), digest)


def _feature_shape(audio: CachedTracks, extractor: FrontEnd) -> tuple[int, int, int]:
    with h5py.File(audio.path, "r") as source:
        n_samples = source["audio"].shape[1]
    # rows past the kept tracks belong to skipped files
    return len(audio.track_ids), extractor.n_bands, extractor.n_frames(n_samples)


def _features_dataset(f: h5py.File, n_tracks: int, n_bands: int, n_frames: int) -> h5py.Dataset:
    return f.create_dataset("features", shape=(n_tracks, n_bands, n_frames), dtype="float32",
                            chunks=(1, n_bands, n_frames))


def _finish_features(f: h5py.File, audio: CachedTracks, content) -> str:
    f.create_dataset("track_id", data=np.array(audio.track_ids, dtype=object), dtype=h5py.string_dtype())
    f.attrs["skipped"] = json.dumps([s.__dict__ for s in audio.skipped])
    digest = f.attrs["content_digest"] = content.hexdigest()[:20]
    return digest


def _resumable(partial: Path, key: str) -> int:
    """How many rows an earlier, interrupted build of this cache wrote into ``partial`` (0: none, or a file that
    cannot be trusted, which is removed)."""
    if not partial.is_file():
        return 0
    try:
        with h5py.File(partial, "r") as f:
            if f.attrs.get("key") == key and "features" in f:
                return int(f.attrs.get("rows_done", 0))
    except OSError:   # killed while HDF5 wrote its own records: start again
        pass
    partial.unlink()
    return 0


def _write_embedding_cache(path: Path, key: str, audio: CachedTracks, extractor: FrontEnd,
                           batch_tracks: int) -> CachedTracks:
    """The features of a pretrained encoder, computed by the extractor itself on every GPU of the machine when there
    are some (:func:`genre.features.encoders.embed_blocks`), into
    ``features-<key>.partial.h5``: after each block of tracks the rows done are recorded and the file flushed, so a
    build that is stopped (a kill, a lost machine) resumes where it stopped instead of embedding everything again
    (on FMA-large with MERT-330M, GPU-days). Renamed into place only when complete, as every cache is."""
    from genre.features.encoders import devices_for_embedding, embed_blocks

    started = time.perf_counter()
    n_tracks, n_bands, n_frames = _feature_shape(audio, extractor)
    partial = path.with_name(f"{path.stem}.partial.h5")   # one builder at a time: the cache's lock is held
    done = _resumable(partial, key)
    if done:
        log.info("feature cache: resuming an interrupted build at track %d of %d (%s)", done, n_tracks, partial)
    devices = list(getattr(extractor, "devices", None) or devices_for_embedding())
    if len(devices) > 1:
        log.info("feature cache: embedding on %d devices at once (%s)", len(devices), ", ".join(map(str, devices)))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _naming(partial), h5py.File(partial, "a") as f, open_rows(audio.path) as rows:
            if not done:
                f.attrs["key"], f.attrs["rows_done"] = key, 0
                _features_dataset(f, n_tracks, n_bands, n_frames)
            features = f["features"]
            content = hashlib.sha256()   # over every row in order: an earlier attempt's rows are read back
            for _, block in row_blocks_of(features, range(done)):
                content.update(np.ascontiguousarray(block, dtype="<f4").tobytes())
            starts = range(done, n_tracks, batch_tracks)
            blocks = (rows[start:start + batch_tracks] for start in starts)
            for start, block in tqdm(zip(starts, embed_blocks(extractor, blocks, devices), strict=True),
                                     total=len(starts), desc="feature cache", unit="batch"):
                features[start:start + len(block)] = block
                content.update(np.ascontiguousarray(block, dtype="<f4").tobytes())
                f.attrs["rows_done"] = start + len(block)
                f.flush()
            digest = _finish_features(f, audio, content)
            f.attrs["complete"] = True
        os.replace(partial, path)
    finally:
        extractor.cpu()
    log_stage_done(log, "feature cache", n_tracks - done, "computed", started, 1, path)
    return CachedTracks(path, key, list(audio.track_ids), list(audio.skipped), digest)


def band_statistics(features: CachedTracks, rows: list[int], chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation over every frame of the given rows (the training split)."""
    total = total_sq = None
    count = 0
    for _, block in row_blocks(features.path, sorted(rows), chunk):
        block = block.astype(np.float64)  # (n, bands, frames)
        block_sum, block_sq = block.sum(axis=(0, 2)), (block ** 2).sum(axis=(0, 2))
        total = block_sum if total is None else total + block_sum
        total_sq = block_sq if total_sq is None else total_sq + block_sq
        count += block.shape[0] * block.shape[2]
    if not (np.isfinite(total).all() and np.isfinite(total_sq).all()):
        # the audio check keeps such tracks out (genre.data.waveform.waveform_problem); a front end that still
        # overflows must not hand every loss a NaN
        raise DatasetError(f"the features in {features.path} are not finite for some training tracks (NaN or "
                           f"infinite values): their audio overflows the front end; remove the cache file and "
                           f"check the corpus for damaged files")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-12))
    return mean.astype(np.float32), std.astype(np.float32)

import json

import numpy as np
import pytest
import soundfile as sf

from genre.datasets import synthetic
from genre.datasets.gtzan import GTZAN_GENRES, scan_gtzan
from genre.datasets.music_generator import render_track
from genre.datasets.synthetic import ensure_corpus
from genre.runtime.errors import DatasetError


def test_tracks_are_deterministic_and_distinct():
    a = render_track("blues", 1, seed=3, seconds=2.0, sample_rate=8000)
    np.testing.assert_array_equal(a, render_track("blues", 1, seed=3, seconds=2.0, sample_rate=8000))
    assert not np.allclose(a, render_track("blues", 2, seed=3, seconds=2.0, sample_rate=8000))
    assert not np.allclose(a, render_track("blues", 1, seed=4, seconds=2.0, sample_rate=8000))
    assert a.dtype == np.float32 and a.shape == (16000,) and 0 < np.abs(a).max() <= 1


def test_genres_differ_in_rhythm():
    """Classical has no drums (smooth loudness); metal's double kick makes it the most percussive."""
    def onset_strength(y):
        frames = np.abs(y[: len(y) // 256 * 256]).reshape(-1, 256).mean(1)
        return np.abs(np.diff(frames)).mean() / frames.mean()

    classical = [render_track("classical", i, 0, 6.0, 22050) for i in range(3)]
    metal = [render_track("metal", i, 0, 6.0, 22050) for i in range(3)]
    assert max(map(onset_strength, classical)) < min(map(onset_strength, metal))


def test_corpus_is_written_in_gtzan_layout(tmp_path):
    root = ensure_corpus(tmp_path / "corpus", tracks_per_genre=2, track_seconds=1.0, sample_rate=22050,
                         seed=0, num_workers=2)
    assert (root / "genres" / "metal" / "metal.00001.au").is_file()
    info = sf.info(str(root / "genres" / "jazz" / "jazz.00000.au"))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("AU", "PCM_16", 22050, 1)
    tracks = scan_gtzan(root)
    assert len(tracks) == 20 and {t.genre for t in tracks} == set(GTZAN_GENRES)
    assert json.loads((root / "corpus.json").read_text())["tracks_per_genre"] == 2


def test_existing_corpus_is_reused_and_other_settings_refused(tmp_path):
    root = ensure_corpus(tmp_path / "c", 1, 1.0, 8000, 0, ("pop", "rock"), num_workers=1)
    mtime = (root / "genres" / "pop" / "pop.00000.au").stat().st_mtime_ns
    ensure_corpus(root, 1, 1.0, 8000, 0, ("pop", "rock"), num_workers=1)
    assert (root / "genres" / "pop" / "pop.00000.au").stat().st_mtime_ns == mtime
    with pytest.raises(DatasetError, match="other settings"):
        ensure_corpus(root, 2, 1.0, 8000, 0, ("pop", "rock"), num_workers=1)


def test_interrupted_generation_leaves_no_corpus(tmp_path, monkeypatch):
    def fail(job):
        if job[1] == 1:
            raise KeyboardInterrupt
        return real(job)

    real = synthetic._write_track
    monkeypatch.setattr(synthetic, "_write_track", fail)
    with pytest.raises(KeyboardInterrupt):
        ensure_corpus(tmp_path / "c", 2, 1.0, 8000, 0, ("pop",), num_workers=1)
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".lock"] == []

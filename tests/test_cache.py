import os
import time

import h5py
import numpy as np
import pytest
import torch

from conftest import write_tone
from genre.data import cache
from genre.data.audio import load_audio
from genre.data.cache import band_statistics, build_audio_cache, build_feature_cache
from genre.data.index import Track
from genre.features.spectral import FeatureExtractor

SR = 8000


def make_tracks(folder, n=4, seconds=2.0):
    tracks = []
    for i in range(n):
        path = write_tone(folder / f"t{i}.wav", seconds, SR, frequency=200 + 100 * i)
        tracks.append(Track(f"t{i}", path, "blues"))
    return tracks


def test_cache_holds_every_track_decoded_at_fixed_length(tmp_path):
    tracks = make_tracks(tmp_path / "audio")
    built = build_audio_cache(tracks, SR, n_samples=SR * 3, cache_dir=tmp_path / "cache", num_workers=2)
    assert built.track_ids == ["t0", "t1", "t2", "t3"] and built.skipped == []
    with h5py.File(built.path, "r") as f:
        audio = f["audio"][()]
    assert audio.shape == (4, SR * 3)   # no file skipped: every row used
    np.testing.assert_allclose(audio[2, :SR * 2], load_audio(tracks[2].path, SR), atol=1e-6)
    assert not audio[:, SR * 2 + 10:].any()  # the 2-s tracks are zero-padded to 3 s


def test_parallel_and_single_process_builds_agree(tmp_path):
    tracks = make_tracks(tmp_path / "audio")
    one = build_audio_cache(tracks, SR, SR * 2, tmp_path / "a", num_workers=1)
    two = build_audio_cache(tracks, SR, SR * 2, tmp_path / "b", num_workers=2)
    with h5py.File(one.path) as f1, h5py.File(two.path) as f2:
        np.testing.assert_array_equal(f1["audio"][()], f2["audio"][()])


def test_identity_covers_files_and_settings(tmp_path):
    tracks = make_tracks(tmp_path / "audio")
    first = build_audio_cache(tracks, SR, SR * 2, tmp_path / "cache", num_workers=1)
    mtime = first.path.stat().st_mtime_ns
    again = build_audio_cache(tracks, SR, SR * 2, tmp_path / "cache", num_workers=1)
    assert again.path == first.path and again.path.stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert build_audio_cache(tracks, SR // 2, SR, tmp_path / "cache", num_workers=1).path != first.path
    assert build_audio_cache(tracks, SR, SR * 3, tmp_path / "cache", num_workers=1).path != first.path
    time.sleep(0.01)
    write_tone(tracks[0].path, 2.0, SR, frequency=999)  # the user replaces a file
    changed = build_audio_cache(tracks, SR, SR * 2, tmp_path / "cache", num_workers=1)
    assert changed.path != first.path
    with h5py.File(changed.path) as f:
        np.testing.assert_allclose(f["audio"][0], load_audio(tracks[0].path, SR), atol=1e-6)


def test_damaged_files_are_skipped_with_reasons(tmp_path):
    tracks = make_tracks(tmp_path / "audio", n=2)
    not_riff = tmp_path / "audio" / "jazz.00054.wav"
    not_riff.write_bytes(b"this is not a RIFF file" * 100)   # as in the Kaggle copy of GTZAN
    empty = tmp_path / "audio" / "empty.wav"
    write_tone(empty, 0.0, SR)
    short = write_tone(tmp_path / "audio" / "short.wav", 0.5, SR)
    truncated = tmp_path / "audio" / "truncated.flac"
    write_tone(truncated, 2.0, SR)
    truncated.write_bytes(truncated.read_bytes()[:200])
    missing = tmp_path / "audio" / "gone.wav"
    damaged = [Track(p.stem, p, "jazz") for p in (not_riff, empty, short, truncated, missing)]
    tracks = [damaged[0], tracks[0], *damaged[1:3], tracks[1], *damaged[3:]]  # good files among bad ones
    built = build_audio_cache(tracks, SR, SR * 2, tmp_path / "cache", num_workers=2, min_seconds=1.0)
    assert built.track_ids == ["t0", "t1"]
    with h5py.File(built.path, "r") as f:  # row i holds track_ids[i], whatever was skipped before it
        for row, track in enumerate((tracks[1], tracks[4])):
            np.testing.assert_allclose(f["audio"][row], load_audio(track.path, SR), atol=1e-6)
    reasons = {os.path.basename(s.path): s.reason for s in built.skipped}
    assert set(reasons) == {"jazz.00054.wav", "empty.wav", "short.wav", "truncated.flac", "gone.wav"}
    assert "too short" in reasons["short.wav"] and "0.50 s" in reasons["short.wav"]
    assert "not found" in reasons["gone.wav"]
    assert "empty" in reasons["empty.wav"]
    # a later run reads the skipped list from the cache without decoding again
    assert build_audio_cache(tracks, SR, SR * 2, tmp_path / "cache", num_workers=1, min_seconds=1.0).skipped \
        == built.skipped


def test_interrupted_build_leaves_nothing_trusted(tmp_path, monkeypatch):
    tracks = make_tracks(tmp_path / "audio")
    calls = []
    real_decode = cache._decode

    def decode_then_die(job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user presses Ctrl-C mid-build
        return real_decode(job)

    monkeypatch.setattr(cache, "_decode", decode_then_die)
    with pytest.raises(KeyboardInterrupt):
        build_audio_cache(tracks, SR, SR * 2, tmp_path / "cache", num_workers=1)
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.suffix != ".lock"] == []
    monkeypatch.setattr(cache, "_decode", real_decode)
    rebuilt = build_audio_cache(tracks, SR, SR * 2, tmp_path / "cache", num_workers=1)
    assert rebuilt.track_ids == ["t0", "t1", "t2", "t3"]


def test_a_partial_file_from_a_killed_build_is_not_trusted(tmp_path):
    tracks = make_tracks(tmp_path / "audio")
    built = build_audio_cache(tracks, SR, SR * 2, tmp_path / "cache", num_workers=1)
    # what a SIGKILLed build leaves: a half-written file under the final name has no 'complete' flag
    with h5py.File(built.path, "r+") as f:
        del f.attrs["complete"]
    stale = built.path.with_name(f"{built.path.stem}.partial-999999.h5")
    stale.write_bytes(b"half written")
    rebuilt = build_audio_cache(tracks, SR, SR * 2, tmp_path / "cache", num_workers=1)
    with h5py.File(rebuilt.path) as f:
        assert f.attrs["complete"]
    assert not stale.exists()


def test_feature_cache_and_training_statistics(tmp_path):
    tracks = make_tracks(tmp_path / "audio")
    audio = build_audio_cache(tracks, SR, SR * 2, tmp_path / "cache", num_workers=1)
    extractor = FeatureExtractor("mel", SR, 50, 20, n_mels=16)
    features = build_feature_cache(audio, extractor, tmp_path / "cache", batch_tracks=3, num_workers=2)
    with h5py.File(features.path) as f:
        stored = f["features"][()]
    with h5py.File(audio.path) as f:
        expected = extractor(torch.from_numpy(f["audio"][()])).numpy()
    # the cache's numpy path and the torch module agree: to 0.001 dB within 80 dB of the peak, and to
    # float32 FFT round-off (0.1 dB) in the near-silent floor of these pure tones
    loud = expected > expected.max() - 80
    np.testing.assert_allclose(stored[loud], expected[loud], atol=1e-3)
    np.testing.assert_allclose(stored, expected, atol=0.1)
    other = build_feature_cache(audio, FeatureExtractor("mel", SR, 50, 10, n_mels=16), tmp_path / "cache",
                                num_workers=1)
    assert other.path != features.path
    mean, std = band_statistics(features, rows=[0, 2])
    np.testing.assert_allclose(mean, stored[[0, 2]].mean(axis=(0, 2)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(std, stored[[0, 2]].std(axis=(0, 2)), rtol=1e-3, atol=1e-3)


def test_excerpt_setting_picks_which_seconds_of_a_long_track_are_cached(tmp_path):
    import soundfile as sf

    from genre.data.audio import excerpt_start

    sr = 1000
    # Costa et al.'s rule: 60 s from the 30-s mark; a piece shorter than 90 s gets its middle 60 s
    assert excerpt_start(240 * sr, 60 * sr, 30, sr) == 30 * sr
    assert excerpt_start(80 * sr, 60 * sr, 30, sr) == 10 * sr
    assert excerpt_start(50 * sr, 60 * sr, 30, sr) == 0            # shorter than the excerpt: padded
    assert excerpt_start(240 * sr, 60 * sr, "middle", sr) == 90 * sr
    assert excerpt_start(240 * sr, 60 * sr, "start", sr) == 0

    # a 12-s track whose samples count the seconds: the cached 4 s show which part was kept
    song = tmp_path / "long.wav"
    sf.write(str(song), (np.repeat(np.arange(12), sr) / 20 + 0.05).astype(np.float32), sr, subtype="FLOAT")
    first_second = {}
    for excerpt in ("start", "middle", 7.5, 10):
        cache = build_audio_cache([Track("long", song, "jazz")], sr, 4 * sr, tmp_path / "cache", num_workers=1,
                                  excerpt=excerpt)
        with h5py.File(cache.path, "r") as f:
            first_second[excerpt] = round(float(f["audio"][0, 0] - 0.05) * 20)
    assert first_second == {"start": 0, "middle": 4, 7.5: 7, 10: 4}   # from 10 s, 4 s do not fit: the middle

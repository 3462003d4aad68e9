import librosa
import numpy as np
import pytest
import torch

from genre.datasets.music_generator import render_track
from genre.features.spectral import FeatureExtractor
from genre.runtime.errors import FeatureError

SR = 22050
# Stated tolerance: float32 torch vs librosa on the same audio, in dB (measured: ~2e-4 dB).
PARITY_DB = 0.01


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return render_track("jazz", 3, seed=7, seconds=5.0, sample_rate=SR)


@pytest.mark.parametrize("window_ms, stride_ms, n_mels", [(100, 40, 128), (46.44, 23.22, 96), (25, 10, 40)])
def test_log_mel_matches_librosa(audio, window_ms, stride_ms, n_mels):
    n_fft, hop = round(window_ms * SR / 1000), round(stride_ms * SR / 1000)
    ours = FeatureExtractor("mel", SR, window_ms, stride_ms, n_mels=n_mels)(torch.from_numpy(audio)).numpy()
    power = librosa.feature.melspectrogram(y=audio, sr=SR, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
    reference = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() < PARITY_DB


@pytest.mark.parametrize("n_mfcc", [13, 20])
def test_mfcc_matches_librosa(audio, n_mfcc):
    ours = FeatureExtractor("mfcc", SR, 100, 40, n_mels=128, n_mfcc=n_mfcc)(torch.from_numpy(audio)).numpy()
    log_mel = librosa.power_to_db(
        librosa.feature.melspectrogram(y=audio, sr=SR, n_fft=2205, hop_length=882, n_mels=128), top_db=None)
    reference = librosa.feature.mfcc(S=log_mel, n_mfcc=n_mfcc)
    assert ours.shape == (n_mfcc, reference.shape[1])
    assert np.abs(ours - reference).max() < PARITY_DB


@pytest.mark.parametrize("window_ms, stride_ms, f_max", [(46.44, 23.22, None), (100, 40, 5000.0)])
def test_stft_matches_librosa_on_the_torch_and_the_numpy_path(audio, window_ms, stride_ms, f_max):
    from genre.features.spectral import numpy_features

    n_fft, hop = round(window_ms * SR / 1000), round(stride_ms * SR / 1000)
    extractor = FeatureExtractor("stft", SR, window_ms, stride_ms, f_max=f_max)
    ours = extractor(torch.from_numpy(audio)).numpy()
    power = np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop, pad_mode="constant")) ** 2
    reference = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
    kept = n_fft // 2 + 1 if f_max is None else int(f_max * n_fft / SR) + 1   # bins at or below f_max
    assert extractor.n_bands == kept and ours.shape == (kept, reference.shape[1])
    cached = numpy_features(audio[None], **extractor.numpy_settings())[0]     # what the feature cache holds
    loud = reference[:kept] > reference.max() - 80          # float32 vs float64 differ in near-silent bins
    assert np.abs(ours - reference[:kept])[loud].max() < PARITY_DB
    assert np.abs(cached - reference[:kept])[loud].max() < PARITY_DB


def test_batched_frames_match_the_frame_count_formula():
    for window_ms, stride_ms in [(100, 40), (46.44, 23.22), (93, 23)]:
        extractor = FeatureExtractor("mel", SR, window_ms, stride_ms, n_mels=32)
        for n_samples in (2205, 12345, 220500):
            out = extractor(torch.zeros(3, n_samples))
            assert out.shape == (3, 32, extractor.n_frames(n_samples))


def test_features_of_a_crop_equal_the_crop_of_the_features(audio):
    """Why features can be cached per track and clips cut from them: no per-clip normalisation."""
    extractor = FeatureExtractor("mel", SR, 100, 40)
    whole = extractor(torch.from_numpy(audio))
    start_frame, hop = 20, extractor.hop_length
    crop = extractor(torch.from_numpy(audio[start_frame * hop:start_frame * hop + 2 * SR]))
    inner = slice(2, crop.shape[-1] - 2)  # frames whose windows lie inside the crop
    assert torch.allclose(crop[:, inner], whole[:, start_frame + 2:start_frame + crop.shape[-1] - 2], atol=1e-3)


@pytest.mark.parametrize("settings, setting_named", [
    (dict(stride_ms=0), "stride_ms"),
    (dict(stride_ms=-5), "stride_ms"),
    (dict(window_ms=0), "window_ms"),
    (dict(kind="mfcc", n_mels=10, n_mfcc=13), "n_mfcc"),
    (dict(f_max=20000), "f_max"),
    (dict(kind="chroma"), "kind"),
])
def test_invalid_settings_name_the_setting(settings, setting_named):
    arguments = dict(kind="mel", sample_rate=SR, window_ms=100, stride_ms=40) | settings
    with pytest.raises(FeatureError, match=setting_named):
        FeatureExtractor(**arguments)

"""The spectral front ends: log-mel spectrogram, MFCC and the linear-frequency log spectrogram (STFT), as
``nn.Module``s built on torchaudio transforms (``features=mel|mfcc|stft``).

Both follow librosa's conventions (Slaney mel scale and filter norm, Hann window, centred frames
with zero padding, power spectrogram, ``10*log10(max(S, 1e-10))`` without a ``top_db`` floor, DCT-II
with orthonormal scaling), so a model trained here sees what ``librosa.feature.melspectrogram`` /
``librosa.feature.mfcc`` would give on the same audio (tests/test_features.py states the tolerance).

No ``top_db`` clamp: it is relative to the loudest frame of the input, so the features of a clip
would depend on the rest of the track. Without it, computing features once per track and cutting
clips out of them gives the same values as computing them per clip (away from the clip edges).
"""
from __future__ import annotations

import numpy as np
import torch
import torchaudio
from torch import nn

from genre.runtime.errors import FeatureError

AMIN = 1e-10  # power floor before the logarithm (librosa.power_to_db's amin)


def stft_bins(n_fft: int, sample_rate: int, f_max: float) -> int:
    """FFT bins from 0 Hz up to and including ``f_max`` (bin ``k`` is at ``k * sample_rate / n_fft`` Hz)."""
    return min(n_fft // 2 + 1, int(np.floor(f_max * n_fft / sample_rate)) + 1)


def ms_to_samples(milliseconds: float, sample_rate: int) -> int:
    """Convert a duration in milliseconds to a whole number of samples at ``sample_rate`` Hz."""
    return int(round(milliseconds * sample_rate / 1000.0))


class FeatureExtractor(nn.Module):
    """Waveform ``(..., n_samples)`` -> features ``(..., n_bands, n_frames)``.

    Args:
        kind: ``"mel"`` (log-mel, ``n_bands = n_mels``), ``"mfcc"`` (``n_bands = n_mfcc``) or ``"stft"``
            (log power of the FFT bins from 0 Hz up to ``f_max``, linear in frequency, as Costa et al.
            2017 used; ``n_bands`` = the bins kept).
        sample_rate: sample rate of the input, Hz.
        window_ms: analysis window length, ms (the FFT size defaults to the window length).
        stride_ms: hop between frames, ms.
        n_mels: mel bands.
        n_mfcc: cepstral coefficients kept (``kind="mfcc"`` only).
        f_min, f_max: frequency range of the mel filterbank, Hz (``f_max=None``: Nyquist).
        n_fft: FFT size in samples; ``None`` = the window length in samples, librosa's call in the
            seed project (``n_fft=2205`` at 100 ms, 22050 Hz).
    """

    def __init__(self, kind: str, sample_rate: int, window_ms: float, stride_ms: float,
                 n_mels: int = 128, n_mfcc: int = 13, f_min: float = 0.0,
                 f_max: float | None = None, n_fft: int | None = None):
        super().__init__()
        if kind not in ("mel", "mfcc", "stft"):
            raise FeatureError(f"features.kind={kind!r}: choose 'mel', 'mfcc' or 'stft'")
        if sample_rate <= 0:
            raise FeatureError(f"features.sample_rate={sample_rate}: must be a positive number of Hz")
        if window_ms <= 0:
            raise FeatureError(f"features.window_ms={window_ms}: the window must be longer than 0 ms")
        if stride_ms <= 0:
            raise FeatureError(f"features.stride_ms={stride_ms}: the stride must be longer than 0 ms")
        win_length = ms_to_samples(window_ms, sample_rate)
        hop_length = ms_to_samples(stride_ms, sample_rate)
        if win_length < 2 or hop_length < 1:
            raise FeatureError(f"features.window_ms={window_ms}/stride_ms={stride_ms} are shorter "
                               f"than a sample at {sample_rate} Hz")
        n_fft = n_fft or win_length
        if n_fft < win_length:
            raise FeatureError(f"features.n_fft={n_fft} is shorter than the {win_length}-sample window")
        nyquist = sample_rate / 2
        f_max = nyquist if f_max is None else f_max
        if not 0 <= f_min < f_max <= nyquist:
            raise FeatureError(f"features.f_min={f_min}, f_max={f_max}: need 0 <= f_min < f_max <= "
                               f"{nyquist:g} Hz (half the sample rate)")
        if n_mels < 1:
            raise FeatureError(f"features.n_mels={n_mels}: need at least one mel band")
        if kind == "mfcc" and not 1 <= n_mfcc <= n_mels:
            raise FeatureError(f"features.n_mfcc={n_mfcc} must be between 1 and n_mels={n_mels}: "
                               f"the DCT cannot return more coefficients than there are mel bands")
        self._settings = dict(kind=kind, sample_rate=sample_rate, window_ms=window_ms, stride_ms=stride_ms,
                              n_mels=n_mels, n_mfcc=n_mfcc, f_min=f_min, f_max=f_max, n_fft=n_fft)
        self.kind = kind
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.n_fft = n_fft
        self.n_bands = {"mel": n_mels, "mfcc": n_mfcc, "stft": stft_bins(n_fft, sample_rate, f_max)}[kind]
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
            f_min=f_min, f_max=f_max, n_mels=n_mels, power=2.0, center=True, pad_mode="constant",
            norm="slaney", mel_scale="slaney")
        # torchaudio places FFT bins at linspace(0, sr // 2, n_freqs), which is off for odd n_fft
        # (2205 samples at 100 ms, 22050 Hz: up to 3 dB per band); librosa's filterbank uses the
        # true bin frequencies k * sr / n_fft, so it replaces torchaudio's in the same buffer.
        import librosa

        filterbank = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min,
                                         fmax=f_max, htk=False, norm="slaney")
        self.mel.mel_scale.fb.copy_(torch.from_numpy(filterbank.T))
        if kind == "mfcc":
            # (n_mels, n_mfcc) DCT-II matrix, orthonormal: librosa.feature.mfcc's dct_type=2, norm="ortho"
            self.register_buffer("dct", torchaudio.functional.create_dct(n_mfcc, n_mels, norm="ortho"))

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` of audio (centred frames, ``n_fft // 2`` padding each side)."""
        return 1 + (n_samples + 2 * (self.n_fft // 2) - self.n_fft) // self.hop_length

    def settings(self) -> dict:
        """The settings this extractor was built with (they decide its output)."""
        return dict(self._settings)

    def numpy_settings(self) -> dict:
        """Arguments of :func:`numpy_features` that give this extractor's output without torch."""
        return {"kind": self.kind, "sample_rate": self.sample_rate, "n_fft": self.n_fft,
                "hop_length": self.hop_length, "win_length": self.mel.win_length, "n_mels": self.mel.n_mels,
                "f_min": self.mel.f_min, "f_max": self.mel.f_max, "n_bands": self.n_bands}

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.kind == "stft":
            power = self.mel.spectrogram(waveform)[..., :self.n_bands, :]
            return 10.0 * torch.log10(torch.clamp(power, min=AMIN))
        log_mel = 10.0 * torch.log10(torch.clamp(self.mel(waveform), min=AMIN))
        if self.kind == "mel":
            return log_mel
        return torch.matmul(log_mel.transpose(-1, -2), self.dct).transpose(-1, -2)


def numpy_features(waveforms: np.ndarray, kind: str, sample_rate: int, n_fft: int, hop_length: int,
                   win_length: int, n_mels: int, f_min: float, f_max: float, n_bands: int) -> np.ndarray:
    """:class:`FeatureExtractor`'s output computed with librosa's STFT and numpy, ``(n, n_bands, n_frames)``
    (``n_bands``: the MFCC coefficients or STFT bins kept).

    No torch: it runs in forked worker processes (torch's thread pool does not survive a fork), and
    on a CPU librosa's STFT is the faster one at these window sizes (``python -m genre.bench``, figure 3).
    """
    import librosa
    import scipy.fft

    filterbank = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max,
                                     htk=False, norm="slaney")
    out = []
    for waveform in waveforms:
        power = np.abs(librosa.stft(waveform, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                                    window="hann", center=True, pad_mode="constant")) ** 2
        if kind == "stft":
            out.append(10.0 * np.log10(np.maximum(power[:n_bands], AMIN)))
            continue
        log_mel = 10.0 * np.log10(np.maximum(filterbank @ power, AMIN))
        out.append(log_mel if kind == "mel" else scipy.fft.dct(log_mel, type=2, norm="ortho", axis=0)[:n_bands])
    return np.stack(out).astype(np.float32)

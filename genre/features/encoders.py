"""Pretrained music encoders as front ends (``features=mert_v1_95m|mert_v1_330m|muq|clap_music|ast``; settings
under ``encoder.``).

An encoder is a front end like the spectrograms (:class:`genre.features.FrontEnd`): a waveform at the encoder's
rate becomes a matrix ``(n_layers * width, n_windows)``. The track is cut into windows of
``encoder.window_seconds`` every ``encoder.hop_seconds`` (overlap = window - hop; the last window is
zero-padded), each window goes through the encoder on its own, and each layer's hidden states are averaged
over the window's time. So memory does not grow with the track's length (MERT issue 6: 90 GB of VRAM for a
10-minute track in one pass), a window's embedding does not depend on its neighbours (tested), and the
feature cache (:mod:`genre.data.cache`) holds every layer of every window once: a sweep over layers, heads or
seeds reads it and never runs the encoder again. ``model=probe`` (:mod:`genre.models.probe`) picks layers
and pools the windows of a clip.

The weights come from the Hugging Face cache (``hf download <id>``) or from ``encoder.path``, a folder holding
``config.json`` and the weights; nothing is downloaded during a run. Both go through one code path: the hub
cache is resolved to its snapshot folder, and that folder is loaded. A missing model stops the run before any
work with the command that downloads it (:class:`EncoderUnavailable`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from genre.models.inference import embed_windows
from genre.runtime.errors import ConfigError, EncoderUnavailable


def devices_for_embedding() -> list[torch.device]:
    """Every GPU of this machine, so that a corpus is embedded at the speed of all of them; else the CPU."""
    if torch.cuda.is_available():
        return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return [torch.device("cpu")]


def embed_blocks(extractor: nn.Module, blocks: Iterable[np.ndarray], devices: list) -> Iterator[np.ndarray]:
    """``extractor``'s output for each block of waveforms, in order, computed on all ``devices`` at once: a replica
    on each, blocks dealt out in turn to a thread per device (the kernels run without Python's lock), at most two
    blocks a device in flight, so memory stays bounded. The results do not depend on how many devices there are."""
    import copy
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    devices = [torch.device(d) for d in devices]
    replicas = [extractor] + [copy.deepcopy(extractor) for _ in devices[1:]]
    for replica, device in zip(replicas, devices, strict=True):
        replica.to(device).eval()

    def embed(i: int, block: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return replicas[i](torch.from_numpy(block).to(devices[i])).float().cpu().numpy()

    with ThreadPoolExecutor(len(devices), thread_name_prefix="embed") as pool:
        pending: deque = deque()
        for n, block in enumerate(blocks):
            pending.append(pool.submit(embed, n % len(devices), block))
            if len(pending) >= 2 * len(devices):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def trainable_layers(value) -> int | None:
    """``encoder.trainable``: ``false`` -> ``None`` (frozen, cached embeddings), ``top:N`` -> ``N`` (the top N
    transformer layers train), ``true`` -> ``-1`` (all of the encoder trains)."""
    if value is False or value is None:
        return None
    if value is True:
        return -1
    if isinstance(value, str) and value.startswith("top:") and value[4:].isdigit() and int(value[4:]) >= 1:
        return int(value[4:])
    raise ConfigError(f"encoder.trainable={value!r}: false (a probe on cached embeddings), top:N (the top N layers "
                      f"train, e.g. top:2) or true (the whole encoder trains)")


def hub_cache() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return HF_HUB_CACHE


def _folder_identity(folder: Path) -> list:
    """What decides the weights of a local folder: each file's name, size and modification time."""
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())


def resolve_weights(name: str, hub_id: str, revision: str, path: str | None) -> tuple[Path, str]:
    """The folder that holds encoder ``name``'s ``config.json`` and weights, and what identifies them (the hub
    snapshot's commit, or ``local:`` and a digest of the folder's files). Raises :class:`EncoderUnavailable`
    naming the model and the command that downloads it."""
    from genre.runtime.console import program_here

    if path:
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            raise EncoderUnavailable(f"encoder.path={path} holds no config.json: name the folder of a saved "
                                     f"{hub_id} (hf download {hub_id} --local-dir {path}), or drop encoder.path to "
                                     f"use the Hugging Face cache")
        import hashlib
        import json

        digest = hashlib.sha256(json.dumps(_folder_identity(folder)).encode()).hexdigest()[:16]
        return folder, f"local:{digest}"
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(hub_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        raise EncoderUnavailable(
            f"encoder {name}: {hub_id} (revision {revision}) is not in the Hugging Face cache ({hub_cache()}) and "
            f"encoder.path is not set; nothing was done. Download it with: {program_here('hf')} download {hub_id} "
            f"--revision {revision}   (or set encoder.path= to a folder that holds it)") from None
    return folder, folder.name   # snapshots/<commit>: the commit the revision resolved to


def load_pretrained(model_class, folder: Path, model_types: tuple[str, ...], config=None) -> nn.Module:
    """``model_class.from_pretrained(folder)``, refusing what transformers would only warn about: a folder of
    another kind of model (its config is read as this one's) or weights that lack some of the model's tensors
    (those would start at random, and every embedding with them)."""
    import json

    import transformers

    transformers.utils.logging.disable_progress_bar()   # a bar per load of a few files: the run says what it loads
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type not in model_types:
        raise EncoderUnavailable(f"{folder} holds a {model_type!r} model, not {' or '.join(model_types)}: "
                                 f"encoder.path names another model's weights")
    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()   # what it would warn of is refused below, by name
    try:
        model, info = model_class.from_pretrained(folder, config=config, output_loading_info=True)
    finally:
        transformers.utils.logging.set_verbosity(verbosity)
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise EncoderUnavailable(f"the weights in {folder} lack {len(missing)} of the model's tensors ({missing[0]}, "
                                 f"...): they are incomplete or another model's; download them again")
    return model


def _standardised(windows: torch.Tensor) -> torch.Tensor:
    """Each window at zero mean and unit variance (``Wav2Vec2FeatureExtractor(do_normalize=True)``)."""
    mean = windows.mean(-1, keepdim=True)
    var = windows.var(-1, keepdim=True, unbiased=False)
    return (windows - mean) / torch.sqrt(var + 1e-7)


class MERTWindows(nn.Module):
    """Windows ``(n, window_samples)`` at 24 kHz -> MERT's every hidden state averaged over the window's time,
    ``(n, n_layers * width)`` (layer-major). Each window is standardised first, as MERT's own feature extractor
    (``Wav2Vec2FeatureExtractor``, ``do_normalize=True``) does."""

    def __init__(self, model: nn.Module, n_layers: int):
        super().__init__()
        self.model = model
        self.n_layers = n_layers

    @classmethod
    def from_folder(cls, folder: Path, n_layers: int) -> "MERTWindows":
        """MERT v1 from a folder, into :class:`genre.features.mert.MERTModel` (never the hub's own code)."""
        from genre.features.mert import MERTConfig, MERTModel

        return cls(load_pretrained(MERTModel, folder, ("mert_model",), MERTConfig.from_pretrained(folder)), n_layers)

    def layers(self) -> nn.ModuleList:
        """The transformer layers, bottom to top (``encoder.trainable=top:N`` trains the last N)."""
        return self.model.encoder.layers

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        hidden = self.model(_standardised(windows), output_hidden_states=True, return_dict=True).hidden_states
        return _layers_side_by_side(hidden, self.n_layers, skip=0)


def checked_width(embeddings: torch.Tensor, n_layers: int, width: int, kind: str) -> torch.Tensor:
    """``embeddings`` ``(..., values)`` of windows, refused unless each has ``n_layers * width`` values (a wrong
    ``encoder.width`` would otherwise surface as a reshape deep in the cache or the probe)."""
    if embeddings.shape[-1] != n_layers * width:
        raise ConfigError(f"{kind} gives {embeddings.shape[-1]} values a window, its config says encoder.layers x "
                          f"encoder.width = {n_layers} x {width} = {n_layers * width}; correct encoder.width")
    return embeddings


def _layers_side_by_side(hidden: tuple[torch.Tensor, ...], n_layers: int, skip: int) -> torch.Tensor:
    """Every hidden state ``(n, tokens, width)`` averaged over its tokens past the first ``skip``, side by side."""
    if len(hidden) != n_layers:
        raise ConfigError(f"the encoder gives {len(hidden)} hidden states, its config says encoder.layers={n_layers}")
    return torch.cat([h[:, skip:].mean(1) for h in hidden], dim=-1)


class KaldiFbank(nn.Module):
    """Log mel filter banks of each window ``(n, samples)`` -> ``(n, frames, n_mels)``, as
    ``torchaudio.compliance.kaldi.fbank(window, sample_frequency=rate, window_type="hanning", num_mel_bins=n_mels)``
    computes them one window at a time (what AST's feature extractor calls; tested to agree), for a batch at once
    and in a form ``torch.export`` takes: 25-ms frames every 10 ms, DC offset removed, pre-emphasis 0.97, a Hann
    window, a 512-point power spectrum, Kaldi's mel banks from 20 Hz to Nyquist, natural log floored at float eps.
    The window and the banks are made once, here (buffers derived from the settings, not saved)."""

    def __init__(self, sample_rate: int, n_mels: int):
        from torchaudio.compliance.kaldi import get_mel_banks

        super().__init__()
        self.length, self.shift = int(sample_rate * 0.025), int(sample_rate * 0.010)
        self.n_fft = 1 << (self.length - 1).bit_length()
        banks, _ = get_mel_banks(n_mels, self.n_fft, float(sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0)
        self.register_buffer("banks", torch.nn.functional.pad(banks, (0, 1)).float(), persistent=False)  # (mels, bins)
        self.register_buffer("window", torch.hann_window(self.length, periodic=False), persistent=False)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        frames = windows.unfold(-1, self.length, self.shift)
        frames = frames - frames.mean(-1, keepdim=True)
        frames = frames - 0.97 * torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        power = torch.fft.rfft(frames * self.window, n=self.n_fft).abs() ** 2
        return torch.log(torch.clamp(power @ self.banks.T, min=torch.finfo(frames.dtype).eps))


class ASTWindows(nn.Module):
    """Windows ``(n, window_samples)`` at 16 kHz -> the Audio Spectrogram Transformer's every hidden state averaged
    over its patch tokens (the CLS and distillation tokens left out), ``(n, n_layers * width)``. The input is
    AST's: Kaldi filter banks (:class:`KaldiFbank`), zero-padded or cut to the model's ``max_length`` frames,
    standardised with its training statistics (``(x - mean) / (2 std)``; AudioSet's unless the folder's
    ``preprocessor_config.json`` says otherwise)."""

    def __init__(self, model: nn.Module, n_layers: int, mean: float = -4.2677393, std: float = 4.5689974,
                 sample_rate: int = 16000):
        super().__init__()
        self.model, self.n_layers = model, n_layers
        self.mean, self.std = float(mean), float(std)
        self.fbank = KaldiFbank(int(sample_rate), model.config.num_mel_bins)

    @classmethod
    def from_folder(cls, folder: Path, n_layers: int) -> "ASTWindows":
        import json

        from transformers import ASTModel

        processor = folder / "preprocessor_config.json"
        settings = json.loads(processor.read_text()) if processor.is_file() else {}
        return cls(load_pretrained(ASTModel, folder, ("audio-spectrogram-transformer",)), n_layers,
                   **{k: settings[k] for k in ("mean", "std") if k in settings},
                   sample_rate=settings.get("sampling_rate", 16000))

    def layers(self) -> nn.ModuleList:
        """The transformer layers, bottom to top (``encoder.trainable=top:N`` trains the last N)."""
        return self.model.encoder.layer

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        config = self.model.config
        fbank = self.fbank(windows)
        fbank = torch.nn.functional.pad(fbank, (0, 0, 0, max(0, config.max_length - fbank.shape[1])))
        fbank = (fbank[:, :config.max_length] - self.mean) / (2 * self.std)
        hidden = self.model(fbank, output_hidden_states=True, return_dict=True).hidden_states
        return _layers_side_by_side(hidden, self.n_layers, skip=2)


class CLAPWindows(nn.Module):
    """Windows ``(n, window_samples)`` at 48 kHz -> CLAP's audio embedding (the audio tower's pooled output through
    its projection, L2-normalised: the space CLAP shares with text), ``(n, projection_dim)``: one "layer". The
    input is CLAP's own (``ClapFeatureExtractor`` on a window of its ``max_length_s``, tested to agree): a log-mel
    spectrogram in dB (Hann window, reflect-padded centred frames), with Slaney filters, or HTK filters when the
    checkpoint's truncation is ``fusion``. A window is never longer than CLAP's length, so a fused checkpoint's
    fusion branch (for longer audio only) never runs: it is switched off, and the checkpoint computes the same
    numbers from its global branch (tested) in a form ``torch.export`` takes. A window shorter than CLAP's
    length (the track's last) is zero-padded here, where CLAP's extractor would repeat it."""

    def __init__(self, model: nn.Module, n_layers: int, fusion: bool = False, sample_rate: int = 48000,
                 n_fft: int = 1024, hop_length: int = 480, n_mels: int = 64, f_min: float = 0.0,
                 f_max: float = 14000.0):
        from transformers.audio_utils import mel_filter_bank

        super().__init__()
        if n_layers != 1:
            raise ConfigError(f"CLAP gives one embedding per window, its config says encoder.layers={n_layers}")
        self.model, self.fusion, self.n_fft, self.hop_length = model, bool(fusion), int(n_fft), int(hop_length)
        filters = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=f_min,
                                  max_frequency=f_max, sampling_rate=sample_rate, norm=None if fusion else "slaney",
                                  mel_scale="htk" if fusion else "slaney")
        self.register_buffer("filters", torch.from_numpy(filters).float())
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True))
        encoder = model.audio_model.audio_encoder
        encoder.enable_fusion = encoder.patch_embed.enable_fusion = False   # windows are never longer (above)

    @classmethod
    def from_folder(cls, folder: Path, n_layers: int) -> "CLAPWindows":
        import json

        from transformers import ClapAudioModelWithProjection

        processor = folder / "preprocessor_config.json"
        settings = json.loads(processor.read_text()) if processor.is_file() else {}
        model = load_pretrained(ClapAudioModelWithProjection, folder, ("clap", "clap_audio_model"))
        names = {"sampling_rate": "sample_rate", "fft_window_size": "n_fft", "hop_length": "hop_length",
                 "feature_size": "n_mels", "frequency_min": "f_min", "frequency_max": "f_max"}
        return cls(model, n_layers, fusion=settings.get("truncation", "fusion") == "fusion",
                   **{ours: settings[theirs] for theirs, ours in names.items() if theirs in settings})

    def log_mel(self, windows: torch.Tensor) -> torch.Tensor:
        """``(n, samples)`` -> ``(n, 1, frames, n_mels)``, CLAP's ``input_features`` (a fused checkpoint's first,
        global channel: its extractor stacks four copies for audio no longer than its length)."""
        spectrum = torch.stft(windows, self.n_fft, self.hop_length, window=self.window, center=True, pad_mode="reflect",
                              return_complex=True).abs() ** 2
        return 10.0 * torch.log10(torch.clamp(spectrum.transpose(1, 2) @ self.filters, min=1e-10))[:, None]

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        embedding = self.model(input_features=self.log_mel(windows)).audio_embeds
        return torch.nn.functional.normalize(embedding, dim=-1)


class MuQWindows(nn.Module):
    """Windows ``(n, window_samples)`` at 24 kHz -> MuQ's every hidden state averaged over the window's time,
    ``(n, n_layers * width)`` (:mod:`genre.features.muq`: MuQ's own mel spectrogram and standardisation inside)."""

    def __init__(self, model: nn.Module, n_layers: int):
        super().__init__()
        self.model, self.n_layers = model, n_layers

    @classmethod
    def from_folder(cls, folder: Path, n_layers: int) -> "MuQWindows":
        from genre.features.muq import MuQ

        return cls(MuQ.from_folder(folder), n_layers)

    def layers(self) -> nn.ModuleList:
        return self.model.layers()

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return _layers_side_by_side(self.model(windows), self.n_layers, skip=0)


EMBEDDERS = {"mert": MERTWindows, "ast": ASTWindows, "clap": CLAPWindows, "muq": MuQWindows}


class WaveformWindows(nn.Module):
    """What a trained encoder's front end gives: the windows themselves, ``(n, window_samples)``, unchanged (the
    encoder is then part of the network, :class:`genre.models.probe.Probe`, and learns)."""

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return windows.clone()


def embedder(kind: str, loader: str, hub_id: str, revision: str, path: str | None, layers: int,
             trainable=False) -> tuple[nn.Module, str]:
    """The window embedder of an encoder (:data:`EMBEDDERS`) with its weights, and what identifies them; with
    ``trainable`` (``top:N`` or ``true``) only those layers' weights will learn."""
    folder, weights = resolve_weights(kind, hub_id, revision, path)
    windows = EMBEDDERS[loader].from_folder(folder, int(layers))
    top = trainable_layers(trainable)
    windows.requires_grad_(top == -1)
    if top is not None and top > 0:
        blocks = windows.layers() if hasattr(windows, "layers") else None
        if blocks is None:
            raise ConfigError(f"encoder.trainable={trainable}: {kind} has no stack of layers to train the top of; "
                              f"use encoder.trainable=true")
        if top > len(blocks):
            raise ConfigError(f"encoder.trainable={trainable}: {kind} has {len(blocks)} transformer layers")
        for block in blocks[-top:]:
            block.requires_grad_(True)
    return windows, weights


class Encoder(nn.Module):
    """A pretrained encoder as a front end: waveform ``(..., n_samples)`` at ``sample_rate`` -> embeddings
    ``(..., layers * width, n_windows)``, one column per window of ``window_seconds`` every ``hop_seconds``.

    Args:
        kind: the encoder's name (``mert_v1_95m``): what runs are tagged with (``features``).
        loader: a key of :data:`EMBEDDERS` (``mert``, ``muq``, ``clap``, ``ast``): how the weights load and what a
            window becomes.
        hub_id, revision: where the weights come from on the Hugging Face hub.
        path: a local folder with ``config.json`` and the weights instead of the hub cache.
        sample_rate: the encoder's rate, Hz (audio is resampled to it when decoded).
        window_seconds, hop_seconds: the windows the encoder runs on.
        layers, width: hidden states given per window and their width (checked against the model).
        trainable: ``false``: frozen, the embeddings are cached once; ``top:N`` or ``true``: the encoder learns
            inside the network (``model=probe`` builds it), and this front end gives the windows of waveform.
        batch_windows: windows per forward pass (memory, not results).
        model: an encoder built already (tests: a tiny random instance); skips loading.
    """

    weights_outside_checkpoints = True   # frozen: the config names the weights (genre.models.module)

    def __init__(self, kind: str, loader: str, hub_id: str, revision: str, sample_rate: int, window_seconds: float,
                 hop_seconds: float, layers: int, width: int, path: str | None = None, trainable=False,
                 batch_windows: int = 8, license: str = "", model: nn.Module | None = None, **other):
        super().__init__()
        if other:   # a spectrogram's setting (debug=tiny sets features.n_mels) means nothing to an encoder
            raise ConfigError(f"{', '.join(f'features.{k}' for k in sorted(other))}: not a setting of the encoder "
                              f"front end features={kind}; drop it (~features.{sorted(other)[0]}) or set encoder.*")
        if loader not in EMBEDDERS:
            raise ConfigError(f"encoder.loader={loader!r}: choose one of {sorted(EMBEDDERS)}")
        learns = trainable_layers(trainable) is not None
        if not (sample_rate > 0 and 0 < hop_seconds <= window_seconds):
            raise ConfigError(f"encoder.window_seconds={window_seconds}, hop_seconds={hop_seconds}, sample_rate="
                              f"{sample_rate}: need a rate > 0 and 0 < hop <= window (overlap = window - hop)")
        if not (int(layers) >= 1 and int(width) >= 1 and int(batch_windows) >= 1):
            raise ConfigError(f"encoder.layers={layers}, width={width}, batch_windows={batch_windows}: each >= 1")
        self.kind = kind
        self.sample_rate = int(sample_rate)
        self.window_samples = int(round(window_seconds * sample_rate))
        self.hop_length = int(round(hop_seconds * sample_rate))
        self.n_layers, self.width = int(layers), int(width)
        self.n_bands = self.window_samples if learns else self.n_layers * self.width
        self.batch_windows = int(batch_windows)
        self.standardise = not learns   # waveform windows are the encoder's input as they are
        if learns:
            weights, self.windows = "in the network", WaveformWindows()
            self.weights_outside_checkpoints = False   # none here: the network holds them, and checkpoints do
        elif model is None:
            self.windows, weights = embedder(kind, loader, hub_id, revision, path, self.n_layers)
        else:
            weights = "given"
            self.windows = EMBEDDERS[loader](model, self.n_layers)
        self.windows.eval().requires_grad_(False)
        self._settings = dict(kind=kind, loader=loader, hub_id=hub_id, revision=revision,
                              weights=weights, sample_rate=self.sample_rate, window_seconds=float(window_seconds),
                              hop_seconds=float(hop_seconds), window_ms=1000.0 * window_seconds, layers=self.n_layers,
                              width=self.width, pooling="mean over each window's time")
        if learns:   # the cache holds the waveform's windows, whatever the weights: one for every trained encoder
            self._settings = dict(kind="waveform windows", sample_rate=self.sample_rate,
                                  window_seconds=float(window_seconds), hop_seconds=float(hop_seconds),
                                  window_ms=1000.0 * window_seconds)

    def train(self, mode: bool = True):
        super().train(mode)
        self.windows.eval()   # frozen: no dropout, whatever Lightning asks of the module around it
        return self

    def n_frames(self, n_samples: int) -> int:
        """Windows covering ``n_samples``: ``ceil(n / hop)`` (at least one); the last is zero-padded."""
        return max(1, math.ceil(n_samples / self.hop_length))

    def settings(self) -> dict:
        """What decides the embeddings (they key the cache): the encoder, its weights, rate, window and hop."""
        return dict(self._settings)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        lead = waveform.shape[:-1]
        flat = waveform.reshape(-1, waveform.shape[-1])
        out = torch.stack([embed_windows(w, self.windows, self.window_samples, self.hop_length, self.batch_windows)
                           for w in flat])
        if not isinstance(self.windows, WaveformWindows):
            checked_width(out.transpose(-1, -2), self.n_layers, self.width, self.kind)
        return out.reshape(*lead, self.n_bands, out.shape[-1])


def save_tiny_mert(folder: str | Path, layers: int = 2, width: int = 16, seed: int = 0) -> Path:
    """A MERT of random weights and the real class, small enough for a test, saved as the hub would hold it
    (``config.json`` and ``model.safetensors``): ``layers`` transformer layers (``layers + 1`` hidden states)."""
    from genre.features.mert import MERTConfig, MERTModel

    torch.manual_seed(seed)
    config = MERTConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * width,
                        conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                        feat_proj_layer_norm=True, mask_time_prob=0.0)
    model = MERTModel(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    return folder


def save_tiny_ast(folder: str | Path, layers: int = 2, width: int = 16, window_seconds: float = 1.0,
                  seed: int = 0) -> Path:
    """An Audio Spectrogram Transformer of random weights and the real class for ``window_seconds`` windows at
    16 kHz, saved as the hub holds it: ``layers`` transformer layers (``layers + 1`` hidden states)."""
    from transformers import ASTConfig, ASTModel

    torch.manual_seed(seed)
    frames = 1 + (int(16000 * window_seconds) - 400) // 160
    config = ASTConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * width,
                       max_length=frames, num_mel_bins=128, patch_size=16, frequency_stride=10, time_stride=10)
    folder = Path(folder)
    ASTModel(config).save_pretrained(folder)
    return folder


def save_tiny_clap(folder: str | Path, width: int = 16, fusion: bool = False, seed: int = 0) -> Path:
    """A whole CLAP (audio and text towers, as the hub's ``laion/*clap*`` repositories hold it) of random weights
    and the real classes, with a ``preprocessor_config.json`` naming its truncation; the audio embedding is
    ``width`` wide."""
    import json

    from transformers import ClapAudioConfig, ClapConfig, ClapModel, ClapTextConfig

    torch.manual_seed(seed)
    audio = ClapAudioConfig(depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=8, hidden_size=16,
                            projection_dim=width, num_hidden_layers=2, enable_fusion=fusion,
                            fusion_type="aff_2d" if fusion else None)
    text = ClapTextConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=16, projection_dim=width, max_position_embeddings=64)
    folder = Path(folder)
    ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=width)).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "ClapFeatureExtractor", "sampling_rate": 48000, "feature_size": 64,
         "hop_length": 480, "fft_window_size": 1024, "max_length_s": 10, "frequency_min": 50, "frequency_max": 14000,
         "truncation": "fusion" if fusion else "rand_trunc", "padding": "repeatpad"}))
    return folder


def save_tiny_muq(folder: str | Path, layers: int = 2, width: int = 16, seed: int = 0) -> Path:
    """A MuQ of random weights and genre's class, saved as its hub repository holds it (``config.json`` of MuQ's
    fields, ``model.safetensors`` with its pre-training heads beside the encoder): ``layers`` conformer layers."""
    import json

    from safetensors.torch import save_file

    from genre.features.muq import MuQ

    torch.manual_seed(seed)
    config = {"label_rate": 25, "num_codebooks": 1, "codebook_dim": 16, "codebook_size": 4096,
              "features": ["melspec_2048"], "hop_length": 240, "n_mels": 128, "conv_dim": 8, "encoder_dim": width,
              "encoder_depth": layers, "stat": {"melspec_2048_mean": 6.77, "melspec_2048_std": 19.0},
              "w2v2_config": {"num_attention_heads": 2, "intermediate_size": 2 * width, "conv_depthwise_kernel_size": 5,
                              "position_embeddings_type": "relative"}}
    state = {k: v.contiguous() for k, v in MuQ(config).state_dict().items()}
    state["model.linear.weight"] = torch.randn(4096, width)             # the pre-training heads, not loaded
    state["model.quantizer_melspec_2048.rand_proj"] = torch.randn(512, 16)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    save_file(state, folder / "model.safetensors")
    return folder

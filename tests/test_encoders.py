"""Pretrained encoders as front ends, their embedding cache and the probes on them: every encoder runs here as a
tiny random instance of its real class (no weights can be downloaded), saved as the hub holds it."""
from __future__ import annotations

import functools
import json
import multiprocessing
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import run_cli, served, write_tone
from genre.data.cache import build_audio_cache, build_feature_cache
from genre.data.index import Track
from genre.features import FrontEnd
from genre.features.encoders import (
    Encoder,
    EncoderUnavailable,
    KaldiFbank,
    save_tiny_ast,
    save_tiny_clap,
    save_tiny_mert,
    save_tiny_muq,
)
from genre.models.probe import Probe
from genre.runtime.errors import ConfigError

RATE = 24000
TINY = dict(kind="mert_v1_95m", loader="mert", hub_id="m-a-p/MERT-v1-95M", revision="main", sample_rate=RATE,
            window_seconds=1.0, hop_seconds=1.0, layers=3, width=16)


@pytest.fixture(scope="module")
def tiny_mert(tmp_path_factory) -> Path:
    """A MERT of the real class with 2 transformer layers (3 hidden states), 16 wide, saved as config.json and
    model.safetensors."""
    return save_tiny_mert(tmp_path_factory.mktemp("tiny-mert"))


def encoder(folder: Path, **settings) -> Encoder:
    return Encoder(**{**TINY, "path": str(folder), **settings})


TINY_AST = dict(kind="ast", loader="ast", hub_id="MIT/ast-finetuned-audioset-10-10-0.4593", revision="main",
                sample_rate=16000, window_seconds=1.0, hop_seconds=1.0, layers=3, width=16)


TINY_CLAP = dict(kind="clap_music", loader="clap", hub_id="laion/larger_clap_music", revision="main",
                 sample_rate=48000, window_seconds=10.0, hop_seconds=10.0, layers=1, width=16)


TINY_MUQ = dict(kind="muq", loader="muq", hub_id="OpenMuQ/MuQ-large-msd-iter", revision="main", sample_rate=RATE,
                window_seconds=1.0, hop_seconds=1.0, layers=3, width=16)


@pytest.fixture(scope="module", params=["mert", "ast", "clap", "muq"])
def tiny_encoder(request, tmp_path_factory) -> tuple[Path, dict]:
    """Each encoder's real class with tiny random weights, saved as the hub holds it, and its settings."""
    folder = tmp_path_factory.mktemp(f"tiny-{request.param}")
    save, settings = {"mert": (save_tiny_mert, TINY), "ast": (save_tiny_ast, TINY_AST),
                      "clap": (save_tiny_clap, TINY_CLAP), "muq": (save_tiny_muq, TINY_MUQ)}[request.param]
    return save(folder), settings


def test_an_encoder_is_a_front_end_whose_windows_are_embedded_each_on_its_own(tiny_encoder):
    folder, settings = tiny_encoder
    rate, layers, width = settings["sample_rate"], settings["layers"], settings["width"]
    window = int(settings["window_seconds"] * rate)
    enc = Encoder(**settings, path=str(folder), batch_windows=2)
    assert isinstance(enc, FrontEnd) and enc.sample_rate == rate and enc.n_bands == layers * width
    waveform = 0.1 * torch.randn(int(3.5 * window), generator=torch.Generator().manual_seed(0))
    out = enc(waveform)
    assert out.shape == (layers * width, 4) == (enc.n_bands, enc.n_frames(len(waveform)))   # the last window padded
    assert torch.isfinite(out).all()
    # each window, in a batch or not, is embedded as that window of audio would be on its own
    for k in range(3):
        alone = enc(waveform[k * window:(k + 1) * window])
        assert alone.shape == (layers * width, 1)
        torch.testing.assert_close(out[:, k], alone[:, 0], atol=1e-5, rtol=1e-4)
    tail = torch.nn.functional.pad(waveform[3 * window:], (0, window // 2))
    torch.testing.assert_close(out[:, 3], enc(tail)[:, 0], atol=1e-5, rtol=1e-4)
    # a batch of tracks: each row as it would be alone
    torch.testing.assert_close(enc(torch.stack([waveform, waveform.flip(0)]))[0], out, atol=1e-5, rtol=1e-4)
    # the layers are the hidden states, one after another: not copies of one another
    by_layer = out.reshape(layers, width, 4)
    assert all(not torch.allclose(by_layer[i], by_layer[i + 1]) for i in range(layers - 1))
    # an overlap of half a window: a window every half window
    overlapping = Encoder(**{**settings, "hop_seconds": settings["window_seconds"] / 2}, path=str(folder))
    assert overlapping(waveform).shape == (layers * width, 7)
    torch.testing.assert_close(overlapping(waveform)[:, 2], out[:, 1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fusion", [False, True])
def test_clap_embeds_a_window_as_transformers_clap_does(tmp_path, fusion):
    """CLAP's log-mel computed in torch and the audio tower loaded alone from a whole CLAP checkpoint give what
    ClapFeatureExtractor and ClapModel.get_audio_features give; a fused checkpoint too (its global branch: a
    window is never longer than CLAP's 10 s)."""
    import transformers
    from transformers import ClapFeatureExtractor, ClapModel

    folder = save_tiny_clap(tmp_path / "clap", fusion=fusion)
    windows = 0.1 * torch.randn(2, 480000, generator=torch.Generator().manual_seed(5))
    ours = Encoder(**TINY_CLAP, path=str(folder)).windows(windows)
    inputs = ClapFeatureExtractor.from_pretrained(folder)(list(windows.numpy()), sampling_rate=48000,
                                                          return_tensors="pt")
    transformers.utils.logging.set_verbosity_error()
    with torch.no_grad():
        theirs = ClapModel.from_pretrained(folder).eval().get_audio_features(
            input_features=inputs.input_features, is_longer=torch.zeros(2, 1, dtype=torch.bool)).pooler_output
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert torch.linalg.vector_norm(ours, dim=-1).allclose(torch.ones(2))


def test_ast_hears_the_filter_banks_its_own_feature_extractor_computes():
    """AST's input, computed in torch for a batch of windows (and so inside the exported model), is what
    transformers' ASTFeatureExtractor gives through torchaudio's Kaldi filter banks, window by window."""
    import torchaudio.compliance.kaldi as kaldi
    from transformers import ASTFeatureExtractor

    windows = 0.1 * torch.randn(3, 16000, generator=torch.Generator().manual_seed(2))
    ours = KaldiFbank(16000, 128)(windows)
    for window, banks in zip(windows, ours, strict=True):
        torch.testing.assert_close(banks, kaldi.fbank(window[None], sample_frequency=16000, window_type="hanning",
                                                      num_mel_bins=128), atol=1e-4, rtol=1e-5)
        extractor = ASTFeatureExtractor(max_length=98)
        theirs = extractor(window.numpy(), sampling_rate=16000, return_tensors="pt").input_values[0]
        torch.testing.assert_close((banks - extractor.mean) / (2 * extractor.std), theirs, atol=1e-4, rtol=1e-5)


def test_a_deepnorm_mert_scales_its_residuals_and_loads_what_it_saved(tmp_path):
    from genre.features.mert import DeepNormEncoderLayer, MERTConfig, MERTModel

    config = MERTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                        mask_time_prob=0.0, deepnorm=True, attention_relax=32.0)
    model = MERTModel(config).eval()
    assert all(isinstance(layer, DeepNormEncoderLayer) and layer.residual_alpha == pytest.approx(4 ** 0.25)
               for layer in model.encoder.layers)
    model.save_pretrained(tmp_path)
    loaded = MERTModel.from_pretrained(tmp_path).eval()
    x = 0.1 * torch.randn(2, RATE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).last_hidden_state, model(x).last_hidden_state)
        plain = MERTModel(MERTConfig(**{**config.to_dict(), "deepnorm": False})).eval()
        plain.load_state_dict(model.state_dict())
        assert not torch.allclose(plain(x).last_hidden_state, model(x).last_hidden_state)
    with pytest.raises(ConfigError, match="CQT"):
        MERTModel(MERTConfig(feature_extractor_cqt=True))


def test_the_layer_count_and_the_settings_are_checked_before_any_work(tiny_mert):
    with pytest.raises(ConfigError, match="gives 3 hidden states, its config says encoder.layers=13"):
        encoder(tiny_mert, layers=13)(torch.zeros(RATE))
    with pytest.raises(ConfigError, match="gives 48 values a window, its config says encoder.layers x encoder.width "
                                          "= 3 x 768 = 2304"):
        encoder(tiny_mert, width=768)(torch.zeros(RATE))
    with pytest.raises(ConfigError, match="0 < hop <= window"):
        encoder(tiny_mert, hop_seconds=2.0)
    with pytest.raises(ConfigError, match="encoder.trainable='all': false .* top:N .* or true"):
        encoder(tiny_mert, trainable="all")
    with pytest.raises(ConfigError, match=r"features.n_mels: not a setting of the encoder front end"):
        encoder(tiny_mert, n_mels=32)
    with pytest.raises(EncoderUnavailable, match="holds no config.json"):
        encoder(tiny_mert.parent / "nothing-here")


def test_the_hub_cache_and_a_local_folder_load_through_one_path(tiny_mert, tmp_path, monkeypatch):
    """The Hugging Face cache as a download leaves it (models--org--name/snapshots/<commit>, refs/main naming the
    commit): the revision resolves to the commit, which identifies the weights; the same files in a folder give
    the same embeddings."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--m-a-p--MERT-v1-95M"
    shutil.copytree(tiny_mert, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    from_hub = Encoder(**TINY)
    assert from_hub.settings()["weights"] == commit
    local = encoder(tiny_mert)
    assert local.settings()["weights"].startswith("local:")
    waveform = 0.1 * torch.randn(2 * RATE, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(from_hub(waveform), local(waveform))
    with pytest.raises(EncoderUnavailable, match="m-a-p/MERT-v1-330M .revision main. is not in the Hugging Face "
                                                 "cache .* download m-a-p/MERT-v1-330M --revision main"):
        Encoder(**{**TINY, "hub_id": "m-a-p/MERT-v1-330M"})


def test_mert_checkpoints_as_released_load_and_wrong_or_incomplete_weights_are_refused(tiny_mert, tmp_path):
    """MERT's released checkpoints name the positional convolution's weight norm ``weight_g``/``weight_v`` (torch's
    old ``weight_norm``): they load into the same numbers. Another model's folder, or weights that lack a tensor
    (transformers would start it at random and only warn), are refused by name."""
    from safetensors.torch import load_file, save_file

    waveform = 0.1 * torch.randn(RATE, generator=torch.Generator().manual_seed(4))
    expected = encoder(tiny_mert)(waveform)
    released = shutil.copytree(tiny_mert, tmp_path / "released")
    tensors = load_file(released / "model.safetensors")
    renamed = {k.replace("parametrizations.weight.original0", "weight_g")
                .replace("parametrizations.weight.original1", "weight_v"): v for k, v in tensors.items()}
    assert set(renamed) != set(tensors)
    save_file(renamed, released / "model.safetensors", metadata={"format": "pt"})
    torch.testing.assert_close(encoder(released)(waveform), expected)
    with pytest.raises(EncoderUnavailable, match="holds a 'mert_model' model, not audio-spectrogram-transformer"):
        Encoder(**TINY_AST, path=str(tiny_mert))
    del tensors[sorted(tensors)[3]]
    save_file(tensors, released / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(EncoderUnavailable, match="lack 1 of the model's tensors"):
        encoder(released)


def test_muq_loads_its_released_layout_computes_its_own_input_and_refuses_a_partial_checkpoint(tmp_path):
    """MuQ's hub layout (config.json of MuQ's fields; its pre-training heads beside the encoder in
    model.safetensors) loads into genre's MuQ; its input is MuQ's log-mel in dB at 25 frames a second after the
    convolutions, standardised with the checkpoint's statistics; hidden states as transformers 4 gave them (the
    last layer-normed)."""
    import torchaudio
    from safetensors.torch import load_file, save_file

    from genre.features.muq import MuQ

    folder = save_tiny_muq(tmp_path / "muq")
    model = MuQ.from_folder(folder).eval()
    waveform = 0.1 * torch.randn(2, 2 * RATE, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        states = model(waveform)
        assert len(states) == 3 and states[0].shape == (2, 50, 16)          # 2 s at 25 frames a second
        mel = torchaudio.transforms.AmplitudeToDB()(torchaudio.transforms.MelSpectrogram(
            24000, n_fft=2048, hop_length=240, n_mels=128)(waveform))[..., :-1]
        conformer = model.model.conformer
        first = model.model.conv((mel - 6.77) / 19.0)
        torch.testing.assert_close(states[0], first)
        positions = conformer.embed_positions(first)
        top = conformer.layers[1](conformer.layers[0](first, relative_position_embeddings=positions),
                                  relative_position_embeddings=positions)
        torch.testing.assert_close(states[-1], conformer.layer_norm(top))
    tensors = load_file(folder / "model.safetensors")
    del tensors[sorted(k for k in tensors if k.startswith("model.conformer."))[0]]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(EncoderUnavailable, match="lack 1 of MuQ's tensors"):
        MuQ.from_folder(folder)
    with pytest.raises(EncoderUnavailable, match="holds no MuQ"):
        MuQ.from_folder(save_tiny_ast(tmp_path / "ast"))


def test_a_missing_model_stops_the_run_at_once_with_the_command_that_downloads_it(tmp_path):
    out = run_cli("train.py", "features=mert_v1_95m", "model=probe", f"paths.root_dir={tmp_path}",
                  env={"HF_HUB_CACHE": str(tmp_path / "empty-hub"), "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    [line] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert "m-a-p/MERT-v1-95M (revision main) is not in the Hugging Face cache" in line
    assert "hf download m-a-p/MERT-v1-95M --revision main" in line
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "cache").exists()   # no run, no work


THREADS: set[int] = set()   # the threads that ran a CountingEncoder (its replicas share this)


class CountingEncoder(torch.nn.Module):
    """A tiny MERT that counts the windows it embeds (and can be told to fail after some)."""

    def __init__(self, model, fail_after: int | None = None):
        super().__init__()
        self.model, self.seen, self.fail_after = model, 0, fail_after
        self.config = model.config

    def forward(self, windows, **kwargs):
        import threading

        THREADS.add(threading.get_ident())
        self.seen += windows.shape[0]
        if self.fail_after is not None and self.seen > self.fail_after:
            raise KeyboardInterrupt
        return self.model(windows, **kwargs)


def tracks(folder: Path, n: int = 4) -> list[Track]:
    return [Track(f"t{i}", write_tone(folder / f"t{i}.wav", 2.0, 22050, frequency=200.0 + 150 * i), "blues")
            for i in range(n)]


def counting(tiny_mert, fail_after=None, **settings) -> Encoder:
    from genre.features.encoders import MERTWindows

    return Encoder(**{**TINY, **settings}, model=CountingEncoder(MERTWindows.from_folder(tiny_mert, 3).model, fail_after))


def test_embeddings_are_computed_once_and_keyed_by_everything_that_decides_them(tiny_mert, tmp_path):
    audio = build_audio_cache(tracks(tmp_path / "audio"), RATE, 2 * RATE, tmp_path / "cache", num_workers=1)
    with h5py.File(audio.path) as f:
        assert f.attrs["sample_rate"] == RATE and f["audio"].shape == (4, 2 * RATE)   # resampled from 22050 Hz
    first = counting(tiny_mert)
    built = build_feature_cache(audio, first, tmp_path / "cache")
    assert first.windows.model.seen == 4 * 2
    with h5py.File(audio.path) as f:
        second_track = torch.from_numpy(f["audio"][1])
    with h5py.File(built.path) as f:
        assert f["features"].shape == (4, 48, 2)
        np.testing.assert_allclose(f["features"][1], encoder(tiny_mert)(second_track).numpy(), atol=1e-5, rtol=1e-4)
    # a sweep over layers, heads or seeds reads the same cache: the encoder runs zero times
    again = counting(tiny_mert)
    assert build_feature_cache(audio, again, tmp_path / "cache").path == built.path and again.windows.model.seen == 0
    # anything that decides the embeddings makes another cache
    keys = {built.path.name}
    for changed in (dict(revision="v2"), dict(window_seconds=2.0, hop_seconds=2.0), dict(hop_seconds=0.5),
                    dict(hub_id="m-a-p/MERT-v1-330M")):
        keys.add(build_feature_cache(audio, counting(tiny_mert, **changed), tmp_path / "cache").path.name)
    other_excerpt = build_audio_cache(tracks(tmp_path / "audio"), RATE, 2 * RATE, tmp_path / "cache", num_workers=1,
                                      excerpt="middle")
    keys.add(build_feature_cache(other_excerpt, counting(tiny_mert), tmp_path / "cache").path.name)
    assert len(keys) == 6


def test_an_embedding_build_killed_halfway_resumes_where_it_stopped_and_gives_what_one_build_gives(tiny_mert, tmp_path):
    audio = build_audio_cache(tracks(tmp_path / "audio", n=20), RATE, 2 * RATE, tmp_path / "cache", num_workers=1)
    with pytest.raises(KeyboardInterrupt):   # killed in the third block of 8 tracks (2 windows each)
        build_feature_cache(audio, counting(tiny_mert, fail_after=36), tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").glob("features-*.h5") if ".partial" not in p.name]   # nothing trusted
    resumed = counting(tiny_mert)
    rebuilt = build_feature_cache(audio, resumed, tmp_path / "cache")
    assert resumed.windows.model.seen == (20 - 16) * 2                # the two blocks done were not embedded again
    once = build_feature_cache(audio, counting(tiny_mert), tmp_path / "other-cache")
    assert rebuilt.content_digest == once.content_digest and rebuilt.path.name == once.path.name
    with h5py.File(rebuilt.path) as f, h5py.File(once.path) as g:
        assert f.attrs["complete"] and f["features"].shape == (20, 48, 2)
        np.testing.assert_array_equal(f["features"][()], g["features"][()])
    assert list((tmp_path / "cache").glob("*.partial*")) == []
    # a partial file HDF5 cannot read (killed while HDF5 wrote its own records) is not trusted: built again
    (tmp_path / "cache" / f"{once.path.stem}.partial.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    rebuilt.path.unlink()
    again = counting(tiny_mert)
    assert build_feature_cache(audio, again, tmp_path / "cache").content_digest == once.content_digest
    assert again.windows.model.seen == 20 * 2


def test_a_corpus_is_embedded_on_every_device_at_once_into_the_same_cache(tiny_mert, tmp_path):
    """On a machine with several GPUs each gets a replica and blocks in turn (here two CPU replicas stand for
    them): the cache is the one a single device builds, bit for bit."""
    audio = build_audio_cache(tracks(tmp_path / "audio", n=40), RATE, 2 * RATE, tmp_path / "cache", num_workers=1)
    single = build_feature_cache(audio, counting(tiny_mert), tmp_path / "one")
    two = counting(tiny_mert)
    two.devices = ["cpu", "cpu"]
    THREADS.clear()
    shared = build_feature_cache(audio, two, tmp_path / "two")
    assert len(THREADS) == 2                                   # both replicas embedded blocks
    assert shared.content_digest == single.content_digest and shared.path.name == single.path.name


def _build_in_a_process(args):
    folder, audio_path, key, cache_dir = args
    from genre.data.cache import CachedTracks

    built = build_feature_cache(CachedTracks.open(Path(audio_path), key), encoder(Path(folder)), cache_dir)
    return str(built.path), built.content_digest


def test_two_runs_embedding_the_same_corpus_at_once_make_one_complete_cache(tiny_mert, tmp_path):
    audio = build_audio_cache(tracks(tmp_path / "audio", n=8), RATE, 2 * RATE, tmp_path / "cache", num_workers=1)
    job = (str(tiny_mert), str(audio.path), audio.key, str(tmp_path / "cache"))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_build_in_a_process, [job, job])
    assert results[0] == results[1]
    assert [p.name for p in (tmp_path / "cache").glob("features-*.h5")] == [Path(results[0][0]).name]   # no partial


def test_a_probe_picks_layers_pools_the_clip_and_refuses_a_spectrogram():
    clips = torch.randn(5, 1, 3 * 4, 6)
    by_layer = clips.reshape(5, 3, 4, 6).mean(-1)
    one = Probe((12, 6), 10, n_layers=3, layer=1, head="linear")
    torch.testing.assert_close(one.pooled(clips), by_layer[:, 1])
    assert one(clips).shape == (5, 10)
    several = Probe((12, 6), 10, n_layers=3, layer=[0, -1], head="mlp", hidden=8)
    torch.testing.assert_close(several.pooled(clips), torch.cat([by_layer[:, 0], by_layer[:, 2]], 1))
    assert several.embed(clips).shape == (5, 8)
    weighted = Probe((12, 6), 10, n_layers=3, layer="weighted")
    torch.testing.assert_close(weighted.pooled(clips), by_layer.mean(1))   # equal weights before training
    assert weighted.layer_mix().sum().item() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="features=mert_v1_95m"):
        Probe((128, 75), 10, n_layers=None)
    with pytest.raises(ConfigError, match="model.layer=5"):
        Probe((12, 6), 10, n_layers=3, layer=5)


def probe_settings(tiny_mert: Path, model: str = "probe") -> list[str]:
    from conftest import tiny_overrides

    return [*tiny_overrides("features.n_mels", "model.channels", "model.hidden", **{"trainer.max_epochs": 8}),
            "features=mert_v1_95m", f"model={model}", f"encoder.path={tiny_mert}", "encoder.layers=3",
            "encoder.width=16", "encoder.window_seconds=1", "encoder.hop_seconds=1",
            *(["model.hidden=32", "optimizer.lr=0.01"] if model == "probe" else [])]


STANDALONE = """
import json, sys
sys.modules["genre"] = None                      # any import of genre now fails
import mlflow, soundfile
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(f"runs:/{sys.argv[2]}/model")
waveform, rate = soundfile.read(sys.argv[3], dtype="float32")
assert rate == model.metadata.metadata["sample_rate"]
out = model.predict({"waveform": waveform})
print(json.dumps(out.to_dict(orient="records")))
"""


@pytest.mark.slow
def test_a_probe_run_finishes_with_a_cnn_runs_artifacts_and_a_model_that_takes_audio(tiny_mert, tmp_path):
    import subprocess
    import sys

    import mlflow

    from genre.assembly.build import load_classifier
    from genre.evaluate import classify_file

    out = run_cli("train.py", f"paths.root_dir={tmp_path}", *probe_settings(tiny_mert))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "eval mode" not in out.stderr
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    [run] = client.search_runs(["1"])
    assert run.info.status == "FINISHED" and run.data.tags["features"] == "mert_v1_95m"
    assert run.data.params["encoder/hub_id"] == "m-a-p/MERT-v1-95M"
    assert run.data.metrics["train/acc"] > 0.25 + 0.1            # 4 genres: chance is 0.25
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    for name in ("config.yaml", "confusion_matrix_track.png", "confusion_matrix_track.csv", "confusion_matrix_clip.png",
                 "classification_report_track.txt", "per_genre_track.json", "tsne_embeddings.png",
                 "pca_embeddings.png", "pca_features.png", "tsne_features.png", "checkpoints"):
        assert name in artifacts, name
    # checkpoints hold the probe, not the frozen encoder (the run's config names its weights)
    best = run.data.tags["best_checkpoint"]
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    assert state and not any(k.startswith("frontend.") for k in state)
    song = write_tone(tmp_path / "song.wav", 7.3, sample_rate=RATE, frequency=330.0)
    ranking = dict(classify_file(load_classifier(best), song))
    standalone = subprocess.run([sys.executable, "-c", STANDALONE, f"sqlite:///{tmp_path}/mlflow.db", run.info.run_id,
                                 str(song)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=300,
                                env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert standalone.returncode == 0, standalone.stderr[-3000:]
    [row] = json.loads(standalone.stdout.strip().splitlines()[-1])
    for genre, score in ranking.items():   # the logged model, its encoder inside, says what evaluate.py says
        assert row[genre] == pytest.approx(score, abs=1e-5), genre
    with served(tmp_path, run.info.run_id, tmp_path) as ask:   # and so does it served
        import soundfile as sf

        [answer] = ask([{"waveform": sf.read(str(song), dtype="float32")[0].tolist()}])
    for genre, score in ranking.items():
        assert answer[genre] == pytest.approx(score, abs=1e-5), genre

    # evaluate.py: another corpus, the tracks like a song
    other = run_cli("evaluate.py", f"run_id={run.info.run_id}", f"paths.root_dir={tmp_path}", "dataset=synthetic",
                    "dataset.timbres=b", "split=test")
    assert other.returncode == 0, other.stderr[-3000:]
    assert "evaluate/synthetic/test/track_acc" in client.get_run(run.info.run_id).data.metrics
    like = run_cli("evaluate.py", f"run_id={run.info.run_id}", f"paths.root_dir={tmp_path}", f"audio={song}", "similar=2")
    assert like.returncode == 0, like.stderr[-3000:]
    assert len(re.findall(r"^\s+[\d.]+\s+\w+\s+\w+\.\d+\s+\((train|val|test)\)$", like.stdout + like.stderr,
                          re.MULTILINE)) == 2
    # the app on the probe: evaluate.py's genres, the encoder's embeddings as its picture, tracks like the song
    from fastapi.testclient import TestClient

    from genre.app.server import create_app
    from genre.app.service import AppModel

    service = AppModel(best, 2, str(tmp_path / "cache"), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    page = TestClient(create_app(service), base_url="http://127.0.0.1").post("/api/classify", files={"file": ("song.wav", song.read_bytes())})
    assert page.status_code == 200, page.text
    page = page.json()
    assert {r["genre"]: r["probability"] for r in page["ranking"]} == pytest.approx(ranking, abs=1e-6)
    assert page["features"]["kind"] == "mert" and "MERT embeddings" in page["features"]["label"] and page["features"]["bands"] == service.module.frontend.n_bands
    assert len(page["similar"]) == 2 and all(row["available"] for row in page["similar"])

    # a scikit-learn baseline on the same embeddings: read from the cache, the encoder never runs again
    baseline = run_cli("train.py", f"paths.root_dir={tmp_path}", *probe_settings(tiny_mert, model="svm"))
    assert baseline.returncode == 0, baseline.stderr[-3000:]
    assert re.search(r"feature cache: \d+ tracks computed", out.stdout + out.stderr)
    assert not re.search(r"feature cache: \d+ tracks computed", baseline.stdout + baseline.stderr)   # it was there
    assert {r.data.tags["model"] for r in client.search_runs(["1"])} == {"probe", "svm"}


def test_a_trained_encoder_learns_only_the_layers_it_is_told_and_starts_where_the_frozen_probe_is(tiny_mert):
    """encoder.trainable=top:N: the waveform's windows go through the encoder inside the probe, whose top N
    transformer layers and head learn (the encoder at a tenth of the head's rate); before any step it computes what
    the frozen probe computes from the cached embeddings."""
    from genre.features.encoders import trainable_layers

    assert [trainable_layers(v) for v in (False, "top:2", True)] == [None, 2, -1]
    with pytest.raises(ConfigError, match="top:N"):
        trainable_layers("top:zero")
    settings = dict(name="mert_v1_95m", loader="mert", hub_id=TINY["hub_id"], revision="main", path=str(tiny_mert),
                    width=16)
    frozen_front, trained_front = encoder(tiny_mert), encoder(tiny_mert, trainable="top:1")
    assert trained_front.n_bands == RATE and trained_front.settings()["kind"] == "waveform windows"
    waveform = 0.1 * torch.randn(3 * RATE, generator=torch.Generator().manual_seed(6))
    frozen = Probe((48, 3), 4, n_layers=3, layer="weighted", head="mlp", hidden=8, dropout=0.0).eval()
    trained = Probe((RATE, 3), 4, n_layers=3, layer="weighted", head="mlp", hidden=8, dropout=0.0,
                    encoder={**settings, "trainable": "top:1"}).eval()
    trained.load_state_dict({**trained.state_dict(), **frozen.state_dict()})
    torch.testing.assert_close(trained(trained_front(waveform)[None, None]), frozen(frozen_front(waveform)[None, None]),
                               atol=1e-5, rtol=1e-4)
    learning = {name for name, p in trained.named_parameters() if p.requires_grad}
    assert learning and all(not n.startswith("encoder.") or n.startswith("encoder.model.encoder.layers.1.")
                            for n in learning)
    assert any(n.startswith("encoder.model.encoder.layers.1.") for n in learning)
    from genre.models.module import GenreClassifier

    module = GenreClassifier(trained, trained_front, ["a", "b", "c", "d"], 3,
                             optimizer=functools.partial(torch.optim.Adam, lr=1e-3))
    groups = module.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for n, p in trained.named_parameters()
                                                    if n.startswith("encoder.") and p.requires_grad}
    with pytest.raises(ConfigError, match="has 2 transformer layers"):
        Probe((RATE, 3), 4, n_layers=3, encoder={**settings, "trainable": "top:5"})
    wide = Probe((RATE, 3), 4, n_layers=3, encoder={**settings, "width": 768, "trainable": "top:1"})
    with pytest.raises(ConfigError, match="mert_v1_95m gives 48 values a window"):
        wide(trained_front(waveform)[None, None])


@pytest.mark.slow
def test_fine_tuning_an_encoder_under_ddp_leaves_it_trained_in_the_checkpoints_and_the_logged_model(tiny_mert, tmp_path):
    import subprocess
    import sys

    import mlflow

    from genre.assembly.build import load_classifier
    from genre.evaluate import classify_file

    out = run_cli("train.py", f"paths.root_dir={tmp_path}", *probe_settings(tiny_mert), "encoder.trainable=top:1",
                  "trainer=ddp_sim", "trainer.max_epochs=2")
    assert out.returncode == 0, out.stderr[-3000:]
    [run] = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_runs(["1"])
    assert run.info.status == "FINISHED" and run.data.params["encoder/trainable"] == "top:1"
    best = run.data.tags["best_checkpoint"]
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    from genre.features.encoders import MERTWindows

    pretrained = MERTWindows.from_folder(tiny_mert, 3).model.state_dict()
    top, bottom = "encoder.layers.1.feed_forward.output_dense.weight", "encoder.layers.0.feed_forward.output_dense.weight"
    assert not torch.equal(state[f"net.encoder.model.{top}"], pretrained[top])        # the top layer learned
    assert torch.equal(state[f"net.encoder.model.{bottom}"], pretrained[bottom])      # the one below did not
    song = write_tone(tmp_path / "song.wav", 4.0, sample_rate=RATE, frequency=330.0)
    ranking = dict(classify_file(load_classifier(best), song))
    standalone = subprocess.run([sys.executable, "-c", STANDALONE, f"sqlite:///{tmp_path}/mlflow.db", run.info.run_id,
                                 str(song)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                                env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert standalone.returncode == 0, standalone.stderr[-3000:]
    [row] = json.loads(standalone.stdout.strip().splitlines()[-1])
    for genre, score in ranking.items():
        assert row[genre] == pytest.approx(score, abs=1e-5), genre

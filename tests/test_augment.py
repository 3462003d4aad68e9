"""Augmentation (augment=...), the modern recipe and the built-in domain shift (dataset.timbres)."""
import json

import numpy as np
import pytest
import torch

from conftest import compose_config, tiny_overrides
from genre.data.augment import Augment
from genre.runtime.errors import ConfigError


def batch(n=16, bands=32, frames=60):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, bands, frames, generator=g) * 8 - 40, torch.arange(n) % 4


def test_off_by_default_and_reproducible_from_seed_and_step():
    x, y = batch()
    same, target = Augment()(x, y, 4, step=0)
    assert torch.equal(same, x) and torch.equal(target, torch.nn.functional.one_hot(y, 4).float())
    every = Augment(time_masks=2, time_mask_frames=10, freq_masks=2, freq_mask_bands=8, mixup_alpha=0.2,
                    gain_db=6, tilt_db=12, band_gain_db=6, noise_snr_db=[10, 40], seed=3)
    first, again, later = every(x, y, 4, step=5), every(x, y, 4, step=5), every(x, y, 4, step=6)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], later[0])
    assert not torch.equal(Augment(gain_db=6, seed=4)(x, y, 4, step=5)[0], Augment(gain_db=6, seed=3)(x, y, 4, step=5)[0])


def test_level_operations_change_the_db_spectrum_as_stated():
    x, y = batch()
    gained, _ = Augment(gain_db=6)(x, y, 4, step=1)
    shift = (gained - x).flatten(1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift)) and shift.abs().max() <= 6 and shift.std() > 0.5
    tilted, _ = Augment(tilt_db=12)(x, y, 4, step=1)
    change = (tilted - x)[:, 0, :, 0]                     # per example: a ramp across the bands
    span = change[:, -1] - change[:, 0]
    assert span.abs().max() <= 12 and torch.allclose(change[:, 1:] - change[:, :-1], (span / 31)[:, None], atol=1e-4)
    quiet, _ = Augment(noise_snr_db=[80, 80])(x, y, 4, step=1)
    assert (quiet - x).abs().max() < 0.01                   # 80 dB below the signal: nothing audible
    loud, _ = Augment(noise_snr_db=[0, 0])(x, y, 4, step=1)
    ratio = torch.pow(10, loud / 10).mean((1, 2, 3)) / torch.pow(10, x / 10).mean((1, 2, 3))
    assert torch.allclose(ratio, torch.full_like(ratio, 2.0), rtol=0.1)   # noise as strong as the signal


def test_masks_and_mixup():
    x, y = batch()
    masked, target = Augment(time_masks=1, time_mask_frames=60, freq_masks=0, freq_mask_bands=0)(x, y, 4, step=2)
    changed = (masked != x)[:, 0, 0, :]                     # the masked frames of each clip: one run
    for row in changed:
        where = torch.nonzero(row).flatten()
        assert len(where) == 0 or (where.max() - where.min() + 1) == len(where)
    assert changed.any()
    mixed, target = Augment(mixup_alpha=0.4)(x, y, 4, step=2)
    assert torch.allclose(target.sum(1), torch.ones(16)) and (target.max(1).values < 1).any()
    assert not torch.equal(mixed, x)


def test_level_augmentations_on_mfcc_and_on_embeddings_are_refused_naming_the_settings():
    with pytest.raises(ConfigError, match="gain_db, noise_snr_db.*features=mfcc"):
        Augment(gain_db=3, noise_snr_db=[10, 20]).check_features("mfcc")
    Augment(time_masks=2, time_mask_frames=5, mixup_alpha=0.2).check_features("mfcc")   # any features
    with pytest.raises(ConfigError, match="features=mert_v1_95m gives a pretrained encoder's embeddings"):
        Augment(gain_db=3).check_features("mert_v1_95m")
    Augment(mixup_alpha=0.2).check_features("mert_v1_95m")
    with pytest.raises(ConfigError, match="noise_snr_db"):
        Augment(noise_snr_db=[30, 10])


@pytest.mark.slow   # renders two corpora
def test_timbre_set_b_plays_the_same_compositions_with_other_sounds(tmp_path):
    import librosa

    from genre.datasets import synthetic
    from genre.datasets.music_generator import render_track

    def onsets(genre, number, timbres):
        return librosa.onset.onset_strength(y=render_track(genre, number, 0, 6.0, 22050, timbres), sr=22050)

    for genre in ("jazz", "disco", "classical"):
        a, b, other = onsets(genre, 2, "a"), onsets(genre, 2, "b"), onsets(genre, 5, "b")
        # the same notes at the same moments (onsets agree), other sounds (the spectra differ)
        assert np.corrcoef(a, b)[0, 1] > 0.8 and np.corrcoef(a, other)[0, 1] < 0.5
    a, b = render_track("jazz", 2, 0, 3.0, 22050), render_track("jazz", 2, 0, 3.0, 22050, "b")
    assert a.shape == b.shape and np.abs(a - b).max() > 0.01
    index_a = synthetic.build(str(tmp_path / "corpus"), 3, 3.0, 22050, 0, num_workers=1)
    index_b = synthetic.build(str(tmp_path / "corpus"), 3, 3.0, 22050, 0, num_workers=1, timbres="b")
    assert (tmp_path / "corpus-timbres-b" / "corpus.json").is_file()
    split = lambda index: sorted((t.track_id, t.split) for t in index.tracks)   # noqa: E731
    assert split(index_a) == split(index_b)                 # same tracks, same split: only the sound differs
    with pytest.raises(Exception, match="dataset.timbres='c'"):
        synthetic.build(str(tmp_path / "corpus"), 3, 3.0, 22050, 0, timbres="c")


@pytest.mark.slow
def test_modern_recipe_trains_resnet_and_a_model_trained_on_a_is_scored_on_b(tmp_path):
    import mlflow

    from genre.evaluate import evaluate
    from genre.train import train

    tiny = tiny_overrides(**{"trainer.max_epochs": 2})
    metrics = train(compose_config("train", [*tiny, "recipe=modern", "model=resnet", "model.channels=[4,4,8]",
                                             "model.hidden=16"], tmp_path))
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(metrics["run_id"])
    params = run.data.params
    assert params["augment/mixup_alpha"] == "0.2" and params["augment/noise_snr_db"] == "[10.0, 40.0]"
    assert params["label_smoothing"] == "0.1" and params["optimizer/_target_"] == "torch.optim.AdamW"
    assert params["scheduler/_target_"] == "genre.models.schedules.warmup_cosine"
    # train on a, test on b: the same test compositions, other timbres, scored into the same run
    dataset = [o for o in tiny if o.startswith("dataset.")]
    scored = evaluate(compose_config("evaluate", [f"run_id={metrics['run_id']}", "dataset=synthetic",
                                                  "dataset.timbres=b", "split=test", *dataset], tmp_path))
    assert 0 <= scored["evaluate/synthetic/test/track_acc"] <= 1
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(metrics["run_id"])
    assert run.data.metrics["evaluate/synthetic/test/track_acc"] == pytest.approx(scored["evaluate/synthetic/test/track_acc"])


@pytest.mark.slow
def test_domain_shift_report_tables_both_recipes_on_a_and_b(tmp_path, capsys):
    from genre import shift

    out = tmp_path / "shift.json"
    tiny = [o for o in tiny_overrides(**{"trainer.max_epochs": 1}) if not o.startswith("trainer.enable_progress")]
    assert shift.main(["--root", str(tmp_path / "runs"), "--models", "cnn3", "--seeds", "1", "2", "--json", str(out),
                       *tiny]) == 0
    result = json.loads(out.read_text())
    assert [(r["model"], r["recipe"], r["seed"]) for r in result["runs"]] == [
        ("cnn3", "plain", 1), ("cnn3", "plain", 2), ("cnn3", "modern", 1), ("cnn3", "modern", 2)]
    for row in result["table"]:
        runs = [r for r in result["runs"] if r["recipe"] == row["recipe"]]
        assert row["seeds"] == 2 and row["a_mean"] == pytest.approx(np.mean([r["a"] for r in runs]))
        assert row["drop_mean"] == pytest.approx(np.mean([r["a"] - r["b"] for r in runs]))
    assert "| cnn3 | modern |" in capsys.readouterr().out

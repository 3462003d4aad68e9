"""The published protocols: each preset composes and trains a step on fixture data in its dataset's
format; the comparison is built from real MLflow runs of tiny trainings."""
import re

import mlflow
import numpy as np
import pytest
import soundfile as sf
from test_datasets import fma_tree

from conftest import compose_config, tiny_overrides
from genre.compare import compare
from genre.datasets.music_generator import render_track
from genre.train import train

pytestmark = pytest.mark.slow
PRESETS = ("lachmish2016", "taofeng2014", "homburg2005", "fma_small_3s", "gtzan_filtered", "costa2017")
HOMBURG = ["alternative", "blues", "electronic", "folkcountry", "funksoulrnb", "jazz", "pop", "raphiphop", "rock"]


def write_audio(path, style: str, number: int, seconds: float = 4.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), render_track(style, number, 0, seconds, 22050), 22050)


def preset_fixture(preset: str, root):
    """Data in the preset's dataset format, and the overrides that point the preset at it."""
    styles = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    if preset in ("lachmish2016", "taofeng2014", "gtzan_filtered"):
        genres = styles if preset == "lachmish2016" else ["classical", "metal"]
        numbers = range(10) if preset != "gtzan_filtered" else [0, 1, 2, 3, 12, 13, 29, 30, 31, 32]
        for genre in genres:
            for n in numbers:
                write_audio(root / "gtzan" / "genres" / genre / f"{genre}.{n:05d}.au", genre, n)
        extra = [] if preset == "lachmish2016" else ["dataset.genres=[classical,metal]"]
        return [f"dataset.root={root / 'gtzan'}", *extra]
    if preset == "homburg2005":   # the real layout: <genre>/<Artist>-<Title>.mp3, 10-s excerpts
        for genre, style in zip(HOMBURG, styles, strict=False):
            for n in range(10):
                write_audio(root / "homburg" / genre / f"The {style.title()} Band {n}-Song Number {n}.mp3", style, n,
                            10.0)
        return [f"dataset.root={root / 'homburg'}"]
    if preset == "costa2017":
        from test_datasets import ismir2004_tree
        ismir2004_tree(root / "ismir2004")
        return [f"dataset.root={root / 'ismir2004'}"]
    fma_genres = ["Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock"]
    rows = [(100 * g + n, "training", "small", genre) for g, genre in enumerate(fma_genres, start=1) for n in range(10)]
    data = fma_tree(root / "fma", rows, {})
    for (tid, *_), style in zip(rows, np.repeat(styles[:8], 10), strict=False):
        path = data / "fma_small" / f"{tid:06d}"[:3] / f"{tid:06d}.mp3"
        write_audio(path, style, tid)
    return [f"dataset.root={data}"]


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_trains_a_step_on_its_dataset_format(tmp_path, preset):
    dataset_overrides = preset_fixture(preset, tmp_path)
    track_seconds = 10.0 if preset == "homburg2005" else 4.0
    overrides = [f"experiment={preset}", *dataset_overrides, f"dataset.track_seconds={track_seconds}",
                 "clips.clip_seconds=2.0", "clips.cache_workers=1", "trainer.max_epochs=1",
                 "trainer.limit_train_batches=1", "trainer.enable_progress_bar=false"]
    cfg = compose_config("train", overrides, tmp_path)
    assert cfg.logger.experiment_name == preset and cfg.reference.published is not None
    metrics = train(cfg)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    run = mlflow.get_run(metrics["run_id"])
    assert mlflow.get_experiment(run.info.experiment_id).name == preset
    assert "reference/published" not in " ".join(run.data.params)   # published numbers are not run params
    assert "test/track_acc" in run.data.metrics and "test/macro_f1" in run.data.metrics


def test_homburg_preset_reads_the_real_layout_with_stratified_ten_fold_cross_validation(tmp_path):
    from genre.assembly.build import build_index

    preset_fixture("homburg2005", tmp_path)
    test_sets = []
    for fold in range(10):
        cfg = compose_config("train", ["experiment=homburg2005", f"dataset.root={tmp_path / 'homburg'}",
                                       f"dataset.fold={fold}"], tmp_path)
        index = build_index(cfg.dataset)
        assert index.genres == HOMBURG and len(index.tracks) == 90
        assert index.split_protocol.startswith("stratified-10-fold-by-track")
        test = [t for t in index.tracks if t.split == "test"]
        assert sorted(t.genre for t in test) == HOMBURG        # stratified: one of each genre's 10 per fold
        test_sets.append({t.track_id for t in test})
    assert len(set().union(*test_sets)) == 90                   # each song tested exactly once over the folds


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    runs = [("mel", 1, "random"), ("mel", 2, "random"), ("mfcc", 1, "random"), ("mfcc", 2, "random"),
            ("mel", 1, "kfold")]
    for number, (features, seed, split) in enumerate(runs):
        train(compose_config("train", tiny_overrides(**{
            "paths.output_dir": root / f"run{number}",
            "features": features, "seed": seed, "dataset.split": split, "dataset.folds": 3,
            "logger.experiment_name": "mel_vs_mfcc", "trainer.max_epochs": 2, "features.n_mfcc": 13,
            "dataset.tracks_per_genre": 12}), root))
    cfg = compose_config("train", ["experiment=lachmish2016", "logger.experiment_name=mel_vs_mfcc"], root)
    return root, compare(cfg, root / "report")


def test_comparison_groups_seeds_and_never_mixes_protocols(compared):
    root, result = compared
    groups = {(g.protocol.split("(")[0], g.features): g for g in result["groups"]}
    assert set(groups) == {("random-stratified-by-track", "mel"), ("random-stratified-by-track", "mfcc"),
                           ("stratified-3-fold-by-track", "mel")}
    mel = groups[("random-stratified-by-track", "mel")]
    assert sorted(mel.seeds) == ["1", "2"]
    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    track_accs = [client.get_run(r).data.metrics["test/track_acc"] for r in mel.run_ids]
    mean, std, n = mel.mean_std("test/track_acc")
    assert n == 2 and mean == pytest.approx(np.mean(track_accs)) and std == pytest.approx(np.std(track_accs, ddof=1))
    assert groups[("stratified-3-fold-by-track", "mel")].mean_std("test/track_acc")[2] == 1
    for g in result["groups"]:   # the separation scores that make the mel-vs-MFCC claim a number
        assert g.mean_std("test/features_silhouette")[2] == len(g.run_ids)
        assert g.mean_std("test/features_knn_acc")[2] == len(g.run_ids)


def test_comparison_report_states_protocols_and_published_numbers(compared):
    root, result = compared
    text = result["markdown"]
    assert len(re.findall(r"^## Split protocol: ", text, re.M)) == 2
    expected = f"{100 * result['groups'][0].mean_std('test/track_acc')[0]:.1f} ±"
    assert expected in text
    assert "46.87 %" in text and "17.18 %" in text and "800/200" in text
    out = result["out_dir"]
    for name in ("comparison.md", "comparison.html", "comparison.png", "tsne_features_side_by_side.png"):
        assert (out / name).stat().st_size > 0
    page = (out / "comparison.html").read_text()
    assert "<table>" in page and page.count("data:image/png;base64") == 2 and "46.87" in page
    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    logged = {a.path for a in client.list_artifacts(result["run_id"])}
    assert {"comparison.md", "comparison.html", "comparison.png", "tsne_features_side_by_side.png"} <= logged
    assert client.get_run(result["run_id"]).data.tags["genre.kind"] == "comparison"
    # listed apart from the training runs, and no downloaded copy of a run's plot left beside the report
    training = client.get_experiment_by_name("mel_vs_mfcc")
    assert client.get_run(result["run_id"]).info.experiment_id != training.experiment_id
    assert {r.info.run_name for r in client.search_runs([training.experiment_id])} & {"comparison"} == set()
    assert not (out / "tsne_features.png").exists()

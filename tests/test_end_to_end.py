"""Train a tiny run on CPU, then check what a user would look at: the MLflow store, the checkpoint,
evaluate.py's numbers and its answer for an audio file."""
import csv
import io
import subprocess
import sys

import mlflow
import numpy as np
import pytest
import torch

from genre.datasets.synthetic import ensure_corpus
from genre.build import load_classifier
from genre.evaluate import classify_file, evaluate
from genre.train import train

from conftest import ROOT, compose_config, tiny_overrides, write_tone

pytestmark = pytest.mark.slow
GENRES = ["classical", "disco", "metal", "reggae"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    cfg = compose_config("train", tiny_overrides(), root)
    corpus = ensure_corpus(cfg.dataset.root, 6, 6.0, 22050, 0, num_workers=2)
    # a user's copy has a damaged file: it must be skipped, counted and reported, not crash the run
    (corpus / "genres" / "metal" / "metal.00004.au").write_bytes(b"\x00not audio" * 50)
    metrics = train(cfg)
    return root, cfg, metrics


def run_and_client(root, run_id):
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    return mlflow.get_run(run_id), mlflow.MlflowClient()


def test_run_is_in_the_mlflow_store_with_metrics_params_and_tags(trained):
    root, cfg, metrics = trained
    run, client = run_and_client(root, metrics["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith(f"file://{root}/mlartifacts/genre/") or \
        run.info.artifact_uri.startswith(str(root / "mlartifacts" / "genre") + "/")
    tags = run.data.tags
    assert tags["dataset"] == "synthetic" and tags["features"] == "mel" and tags["model"] == "cnn3"
    assert tags["split_protocol"].startswith("random-stratified-by-track")
    assert len(tags["git_commit"]) >= 7
    assert tags["skipped_files"] == "1"      # the damaged metal.00004.au, counted on the run
    # what decides bit-for-bit agreement between machines is on the run (README, Reproducibility)
    assert len(tags["features_digest"]) == 20 and tags["cpu_kernels"] and int(tags["torch_threads"]) >= 1
    assert "torch=2.11.0" in tags["library_versions"] and "numpy=" in tags["library_versions"]
    assert run.data.params["features/window_ms"] == "100.0"
    assert run.data.params["clips/clip_seconds"] == "3.0"
    history = client.get_metric_history(run.info.run_id, "val/track_acc")
    assert len(history) == cfg.trainer.max_epochs                      # one value per epoch
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == cfg.trainer.max_epochs
    for key in ("test/acc", "test/track_acc", "test/macro_f1", "test/f1_metal", "val/track_acc_best"):
        assert key in run.data.metrics
    assert run.data.metrics["test/track_acc"] == pytest.approx(metrics["test/track_acc"])


def test_run_has_plots_reports_skipped_files_and_the_model(trained):
    root, cfg, metrics = trained
    run, client = run_and_client(root, metrics["run_id"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    for name in ("config.yaml", "confusion_matrix_track.png", "confusion_matrix_track.csv",
                 "confusion_matrix_clip.png", "classification_report_track.txt", "tsne_embeddings.png",
                 "tsne_features.png", "skipped_files.csv", "checkpoints"):
        assert name in artifacts, name
    skipped = list(csv.DictReader(io.StringIO(
        open(client.download_artifacts(run.info.run_id, "skipped_files.csv")).read())))
    assert [row["path"].rsplit("/", 1)[-1] for row in skipped] == ["metal.00004.au"]
    matrix = open(client.download_artifacts(run.info.run_id, "confusion_matrix_track.csv")).read().splitlines()
    assert matrix[0].split(",")[1:] == GENRES
    counts = np.array([[int(v) for v in line.split(",")[1:]] for line in matrix[1:]])
    test_tracks = counts.sum()
    assert counts.trace() / test_tracks == pytest.approx(metrics["test/track_acc"], abs=1e-6)

    [model_info] = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                               filter_string=f"source_run_id = '{run.info.run_id}'",
                                               output_format="list")
    model = mlflow.pytorch.load_model(model_info.model_uri)
    clip_frames = torch.load(metrics["best_checkpoint"], weights_only=False)["genre"]["clip_frames"]
    probs = model(torch.randn(3, 1, cfg.features.n_mels, clip_frames))
    assert probs.shape == (3, len(GENRES))
    torch.testing.assert_close(probs.sum(1), torch.ones(3))


def test_evaluate_reproduces_the_test_metrics_and_logs_next_to_the_run(trained):
    root, cfg, metrics = trained
    eval_cfg = compose_config("evaluate", [f"ckpt_path={metrics['best_checkpoint']}"], root)
    result = evaluate(eval_cfg)
    for key in ("acc", "track_acc", "macro_f1"):
        assert result[f"evaluate/test/{key}"] == pytest.approx(metrics[f"test/{key}"], abs=1e-6)
    run, client = run_and_client(root, metrics["run_id"])
    assert run.data.metrics["evaluate/test/track_acc"] == pytest.approx(metrics["test/track_acc"], abs=1e-6)
    evaluate_artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluate/test")}
    assert "evaluate/test/confusion_matrix_track.png" in evaluate_artifacts

    # by run id: the best checkpoint scores on the validation split what it scored when it was chosen
    by_run = evaluate(compose_config("evaluate", [f"run_id={metrics['run_id']}", "split=val",
                                                  "log_to_mlflow=false"], root))
    assert by_run["evaluate/val/track_acc"] == pytest.approx(run.data.metrics["val/track_acc_best"], abs=1e-6)


def test_score_the_model_on_another_corpus_with_a_genre_mapping(trained, tmp_path):
    """Train on one corpus, test on another whose genre names differ: ``evaluate.py run_id=... dataset=folder
    dataset.root=... split=all genre_map=...``, logged to the training run under its own prefix."""
    import shutil

    root, cfg, metrics = trained
    other = ensure_corpus(tmp_path / "other", 4, 6.0, 22050, 7, genres=("classical", "disco", "metal", "reggae",
                                                                          "jazz"), num_workers=2)
    collection = tmp_path / "collection"
    for genre, name in (("classical", "Classical"), ("disco", "Disco"), ("metal", "Metal"),
                        ("reggae", "reggae"), ("jazz", "Jazz")):             # jazz: a genre the model lacks
        shutil.copytree(other / "genres" / genre, collection / name)
    overrides = [f"run_id={metrics['run_id']}", "dataset=folder", f"dataset.root='{collection}'", "split=all",
                 "genre_map={Classical: classical, Disco: disco, Metal: metal}",
                 "dataset.track_seconds=6.0", "clips.cache_workers=1"]
    result = evaluate(compose_config("evaluate", overrides, root))
    assert 0.0 <= result["evaluate/folder/all/track_acc"] <= 1.0 and "evaluate/folder/all/acc" in result
    run, client = run_and_client(root, metrics["run_id"])
    assert run.data.metrics["evaluate/folder/all/track_acc"] == pytest.approx(result["evaluate/folder/all/track_acc"])
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "evaluate/folder/all")}
    assert "evaluate/folder/all/confusion_matrix_track.png" in logged
    report = client.download_artifacts(run.info.run_id, "evaluate/folder/all/classification_report_track.txt",
                                       str(tmp_path))
    text = open(report).read()
    assert "all-tracks(folder)" in text and " 16" in text        # 4 genres x 4 tracks scored, jazz left out

    from genre.errors import ConfigError
    with pytest.raises(ConfigError, match="polka"):
        evaluate(compose_config("evaluate", [o for o in overrides if not o.startswith("genre_map")]
                                + ["genre_map={Disco: polka}"], root))


def test_classify_an_audio_file_of_any_length_and_format(trained, tmp_path):
    root, cfg, metrics = trained
    model = load_classifier(metrics["best_checkpoint"])
    for path, seconds in ((tmp_path / "song.mp3", 14.0), (tmp_path / "short.flac", 1.0),
                          (tmp_path / "one_clip.wav", 3.0)):
        write_tone(path, seconds, sample_rate=44100, channels=2)
        ranking = classify_file(model, path)
        assert [g for g, _ in sorted(ranking)] == GENRES
        assert sum(p for _, p in ranking) == pytest.approx(1.0, abs=1e-5)
        assert ranking == sorted(ranking, key=lambda pair: -pair[1])
    out = subprocess.run([sys.executable, "evaluate.py", f"ckpt_path={metrics['best_checkpoint']}",
                          f"audio={tmp_path / 'song.mp3'}", "top_k=2", f"paths.root_dir={root}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].endswith("song.mp3:") and len(lines) == 3 and lines[1].strip().endswith("%")

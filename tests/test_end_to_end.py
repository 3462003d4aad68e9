"""Train a tiny run on CPU, then check what a user would look at: the MLflow store, the checkpoint,
evaluate.py's numbers and its answer for an audio file."""
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from conftest import ROOT, compose_config, run_cli, tiny_overrides, write_tone
from genre.assembly.build import load_classifier
from genre.datasets.synthetic import ensure_corpus
from genre.evaluate import classify_file, evaluate, similar_tracks

pytestmark = pytest.mark.slow
GENRES = ["classical", "disco", "metal", "reggae"]


def run_and_client(root, run_id):
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    return mlflow.get_run(run_id), mlflow.MlflowClient()


def test_run_is_in_the_mlflow_store_with_metrics_params_and_tags(trained):
    root, cfg, metrics, _ = trained
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
    for key in ("test/acc", "test/track_acc", "test/macro_f1", "val/track_acc_best"):
        assert key in run.data.metrics
    assert run.data.metrics["test/track_acc"] == pytest.approx(metrics["test/track_acc"])


def test_every_metric_follows_one_step_scheme_the_epoch_or_zero_for_a_result(trained):
    """Per-epoch metrics were at Lightning's global step, the separation scores at step 0 and the test metrics
    at the last global step: two schemes in one run, and runs of other sizes did not line up."""
    root, cfg, metrics, _ = trained
    run, client = run_and_client(root, metrics["run_id"])
    epochs = list(range(1, cfg.trainer.max_epochs + 1))          # as the console counts them: epoch 1/3 ...
    assert "epoch" not in run.data.metrics                        # it is the step
    for key in run.data.metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        if key.startswith(("train/", "val/")):
            assert steps == epochs, (key, steps)
        elif key.startswith("test/"):
            assert steps == [0], (key, steps)                      # a result: one value, a bar in the UI


def test_run_has_plots_reports_skipped_files_and_the_model(trained):
    root, cfg, metrics, _ = trained
    run, client = run_and_client(root, metrics["run_id"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    for name in ("config.yaml", "confusion_matrix_track.png", "confusion_matrix_track.csv",
                 "confusion_matrix_clip.png", "classification_report_track.txt", "per_genre_track.json",
                 "tsne_embeddings.png", "pca_embeddings.png", "pca_features.png",
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



# What a user without this repository does with the logged model: genre cannot be imported here
STANDALONE = """
import json, sys
sys.modules["genre"] = None                      # any import of genre now fails
import mlflow, pandas, soundfile
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(f"runs:/{sys.argv[2]}/model")
meta = model.metadata.metadata
waveform, rate = soundfile.read(sys.argv[3], dtype="float32")
assert rate == meta["sample_rate"], rate
short = waveform[: rate // 4]                    # a quarter second: shorter than one clip
out = model.predict(pandas.DataFrame({"waveform": [waveform, short]}))   # one row per song
assert model.predict({"waveform": waveform}).equals(out.iloc[:1])        # one song
print(json.dumps({"meta": meta, "rows": out.to_dict(orient="records")}))
"""


def test_logged_model_classifies_a_waveform_without_this_repository(trained, tmp_path):
    root, cfg, metrics, _ = trained
    song = write_tone(tmp_path / "song.wav", 8.5, sample_rate=cfg.features.sample_rate, frequency=330.0)
    out = subprocess.run([sys.executable, "-c", STANDALONE, f"sqlite:///{root}/mlflow.db", metrics["run_id"],
                          str(song)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Warning" not in out.stderr, out.stderr[-3000:]       # loading says nothing the user cannot act on
    result = json.loads(out.stdout.strip().splitlines()[-1])
    meta = result["meta"]
    assert meta["genres"] == GENRES and meta["sample_rate"] == cfg.features.sample_rate
    assert meta["features"]["window_ms"] == cfg.features.window_ms and meta["clip_seconds"] == 3.0
    assert meta["split_protocol"].startswith("random-stratified-by-track")
    assert meta["test_track_accuracy"] == pytest.approx(metrics["test/track_acc"], abs=1e-6)
    full, short = result["rows"]
    assert sum(full[g] for g in GENRES) == pytest.approx(1.0, abs=1e-5)
    assert full["genre"] == max(GENRES, key=lambda g: full[g]) and short["genre"] in GENRES
    # exactly what evaluate.py audio= computes for the same file
    ranking = dict(classify_file(load_classifier(metrics["best_checkpoint"]), song))
    for genre in GENRES:
        assert full[genre] == pytest.approx(ranking[genre], abs=1e-6), genre


def test_evaluate_reproduces_the_test_metrics_and_logs_next_to_the_run(trained):
    root, cfg, metrics, _ = trained
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

    root, cfg, metrics, _ = trained
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

    from genre.runtime.errors import ConfigError
    with pytest.raises(ConfigError, match="polka"):
        evaluate(compose_config("evaluate", [o for o in overrides if not o.startswith("genre_map")]
                                + ["genre_map={Disco: polka}"], root))


def test_classify_an_audio_file_of_any_length_and_format(trained, tmp_path):
    root, cfg, metrics, _ = trained
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
    assert lines[0].endswith("song.mp3:") and lines[1].strip().endswith("%") and lines[2].strip().endswith("%")
    assert lines[3].startswith("  (trained on synthetic (random-stratified-by-track(")   # what the model knows
    assert "not real music" in out.stdout + out.stderr and len(lines) <= 5


def test_run_shows_its_data_system_metrics_and_registered_model(trained):
    root, cfg, metrics, _ = trained
    run, client = run_and_client(root, metrics["run_id"])
    [data] = run.inputs.dataset_inputs                     # the run list's Datasets column
    assert data.dataset.name == "synthetic" and len(data.dataset.digest) >= 8
    tags = {t.key: t.value for t in data.tags}
    assert tags["mlflow.data.context"] == "training" and tags["split_protocol"] == run.data.tags["split_protocol"]
    import json
    rows = json.loads(data.dataset.profile)["num_rows"]
    assert rows == 4 * 6 - 1                                # every track used, the damaged one left out
    assert run.data.metrics["system/cpu_utilization_percentage"] >= 0
    assert run.data.metrics["system/system_memory_usage_megabytes"] > 0
    [version] = client.search_model_versions("name = 'genre-tiny'")
    assert version.run_id == run.info.run_id and version.source.endswith(("/model", run.outputs.model_outputs[0].model_id))
    # test metrics read as a handful of headline numbers, not a screen of single dots
    assert sorted(k for k in run.data.metrics if k.startswith("test/")) == sorted(HEADLINE_TEST_METRICS)


HEADLINE_TEST_METRICS = ("test/acc", "test/track_acc", "test/macro_f1", "test/loss", "test/embeddings_silhouette",
                         "test/embeddings_knn_acc", "test/features_silhouette", "test/features_knn_acc")


def test_the_logged_model_shows_what_it_scored_and_the_run_logs_each_test_metric_once(trained):
    """The logged model's page had no test accuracy: MLflow 3 links metrics to a logged model."""
    root, _, metrics, _ = trained
    run, client = run_and_client(root, metrics["run_id"])
    [model] = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    linked = {m.key: m.value for m in model.metrics}
    # every test metric that has a value (a score the tiny test split cannot give is NaN: on the run alone,
    # since MLflow would show it as 0.0 on the model)
    assert sorted(linked) == sorted(k for k in HEADLINE_TEST_METRICS if np.isfinite(run.data.metrics[k]))
    assert {"test/acc", "test/track_acc", "test/macro_f1"} <= set(linked)
    assert {key: run.data.metrics[key] for key in linked} == linked
    history = {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
               for key in HEADLINE_TEST_METRICS}
    assert all(len(values) == 1 for values in history.values()), history                      # logged once
    [version] = client.search_model_versions("name = 'genre-tiny'")
    assert version.source.endswith(model.model_id)   # the registered version opens on this model and its metrics


def test_console_says_what_happened_and_nothing_else(trained):
    root, cfg, metrics, out = trained
    console = out.stdout + out.stderr
    for noise in ("litlogger", "LeafSpec", "multiple `ModelCheckpoint`", "not writable", "limit_train_batches",
                  "v_num", "Add type hints", "Downloading artifacts", "smaller than the logging interval",
                  "GPU available: False", "TPU available", "FLOPs", "monitoring system metrics"):
        assert noise not in console, noise
    run, _ = run_and_client(root, metrics["run_id"])
    last = [line.split(" - ", 1)[-1] for line in out.stdout.strip().splitlines()[-4:]]
    assert last[0] == f"run      {run.info.run_name}  (id {run.info.run_id})"
    assert last[1].startswith("outputs  ") and (root / "outputs") in Path(last[1].split()[-1]).parents
    # the command works as printed: "mlflow" where this environment's is on PATH, else its path
    program = last[2].split()[2]
    assert program == "mlflow" and shutil.which("mlflow") or (ROOT / program).is_file(), last[2]
    assert last[2].startswith(f"see it   {program} ui --backend-store-uri sqlite:///{root}/mlflow.db")
    # and the app on it (tests/test_app.py starts it as printed)
    app = last[3].split()[2]
    assert app == "genre-app" and shutil.which("genre-app") or (ROOT / app).is_file(), last[3]
    assert last[3] == f"try it   {app} run_id={run.info.run_id} paths.root_dir={root}   then open http://127.0.0.1:8050"
    assert re.search(r"model cnn3: \d+\.\d\d M parameters, clips of 32 bands x \d+ frames, 4 genres", console)
    assert not re.search(r"\d\.\d{10}", console)      # no 16-digit metric values
    # MLflow's own lines in the project's format
    assert "[mlflow.store.db.utils][INFO] - Creating initial MLflow database tables" in console
    assert "alembic" not in console


def test_mlflow_models_serve_answers_a_request_with_a_waveform(trained, tmp_path):
    import urllib.error
    import urllib.request

    import soundfile as sf

    from conftest import served

    root, cfg, metrics, _ = trained
    with served(root, metrics["run_id"], tmp_path) as ask:
        song = write_tone(tmp_path / "song.wav", 4.0, sample_rate=cfg.features.sample_rate, frequency=440.0)
        waveform, _ = sf.read(str(song), dtype="float32")
        [answer] = ask([{"waveform": waveform.tolist()}])
        # what is not music gets a 4xx naming the problem, and the server stays up
        for bad, reason in (([], "empty audio"), ([1e30] * 4000, "far beyond full scale"),
                            ([0.0] * 4000, "silent")):
            with pytest.raises(urllib.error.HTTPError) as error:
                ask([{"waveform": bad}])
            assert error.value.code == 400 and reason in error.value.read().decode(), reason
        [again] = ask([{"waveform": waveform.tolist()}])
        assert again == answer
    ranking = dict(classify_file(load_classifier(metrics["best_checkpoint"]), song))
    assert answer["genre"] == max(ranking, key=ranking.get)
    for genre in GENRES:
        assert answer[genre] == pytest.approx(ranking[genre], abs=1e-6), genre


def test_tracks_like_a_song_come_from_the_runs_corpus_and_are_computed_once(trained):
    root, cfg, metrics, _ = trained
    song = next((root / "data").rglob("disco.00002.au"))          # a song of the corpus itself
    command = ["evaluate.py", f"run_id={metrics['run_id']}", f"audio={song}", "similar=3", f"paths.root_dir={root}"]
    out = run_cli(*command)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("tracks like it"))
    neighbours = [line.split() for line in lines[start + 1:]]
    assert len(neighbours) == 3
    distance, genre, track_id, _split = neighbours[0]
    assert track_id.endswith("disco.00002") and genre == "disco" and abs(float(distance)) < 1e-4   # itself
    assert [float(n[0]) for n in neighbours] == sorted(float(n[0]) for n in neighbours)
    [kept] = Path(metrics["best_checkpoint"]).parent.glob("*.embeddings-*.npz")
    first = kept.stat().st_mtime_ns
    again = run_cli(*command).stdout.strip().splitlines()
    assert again[-4:] == lines[-4:] and kept.stat().st_mtime_ns == first   # reused, not recomputed


def test_the_logged_model_and_evaluate_refuse_what_is_not_music_and_say_what_they_padded(trained, tmp_path, caplog):
    import pandas
    from mlflow.exceptions import MlflowException

    from genre.runtime.errors import AudioDecodeError

    root, cfg, metrics, _ = trained
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    model = mlflow.pyfunc.load_model(f"runs:/{metrics['run_id']}/model")
    rate = cfg.features.sample_rate
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(4 * rate) / rate)).astype(np.float32)
    for bad, reason in ((np.zeros(0, np.float32), "empty audio"), (np.full(rate, np.nan, np.float32), "NaN"),
                        (np.full(rate, 1e30, np.float32), "far beyond full scale"),
                        (np.zeros(4 * rate, np.float32), "silent")):
        with pytest.raises(MlflowException, match=f"waveform 1: .*{reason}"):
            model.predict(pandas.DataFrame({"waveform": [tone, bad]}))
    out = model.predict(pandas.DataFrame({"waveform": [tone, tone[: rate // 4], tone[:2]]}))
    assert out["padded_seconds"][0] == 0.0
    assert out["padded_seconds"][1] == pytest.approx(3.0 - 0.25, abs=0.05)     # 3-s clips
    assert out["padded_seconds"][2] == pytest.approx(3.0, abs=0.05)            # 2 samples: said, not hidden

    checkpoint = load_classifier(metrics["best_checkpoint"])
    silent = write_tone(tmp_path / "silence.wav", 4.0, frequency=0.0)
    with pytest.raises(AudioDecodeError, match=r"silence.wav: silent \(its loudest sample is digital silence"):
        classify_file(checkpoint, silent)
    short = write_tone(tmp_path / "short.wav", 1.5, sample_rate=rate)
    with caplog.at_level("WARNING"):
        classify_file(checkpoint, short)
    # 3-s clips of centred frames need (clip_frames - 1) hops + 1 sample: about 2.96 s
    assert re.search(r"short.wav lasts 1.50 s, less than one clip: padded with 1.4\d s of silence", caplog.text)
    with pytest.raises(AudioDecodeError, match=r"lasts 0.25 s: an answer needs at least 1.00 s of audio"):
        classify_file(checkpoint, write_tone(tmp_path / "shorter.wav", 0.25, sample_rate=rate))


def test_scoring_the_same_split_twice_records_it_once(trained):
    """Two evaluate.py split=val calls gave two rows of every evaluate/val/* metric."""
    root, cfg, metrics, _ = trained
    for _ in range(2):
        evaluate(compose_config("evaluate", [f"ckpt_path={metrics['best_checkpoint']}", "split=val"], root))
    run, client = run_and_client(root, metrics["run_id"])
    scored = [key for key in run.data.metrics if key.startswith("evaluate/val/")]
    assert scored and all(len(client.get_metric_history(run.info.run_id, key)) == 1 for key in scored)
    assert run.data.tags["evaluate/val/recorded"]
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "evaluate/val")}
    assert {"evaluate/val/confusion_matrix_track.csv", "evaluate/val/confusion_matrix_clip.csv"} <= logged


def test_damaged_corpus_embeddings_are_computed_again_not_a_traceback(trained):
    from genre.evaluate import corpus_embeddings

    root, cfg, metrics, _ = trained
    model = load_classifier(metrics["best_checkpoint"])
    first = corpus_embeddings(model, metrics["best_checkpoint"], str(root / "cache"))
    [kept] = Path(metrics["best_checkpoint"]).parent.glob("*.embeddings-*.npz")
    kept.write_bytes(kept.read_bytes()[:100])                  # cut short, as a full disk or a copy leaves it
    again = corpus_embeddings(model, metrics["best_checkpoint"], str(root / "cache"))
    assert list(again["track_id"]) == list(first["track_id"])
    assert np.allclose(again["embedding"], first["embedding"], atol=1e-6)


def test_a_long_file_is_classified_a_segment_at_a_time_as_it_would_be_whole(trained, tmp_path):
    """A 3-hour WAV decoded whole peaked at 7.7 GB: long files are decoded and classified in segments."""
    import soundfile as sf

    from genre.runtime.errors import AudioDecodeError

    root, cfg, metrics, _ = trained
    model = load_classifier(metrics["best_checkpoint"])
    rate = 44100                                     # resampled on the way, block by block
    t = np.arange(45 * rate) / rate
    song = 0.2 * np.sin(2 * np.pi * (220 + 200 * (t > 20)) * t) + 0.05 * np.sin(2 * np.pi * 3 * t) * np.sin(
        2 * np.pi * 880 * t)
    path = tmp_path / "long.wav"
    sf.write(str(path), np.stack([song, song], axis=1), rate)
    whole = dict(classify_file(model, path))
    segmented = dict(classify_file(model, path, long_file_seconds=10, segment_seconds=10))
    assert max(whole, key=whole.get) == max(segmented, key=segmented.get)
    assert all(abs(whole[g] - segmented[g]) < 0.05 for g in GENRES), (whole, segmented)
    assert sum(segmented.values()) == pytest.approx(1.0, abs=1e-5)
    silent = tmp_path / "long-silence.wav"
    sf.write(str(silent), np.zeros(30 * rate), rate)
    with pytest.raises(AudioDecodeError, match="silent"):
        classify_file(model, silent, long_file_seconds=10, segment_seconds=10)


def test_the_log_says_one_line_per_epoch(trained):
    """train.log held no per-epoch line: someone tailing it saw nothing for the whole training."""
    root, cfg, metrics, out = trained
    [log] = (root / "outputs" / "runs").glob("*/train.log")
    epochs = [line.split(" - ", 1)[-1] for line in log.read_text().splitlines() if "genre.models.module" in line]
    assert len(epochs) == cfg.trainer.max_epochs
    for number, line in enumerate(epochs, start=1):
        assert re.fullmatch(rf"epoch {number}/{cfg.trainer.max_epochs}  train/loss \d+\.\d{{3}}  val/loss \d+\.\d{{3}}  "
                            r"val/acc \d\.\d{3}  val/track_acc \d\.\d{3}  val/track_acc_best \d\.\d{3}", line), line


CLASSIFY_AND_LIST_IMPORTS = """
import sys
from genre.cli import evaluate
evaluate()
print(sorted(m for m in ("pytorch_lightning", "lightning", "mlflow", "h5py", "matplotlib") if m in sys.modules))
"""


def test_classifying_a_file_loads_neither_lightning_nor_mlflow_and_agrees_with_the_trained_module(trained, tmp_path):
    """evaluate.py audio= took 70 s for 0.08 s of work, 60 s of it imports: it needs the network alone."""
    from genre.assembly.predictor import load_predictor

    root, cfg, metrics, _ = trained
    song = write_tone(tmp_path / "song.wav", 7.0, sample_rate=44100, frequency=523.0)
    light = dict(classify_file(load_predictor(metrics["best_checkpoint"]), song))
    module = dict(classify_file(load_classifier(metrics["best_checkpoint"]), song))
    assert light.keys() == module.keys() and all(abs(light[g] - module[g]) < 1e-6 for g in GENRES)
    out = subprocess.run([sys.executable, "-c", CLASSIFY_AND_LIST_IMPORTS, f"ckpt_path={metrics['best_checkpoint']}",
                          f"audio={song}", f"paths.root_dir={root}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].endswith("song.wav:") and lines[-1] == "[]"


def test_the_tracks_like_a_song_mostly_agree_with_what_the_classifier_says_of_it(tmp_path):
    """similar=5 on a song predicted "classical 88.6 %" listed five reggae tracks: the neighbours must be
    found in the classifier's own embedding (same normalisation, windows and layer). On a model trained
    a little longer than the shared tiny run, the 5 nearest training tracks of most test tracks have the
    genre the classifier predicts (the default run: 93 %, README)."""
    from genre.evaluate import corpus_embeddings, neighbour_agreement
    from genre.train import train

    cfg = compose_config("train", tiny_overrides(**{"dataset.tracks_per_genre": 10, "trainer.max_epochs": 12,
                                                    "clips.train_clips_per_track": 4,
                                                    "callbacks.early_stopping.patience": 20,
                                                    "logger.system_metrics": "false"}), tmp_path)
    metrics = train(cfg)
    model = load_classifier(metrics["best_checkpoint"])
    corpus = corpus_embeddings(model, metrics["best_checkpoint"], str(tmp_path / "cache"))
    assert neighbour_agreement(corpus, k=5) > 0.5                # most test tracks
    # a corpus track given as a song finds itself first: the song is embedded as the corpus is
    song = next((tmp_path / "data").rglob("reggae.00001.au"))
    [(track_id, _, _, distance)] = similar_tracks(model, song, corpus, 1)
    assert track_id.endswith("reggae.00001") and abs(distance) < 1e-4

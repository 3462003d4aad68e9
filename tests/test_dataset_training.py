"""Short training runs on real-format fixtures with the damaged files real copies contain."""
import csv
import io

import mlflow
import pytest
import soundfile as sf
from test_datasets import fma_tree

from conftest import compose_config, tiny_overrides, write_tone
from genre.datasets.gtzan import gtzan_filtered_lists
from genre.datasets.music_generator import render_track
from genre.train import train

pytestmark = pytest.mark.slow


def skipped_rows(root, run_id):
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    run = mlflow.get_run(run_id)
    text = open(mlflow.MlflowClient().download_artifacts(run_id, "skipped_files.csv")).read()
    return run, {row["path"].rsplit("/", 1)[-1]: row["reason"] for row in csv.DictReader(io.StringIO(text))}


def short_run(root, dataset_overrides):
    overrides = tiny_overrides(**{"trainer.max_epochs": 1, "clips.clip_seconds": 2.0})
    overrides = [o for o in overrides if not o.startswith("dataset.")] + dataset_overrides
    return train(compose_config("train", overrides, root))


def test_gtzan_kaggle_copy_with_its_unreadable_jazz_00054(tmp_path):
    genres = ["classical", "jazz"]
    folder = tmp_path / "gtzan" / "Data" / "genres_original"
    listed = [i for ids in gtzan_filtered_lists().values() for i in ids if i.split(".")[0] in genres]
    for track_id in listed:
        genre, number = track_id.split(".")
        path = folder / genre / f"{track_id}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), render_track(genre, int(number), 0, 4.0, 22050), 22050, subtype="PCM_16")
    (folder / "jazz" / "jazz.00054.wav").write_bytes(b"\xff\xfb" * 4000)   # not a RIFF file, as on Kaggle
    metrics = short_run(tmp_path, ["dataset=gtzan", f"dataset.root={tmp_path / 'gtzan'}",
                                   "dataset.genres=[classical,jazz]", "dataset.track_seconds=4.0"])
    run, skipped = skipped_rows(tmp_path, metrics["run_id"])
    assert run.data.tags["split_protocol"] == "gtzan-fault-filtered(Kereliuk-Sturm-Larsen-2015,443/197/290)"
    assert list(skipped) == ["jazz.00054.wav"] and "unreadable" in skipped["jazz.00054.wav"]
    assert run.data.tags["skipped_files"] == "1"
    assert 0.0 <= metrics["test/track_acc"] <= 1.0


def test_fma_with_its_short_and_empty_mp3s(tmp_path):
    rows = [(tid, split, "small", genre) for genre, base in (("Hip-Hop", 100), ("Rock", 200), ("Pop", 300))
            for tid, split in ((base, "training"), (base + 1, "training"), (base + 2, "validation"),
                               (base + 3, "test"))]
    rows += [(98565, "training", "small", "Pop"), (133297, "training", "small", "Rock")]
    audio = {tid: 4.0 for tid, *_ in rows}
    audio.update({98565: 1.6, 133297: 0.0, 101: 3.0})  # 1.6 s and 0 s, as FMA's; one 3-s track is padded
    root = fma_tree(tmp_path / "fma", rows, audio)
    metrics = short_run(tmp_path, ["dataset=fma", f"dataset.root={root}", "dataset.track_seconds=4.0"])
    run, skipped = skipped_rows(tmp_path, metrics["run_id"])
    assert run.data.tags["split_protocol"] == "fma-official-small(artist-conditional)"
    assert set(skipped) == {"098565.mp3", "133297.mp3"}
    assert "too short: 1.60 s" in skipped["098565.mp3"] and "empty" in skipped["133297.mp3"]


def test_folder_of_mixed_formats_trains(tmp_path):
    for genre, frequency in (("ambient", 220.0), ("noise", 3000.0)):
        for n, (suffix, rate, channels) in enumerate([(".wav", 44100, 2), (".mp3", 48000, 2), (".flac", 16000, 1),
                                                      (".ogg", 22050, 1), (".au", 8000, 1)]):
            write_tone(tmp_path / "music" / genre / f"{n}{suffix}", 4.0, rate, frequency * (1 + n / 10), channels)
    metrics = short_run(tmp_path, ["dataset=folder", f"dataset.root={tmp_path / 'music'}",
                                   "dataset.track_seconds=4.0",
                                   "dataset.fractions={train: 0.6, val: 0.2, test: 0.2}"])
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    run = mlflow.get_run(metrics["run_id"])
    assert run.data.tags["dataset"] == "folder" and run.data.tags["skipped_files"] == "0"

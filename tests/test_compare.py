"""``python -m genre.compare`` averages only true replicates (issue: a 30-epoch run on 400 tracks and a
1-epoch sweep job on 60 tracks were averaged as "2 seeds (42, 42)": 48.3 ± 54.2 %)."""
import mlflow
import pytest

from genre.compare import group_runs, markdown

PROTOCOL = "random-stratified-by-track(train=0.7,val=0.15,test=0.15,seed=0)"


def log_run(client, experiment, seed, accuracy, output_dir, **settings):
    params = {"seed": seed, "model/_target_": "genre.models.cnn3.CNN3", "features/kind": "mel",
              "trainer/max_epochs": 30, "dataset/tracks_per_genre": 40, "optimizer/lr": 0.001,
              "clips/batch_size": 32, "paths/output_dir": output_dir, "logger/run_name": f"run-{output_dir}",
              "dataset/root": f"{output_dir}/data/synthetic", "clips/cache_workers": "None",
              "callbacks/best_checkpoint/dirpath": f"{output_dir}/checkpoints", **settings}
    run = client.create_run(experiment, tags={"seed": str(seed), "dataset": "synthetic", "features": "mel",
                                              "model": "cnn3", "split_protocol": PROTOCOL})
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    client.log_metric(run.info.run_id, "test/track_acc", accuracy)
    client.log_metric(run.info.run_id, "test/acc", accuracy)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@pytest.fixture
def store(tmp_path):
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    return client, client.create_experiment("genre", artifact_location=str(tmp_path / "artifacts"))


def runs_of(client, experiment):
    return client.search_runs([experiment])


def test_unrelated_runs_are_never_averaged(store):
    client, experiment = store
    log_run(client, experiment, 42, 0.88, "/out/a")                                   # 30 epochs, 400 tracks
    log_run(client, experiment, 42, 0.10, "/out/b", **{"trainer/max_epochs": 1, "dataset/tracks_per_genre": 6,
                                                       "clips/cache_workers": 2})     # a 1-epoch sweep job
    groups = group_runs(runs_of(client, experiment))
    assert len(groups) == 2
    assert sorted(g.mean_std("test/track_acc")[0] for g in groups) == pytest.approx([0.10, 0.88])
    assert all(g.mean_std("test/track_acc")[2] == 1 for g in groups)
    table = markdown("genre", None, groups)
    header = next(line for line in table.splitlines() if line.startswith("| run configuration"))
    # exactly the settings that differ between the rows, nothing run-local
    assert "dataset/tracks_per_genre" in header and "trainer/max_epochs" in header
    assert "paths/output_dir" not in header and "cache_workers" not in header and "optimizer/lr" not in header
    assert "48.3" not in table
    rows = [line for line in table.splitlines() if line.startswith("| cnn3")]
    assert rows and all("±" not in row for row in rows)       # one seed has no spread: none is shown
    assert any("88.0 %" in row for row in rows)


def test_replicates_are_averaged_over_distinct_seeds_and_repeats_are_flagged(store):
    client, experiment = store
    for seed, accuracy, out in ((1, 0.80, "/o/1"), (2, 0.90, "/o/2"), (2, 0.70, "/o/3"), (3, 0.85, "/o/4")):
        log_run(client, experiment, seed, accuracy, out)
    [group] = group_runs(runs_of(client, experiment))
    mean, std, n = group.mean_std("test/track_acc")
    per_seed = [0.80, 0.80, 0.85]        # seed 2 ran twice (0.90, 0.70): counted once, as their mean
    assert n == 3 and mean == pytest.approx(sum(per_seed) / 3)
    assert std == pytest.approx(float(__import__("numpy").std(per_seed, ddof=1)))
    row = next(line for line in markdown("genre", None, [group]).splitlines() if line.startswith("| cnn3"))
    assert "3 (1, 2, 3)" in row and "seed 2 repeated, counted once (not replicates)" in row


def test_every_run_gets_its_own_name_that_says_what_ran():
    """MLflow drew every run's name from Python's random, which the run's seed had just fixed."""
    import random

    from genre.assembly.build import compose_config
    from genre.train import run_name

    tags = {"model": "cnn3", "features": "mel", "dataset": "gtzan", "seed": "42"}
    cfg = compose_config("train", ["seed=42"])
    names = set()
    for _ in range(20):
        random.seed(42)                                   # what seed_everything does before the run starts
        names.add(run_name(cfg, tags))
    assert len(names) == 20 and all(name.startswith("cnn3-mel-gtzan-s42-") for name in names)
    assert run_name(cfg, {**tags, "sweep_job": "3"}).startswith("cnn3-mel-gtzan-s42-j3-")
    assert run_name(compose_config("train", ["logger.run_name=baseline"]), tags) == "baseline"


@pytest.mark.slow
def test_classical_baselines_run_like_any_model_and_share_the_table(tmp_path):
    """``-m model=cnn3,svm,...``: the same data, split protocol, metric names, artifacts and table."""
    import h5py
    import numpy as np

    from conftest import compose_config, tiny_overrides
    from genre.assembly.build import compose_config as compose
    from genre.compare import compare
    from genre.models.classical import track_statistics
    from genre.train import train

    def overrides(model):   # the network's sizes only for the network
        return [o for o in tiny_overrides(**{"trainer.max_epochs": 2, "paths.output_dir": tmp_path / model})
                if model == "cnn3" or not o.startswith("model.")] + [f"model={model}"]

    results = {model: train(compose_config("train", overrides(model), tmp_path))
               for model in ("cnn3", "knn", "svm", "logreg", "tree", "naive_bayes")}
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    deep = client.get_run(results["cnn3"]["run_id"])
    for model in ("knn", "svm", "logreg", "tree", "naive_bayes"):
        run = client.get_run(results[model]["run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["model"] == model
        assert run.data.tags["split_protocol"] == deep.data.tags["split_protocol"]
        assert {k for k in deep.data.metrics if k.startswith("test/") and "_knn_" not in k and "silhouette" not in k} \
            <= set(run.data.metrics)
        assert 0.0 <= run.data.metrics["test/track_acc"] <= 1.0 and "val/track_acc_best" in run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"confusion_matrix_track.png", "classification_report_track.txt", "config.yaml"} <= artifacts

    # the statistics are each band's mean and spread over the track, as the docstring says
    from genre.assembly.build import build_frontend, prepare_data
    cfg = compose_config("train", tiny_overrides(), tmp_path)
    data = prepare_data(cfg, build_frontend(cfg.features))
    with h5py.File(data.features.path) as f:
        first = f["features"][data.rows["test"][0]]
    np.testing.assert_allclose(track_statistics(data, "test")[0], np.concatenate([first.mean(1), first.std(1)]),
                               rtol=1e-5)

    report = compare(compose("train", [f"paths.root_dir={tmp_path}"]), tmp_path / "report")
    assert {g.model for g in report["groups"]} == {"cnn3", "knn", "svm", "logreg", "tree", "naive_bayes"}
    assert report["markdown"].count("## Split protocol") == 1           # one table, all six models


def test_svm_probabilities_need_no_deprecated_setting_and_work_with_few_tracks_per_genre():
    # scikit-learn 1.9 deprecates SVC(probability=True) (gone in 1.11): the svm baseline calibrates an
    # SVC by cross-validation instead, with as many folds as its smallest genre allows (up to 5)
    import warnings

    import numpy as np
    from omegaconf import OmegaConf

    from genre.models.classical import build_estimator, fit_estimator

    cfg = OmegaConf.load(__import__("genre").__path__[0] + "/conf/model/svm.yaml")
    rng = np.random.default_rng(0)
    for per_genre in (3, 20):                     # the tiny corpora of tests and quick trials; a real one
        y = np.repeat(np.arange(4), per_genre)
        x = rng.normal(size=(len(y), 6)) + 3 * np.eye(4, 6)[y]
        pipeline = build_estimator(cfg, seed=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # no FutureWarning, no fold warnings
            fit_estimator(pipeline, x, y)
            probabilities = pipeline.predict_proba(x)
        assert probabilities.shape == (len(y), 4)
        np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-6)
        assert (pipeline.predict(x) == y).mean() > 0.7   # well-separated genres are learned


def test_the_chart_says_vs_published_only_when_published_numbers_are_drawn(store):
    from omegaconf import OmegaConf

    from genre.compare import bar_chart

    client, experiment = store
    log_run(client, experiment, 1, 0.8, "/o/1")
    groups = group_runs(runs_of(client, experiment))
    assert "vs published" not in bar_chart("genre", None, groups).axes[0].get_title()
    reference = OmegaConf.create({"published": [{"label": "paper", "accuracy": 60.0, "level": "track"}]})
    assert "vs published" in bar_chart("genre", reference, groups).axes[0].get_title()

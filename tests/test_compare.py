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
              "dataset/root": f"{output_dir}/data/synthetic", "clips/cache_workers": "None", **settings}
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

    from genre.build import compose_config
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

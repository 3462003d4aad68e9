import numpy as np
import pytest
import torch

from conftest import compose_config, tiny_overrides
from genre.assembly.build import build_frontend, prepare_data
from genre.data.datamodule import GenreDataModule
from genre.train import train


def test_clips_respect_splits_and_workers_read_the_same_clips(tmp_path):
    cfg = compose_config("train", tiny_overrides(), tmp_path)
    data = prepare_data(cfg, build_frontend(cfg.features))
    ids = {split: set(data.track_ids[split]) for split in ("train", "val", "test")}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"] and not ids["val"] & ids["test"]
    assert sum(map(len, ids.values())) == 4 * 6
    assert data.band_mean.shape == (cfg.features.n_mels,) and (data.band_std > 0).all()

    batches = {}
    for workers in (0, 2):   # workers open the HDF5 file themselves, after the fork
        loader = GenreDataModule(data, batch_size=5, num_workers=workers, resident=False).test_dataloader()
        batches[workers] = list(loader)
    assert len(batches[0]) == len(batches[2])
    for first, second in zip(batches[0], batches[2], strict=True):
        assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    x, y, track, clip = batches[0][0]
    assert x.shape[1:] == (1, cfg.features.n_mels, data.clip_frames)
    # every test track is covered by ceil(n_frames / clip_frames) windows
    all_tracks = torch.cat([t for _, _, t, _ in batches[0]])
    assert torch.equal(torch.cat([c for *_, c in batches[0]]), torch.arange(len(all_tracks)))
    assert torch.bincount(all_tracks).tolist() == [-(-data.n_frames // data.clip_frames)] * len(ids["test"])

    train_x, train_y = next(iter(GenreDataModule(data, batch_size=64, resident=False).train_dataloader()))
    assert len(train_y) == len(ids["train"]) and train_x.shape[-1] == data.clip_frames


def _batches(loader):
    return [tuple(t.cpu() if isinstance(t, torch.Tensor) else torch.as_tensor(t) for t in batch) for batch in loader]


def _same(first, second):
    return len(first) == len(second) and all(
        len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b, strict=True)) for a, b in zip(first, second, strict=True))


def test_resident_and_cache_paths_cut_the_same_clips_for_the_same_seed(tmp_path):
    cfg = compose_config("train", tiny_overrides(), tmp_path)
    data = prepare_data(cfg, build_frontend(cfg.features))
    modules = {path: GenreDataModule(data, batch_size=5, seed=7, resident=path == "resident")
               for path in ("resident", "cache")}
    for module in modules.values():
        module.setup("fit")
    assert modules["resident"].path_taken == "resident" and modules["cache"].path_taken == "cache"
    assert not isinstance(modules["resident"].train_dataloader(), torch.utils.data.DataLoader)
    for split in ("val", "test"):
        assert _same(*(_batches(m.windows_dataloader(split)) for m in modules.values()))
    resident_epoch, cache_epoch = (_batches(m.train_dataloader()) for m in modules.values())
    assert _same(resident_epoch, cache_epoch)
    x, y = resident_epoch[0]
    assert x.shape[1:] == (1, cfg.features.n_mels, data.clip_frames) and x.dtype == torch.float32
    # every training track once per epoch, in an order and with crops drawn from (seed, epoch) alone
    assert sorted(torch.cat([y for _, y in resident_epoch]).tolist()) == sorted(data.labels["train"])
    torch.manual_seed(0)
    again = _batches(GenreDataModule(data, batch_size=5, seed=7, resident=True).train_dataloader())
    assert _same(again, resident_epoch)
    other_seed = _batches(GenreDataModule(data, batch_size=5, seed=8, resident=True).train_dataloader())
    assert not _same(other_seed, resident_epoch)
    # a crop is the cached row's frames at its start: check one against the file
    import h5py

    from genre.data.clips import train_plan
    plan = train_plan(np.arange(len(data.rows["train"])), 1, data.n_frames - data.clip_frames, seed=7, epoch=0)
    with h5py.File(data.features.path, "r") as f:
        expected = f["features"][data.rows["train"][plan.position[0]], :, plan.start[0]:plan.start[0] + data.clip_frames]
    assert np.array_equal(x[0, 0].numpy(), expected)


def test_each_epoch_gets_new_crops_drawn_from_seed_and_epoch_alone():
    from genre.data.clips import train_plan
    positions = np.arange(10)
    first, second = (train_plan(positions, 2, 100, seed=1, epoch=e) for e in (0, 1))
    assert sorted(first.position.tolist()) == sorted(np.tile(positions, 2).tolist())
    assert not np.array_equal(first.start, second.start)
    assert np.array_equal(train_plan(positions, 2, 100, seed=1, epoch=1).start, second.start)


def test_processes_own_equal_shares_that_cover_every_track():
    from genre.data.clips import owned_positions, window_plan
    for n, world in ((10, 1), (10, 3), (7, 2), (2, 4)):
        shares = [owned_positions(n, rank, world) for rank in range(world)]
        assert len({len(s) for s in shares}) == 1                       # same number of steps everywhere
        assert set(np.concatenate(shares).tolist()) == set(range(n))     # nobody's track is left out
    # a padded repeat keeps its clip index, so gathered outputs count each clip once
    plans = [window_plan(owned_positions(3, rank, 2), 10, 4) for rank in range(2)]
    clips = np.concatenate([p.clip for p in plans])
    assert sorted(set(clips.tolist())) == list(range(9)) and len(clips) == 12


def test_two_processes_cut_the_same_clips_on_either_path_and_together_see_every_track(tmp_path):
    # DDP: each process builds its data module under its own rank; the HDF5 path and the resident path
    # must give each rank the same batches, and the ranks together every training track each epoch
    from types import SimpleNamespace
    cfg = compose_config("train", tiny_overrides(), tmp_path)
    data = prepare_data(cfg, build_frontend(cfg.features))
    epochs = {}
    for rank in range(2):
        trainer = SimpleNamespace(global_rank=rank, world_size=2, num_nodes=1, current_epoch=0,
                                  strategy=SimpleNamespace(root_device=torch.device("cpu")))
        for path in ("resident", "cache"):
            module = GenreDataModule(data, batch_size=3, seed=7, resident=path == "resident")
            module.trainer = trainer
            module.setup("fit")
            assert module.path_taken == path and "per process" in module.path_reason
            for epoch in range(2):
                trainer.current_epoch = epoch
                epochs[rank, path, epoch] = _batches(module.train_dataloader())
            epochs[rank, path, "test"] = _batches(module.windows_dataloader("test"))
    for rank in range(2):
        for key in (0, 1, "test"):
            assert _same(epochs[rank, "resident", key], epochs[rank, "cache", key])
    for epoch in range(2):
        labels = [torch.cat([y for _, y in epochs[rank, "cache", epoch]]) for rank in range(2)]
        assert len(labels[0]) == len(labels[1]) == (len(data.labels["train"]) + 1) // 2   # equal steps
        # with an even number of tracks nobody's is repeated: the two shares are the training set
        assert len(data.labels["train"]) % 2 == 0
        assert sorted(torch.cat(labels).tolist()) == sorted(data.labels["train"])
    assert not _same(epochs[0, "cache", 0], epochs[1, "cache", 0])        # each rank its own share
    assert not _same(epochs[0, "cache", 0], epochs[0, "cache", 1])        # and new crops each epoch


def test_auto_holds_the_rows_only_when_they_fit(tmp_path, caplog):
    from genre.data.datamodule import choose_resident
    assert choose_resident("auto", 10, 10) and not choose_resident("auto", 11, 10)
    assert choose_resident(True, 11, 10) and not choose_resident(False, 1, 10)
    cfg = compose_config("train", tiny_overrides(), tmp_path)
    data = prepare_data(cfg, build_frontend(cfg.features))
    fits, too_big = (GenreDataModule(data, batch_size=5, memory_share=share) for share in (0.5, 1e-12))
    with caplog.at_level("INFO"):
        fits.setup("fit")
        too_big.setup("fit")
    assert fits.path_taken == "resident" and too_big.path_taken == "cache"
    assert isinstance(too_big.train_dataloader(), torch.utils.data.DataLoader)
    assert "held in RAM" in fits.path_reason and "over 0% of RAM" in too_big.path_reason
    assert fits.path_reason in caplog.text


@pytest.mark.slow
def test_a_run_ends_with_the_same_metrics_on_either_path_and_says_which_it_took(tmp_path):
    import mlflow
    metrics, runs = {}, {}
    for path in ("true", "false"):
        root = tmp_path / path
        result = train(compose_config("train", tiny_overrides(**{"clips.resident": path, "trainer.max_epochs": 2}),
                                      root))
        metrics[path] = {k: v for k, v in result.items() if "/" in k}
        runs[path] = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db").get_run(result["run_id"])
    assert runs["true"].data.tags["clip_path"] == "resident" and runs["false"].data.tags["clip_path"] == "cache"
    assert metrics["true"].keys() == metrics["false"].keys() and "test/track_acc" in metrics["true"]
    for key, value in metrics["true"].items():
        assert value == pytest.approx(metrics["false"][key], abs=1e-6), key

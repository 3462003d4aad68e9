import torch

from genre.data.datamodule import GenreDataModule
from genre.build import build_frontend, prepare_data

from conftest import compose_config, tiny_overrides


def test_clips_respect_splits_and_workers_read_the_same_clips(tmp_path):
    cfg = compose_config("train", tiny_overrides(), tmp_path)
    data = prepare_data(cfg, build_frontend(cfg.features))
    ids = {split: set(data.track_ids[split]) for split in ("train", "val", "test")}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"] and not ids["val"] & ids["test"]
    assert sum(map(len, ids.values())) == 4 * 6
    assert data.band_mean.shape == (cfg.features.n_mels,) and (data.band_std > 0).all()

    batches = {}
    for workers in (0, 2):   # workers open the HDF5 file themselves, after the fork
        loader = GenreDataModule(data, batch_size=5, num_workers=workers).test_dataloader()
        batches[workers] = list(loader)
    assert len(batches[0]) == len(batches[2])
    for first, second in zip(batches[0], batches[2]):
        assert all(torch.equal(a, b) for a, b in zip(first, second))
    x, y, track, clip = batches[0][0]
    assert x.shape[1:] == (1, cfg.features.n_mels, data.clip_frames)
    # every test track is covered by ceil(n_frames / clip_frames) windows
    all_tracks = torch.cat([t for _, _, t, _ in batches[0]])
    assert torch.equal(torch.cat([c for *_, c in batches[0]]), torch.arange(len(all_tracks)))
    assert torch.bincount(all_tracks).tolist() == [-(-data.n_frames // data.clip_frames)] * len(ids["test"])

    train_x, train_y = next(iter(GenreDataModule(data, batch_size=64).train_dataloader()))
    assert len(train_y) == len(ids["train"]) and train_x.shape[-1] == data.clip_frames

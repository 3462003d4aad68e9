"""A resumed run continues the same run: the same random draws as if it had never stopped, and every
metric once per step, wherever in an epoch it was killed (issue: resumed epochs replayed epoch 0's crops
and order; a kill between an epoch's metrics and its last.ckpt logged that epoch twice)."""
import warnings
from collections import Counter

import mlflow
import pytest

from conftest import compose_config, tiny_overrides
from genre.train import train

pytestmark = pytest.mark.slow
EPOCHS = 5
# every epoch's latest state is kept as epoch-N.ckpt: a resume from epoch-N.ckpt of a run that went on
# is exactly a run killed after epoch N+1's metrics reached the store but before its checkpoint
KEEP_EVERY_EPOCH = ["callbacks.last_checkpoint.filename='epoch-{epoch}'", "callbacks.last_checkpoint.save_top_k=-1",
                    "++callbacks.last_checkpoint.auto_insert_metric_name=false",
                    f"trainer.max_epochs={EPOCHS}", "callbacks.early_stopping.patience=99",
                    "clips.train_clips_per_track=2", "model.dropout=0.5"]


def metric_histories(root, run_id):
    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    run = client.get_run(run_id)
    return {key: [(m.step, None if m.value != m.value else m.value)        # NaN (k-NN on tiny test sets) as None
                  for m in client.get_metric_history(run_id, key)] for key in run.data.metrics}


def test_resuming_anywhere_gives_the_uninterrupted_run_and_logs_each_metric_once(tmp_path):
    cfg = compose_config("train", tiny_overrides() + KEEP_EVERY_EPOCH, tmp_path)
    uninterrupted = train(cfg)
    checkpoints = cfg.paths.output_dir + "/checkpoints"
    first = metric_histories(tmp_path, uninterrupted["run_id"])
    assert len(first["val/track_acc"]) == EPOCHS

    for epoch in (0, 2, 3):                       # killed in epoch 1, 3 and 4
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resumed = train(compose_config("train", tiny_overrides() + KEEP_EVERY_EPOCH +
                                           [f"ckpt_path={checkpoints}/epoch-{epoch}.ckpt"], tmp_path))
        assert resumed["run_id"] == uninterrupted["run_id"]
        # a resume continues in its own checkpoint folder: Lightning's "exists and is not empty" is no news
        assert [str(w.message) for w in caught if "Checkpoint directory" in str(w.message)] == []
        for key in ("train/loss", "val/loss", "val/track_acc", "test/acc", "test/track_acc"):
            assert resumed[key] == pytest.approx(uninterrupted[key], abs=1e-6), (epoch, key)
        histories = metric_histories(tmp_path, uninterrupted["run_id"])
        for key, history in histories.items():
            repeated = [step for step, count in Counter(step for step, _ in history).items() if count > 1]
            assert repeated == [], f"{key} logged twice at steps {repeated} after a resume from epoch {epoch}"
        assert histories == first

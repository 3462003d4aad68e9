"""The LightningModule: normalisation, loss, optimizer, clip and track metrics, track aggregation, inference
on audio. Built from the config in one step by :func:`genre.assembly.build.build_classifier`."""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.trainer.states import TrainerFn
from torch import nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.functional.classification import multiclass_f1_score

from genre.data.augment import Augment
from genre.features import FrontEnd
from genre.models.inference import (
    aggregate_tracks,
    aggregate_windows,
    cut_windows,
    waveform_clips,
    waveform_features,
    window_probabilities,
    window_starts,
)
from genre.models.predictor import ClipClassifier, Normalize
from genre.models.results import TestResults
from genre.runtime.errors import ConfigError, TrainingDiverged
from genre.runtime.settings import AGGREGATIONS
from genre.tracking.checkpoints import random_states, restore_random_states

log = logging.getLogger(__name__)


class GenreClassifier(pl.LightningModule):
    """Trains ``net`` on normalised feature clips and scores it clip by clip and track by track.

    Logged metrics: ``train/loss``, ``train/acc``; ``val/loss``, ``val/acc`` (clip), ``val/track_acc``,
    ``val/track_acc_best``; ``test/loss``, ``test/acc``, ``test/track_acc``, ``test/macro_f1`` (track
    level). :func:`tested` runs ``trainer.test`` and returns the per-clip and per-track predictions and the
    per-track embeddings (:class:`~genre.models.results.TestResults`) for the reports and plots.
    """

    def __init__(self, net: nn.Module, frontend: FrontEnd, genres: list[str], clip_frames: int,
                 optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
                 scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
                 aggregation: str = "mean", band_mean: np.ndarray | None = None, band_std: np.ndarray | None = None,
                 run_info: dict | None = None, augment: Augment | None = None, label_smoothing: float = 0.0,
                 divergence: dict | None = None):
        """``optimizer(params)`` and ``scheduler(optimizer)`` build them (``_partial_`` config nodes);
        ``band_mean``/``band_std`` ``(n_bands,)`` are the training split's statistics; ``run_info``
        (config, genres, run id, split protocol) is saved into every checkpoint; ``augment`` changes training
        batches (:mod:`genre.data.augment`); ``label_smoothing`` softens the training loss's targets;
        ``divergence`` (``factor``, ``steps``) says when a loss that runs away stops the run."""
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"clips.aggregation={aggregation!r}: choose one of {AGGREGATIONS}")
        # plain values only: Lightning loads checkpoints with weights_only=True, which refuses pickled callables
        self.save_hyperparameters(ignore=["net", "frontend", "optimizer", "scheduler", "band_mean", "band_std",
                                          "run_info", "augment"], logger=False)
        self.augment = augment
        self.label_smoothing = label_smoothing
        divergence = {"factor": 10.0, "steps": 10, **(divergence or {})}
        self.divergence_factor, self.divergence_steps = float(divergence["factor"]), int(divergence["steps"])
        self._loss_reference: float | None = None   # set by the first step (divergence)
        self._steps_above = 0
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.net = net
        self.frontend = frontend
        self.normalize = Normalize(frontend.n_bands)
        if band_mean is not None:
            self.normalize.set(band_mean, band_std)
        self.genres = list(genres)
        self.clip_frames = clip_frames
        self.aggregation = aggregation
        n_classes = len(genres)
        self.train_acc = MulticlassAccuracy(n_classes, average="micro")
        self.val_track_acc_best = MaxMetric()
        self.val_track_acc_best.persistent(True)   # in checkpoints: a resumed run keeps its best so far
        self.run_info = dict(run_info or {})
        self._tested: TestResults | None = None   # what the last test predicted, until test() returns it
        self._outputs: list[tuple[torch.Tensor, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        target = y
        if self.augment is not None:
            x, target = self.augment(x, y, len(self.genres), self.global_step)
        logits = self(x)
        loss = F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        self._check_divergence(loss)
        self.train_acc(logits, y if target is y else target.argmax(1))
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def _check_divergence(self, loss: torch.Tensor) -> None:
        """Stop a run whose loss is NaN or infinite, or has stayed above ``divergence.factor`` x its reference for
        ``divergence.steps`` steps running (``optimizer.lr=1e6`` grew it to 9e35 and the run ended FINISHED with a
        chance-level model). Under DDP the processes decide together, so that none waits for a stopped one."""
        value = float(loss.detach())
        finite = np.isfinite(value)
        if self._loss_reference is None and finite:
            # the loss before any update, at least chance level: what a run that learns stays below
            self._loss_reference = max(float(np.log(max(len(self.genres), 2))), value)
        reference = self._loss_reference or float("inf")
        self._steps_above = self._steps_above + 1 if finite and value > self.divergence_factor * reference else 0
        stop = not finite or self._steps_above >= self.divergence_steps
        if self._trainer is not None and self._trainer.world_size > 1:
            stop = self._trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        where = f"at epoch {self.current_epoch}, step {self.global_step}"
        if finite:
            why = (f"training diverged: the training loss is {value:.4g} {where}, above {self.divergence_factor:g} x "
                   f"its reference {reference:.3g} (the first step's loss, at least chance level) for "
                   f"{self._steps_above} steps running (divergence.factor, divergence.steps)")
        else:
            why = f"training diverged: the training loss is {value} {where}"
        # a diverged run must not go on to end FINISHED with an accuracy that means nothing
        raise TrainingDiverged(f"{why}; the run is marked FAILED. Lower the learning rate (optimizer.lr={lr}) or "
                               f"look for damaged audio")

    def on_train_epoch_end(self):
        """One line per epoch in the console and ``train.log``: someone tailing the log sees the run move. The
        epoch's metrics (train/loss reduced over the epoch and the processes) are Lightning's by now."""
        if not self.trainer.is_global_zero:
            return
        metrics = self.trainer.callback_metrics
        shown = "  ".join(f"{key} {float(metrics[key]):.3f}" for key in ("train/loss", "val/loss", "val/acc",
                                                                          "val/track_acc", "val/track_acc_best")
                          if key in metrics)
        log.info("epoch %d/%s  %s", self.current_epoch + 1, self.trainer.max_epochs, shown)

    def _evaluate_batch(self, batch, stage: str):
        x, y, track, clip = batch
        embedding = self.net.embed(self.normalize(x))
        logits = self.net.head(embedding)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), on_step=False, on_epoch=True, sync_dist=True)
        self._outputs.append((logits.softmax(-1).detach(), y, track, embedding.detach(), clip))

    def _gathered_outputs(self) -> tuple[torch.Tensor, ...]:
        """This epoch's clip outputs from every process, each clip once, in clip order."""
        parts = [torch.cat(column) for column in zip(*self._outputs, strict=True)]
        self._outputs = []
        if self.trainer.world_size > 1:
            parts = [self.all_gather(part).flatten(0, 1) for part in parts]
        clip = parts[-1]
        order = torch.argsort(clip)
        keep = torch.ones_like(order, dtype=torch.bool)
        keep[1:] = clip[order][1:] != clip[order][:-1]
        return tuple(part[order][keep] for part in parts[:-1])

    def _track_results(self) -> dict:
        probs, y, track, embedding = self._gathered_outputs()
        tracks, track_scores = aggregate_tracks(probs.float(), track, self.aggregation)
        _, track_embedding = aggregate_tracks(embedding.float(), track, "mean")
        track_true = torch.zeros_like(tracks).scatter_(0, torch.searchsorted(tracks, track), y)
        track_pred = track_scores.argmax(1)
        clip_pred = probs.argmax(1)
        return {"clip_true": y.cpu().numpy(), "clip_pred": clip_pred.cpu().numpy(),
                "track": tracks.cpu().numpy(), "track_true": track_true.cpu().numpy(),
                "track_pred": track_pred.cpu().numpy(), "track_scores": track_scores.cpu().numpy(),
                "track_embedding": track_embedding.cpu().numpy(),
                "acc": (clip_pred == y).float().mean(), "track_acc": (track_pred == track_true).float().mean()}

    def on_validation_epoch_start(self):
        self._outputs = []

    def validation_step(self, batch, batch_idx):
        self._evaluate_batch(batch, "val")

    def on_validation_epoch_end(self):
        results = self._track_results()
        if self.trainer.sanity_checking:  # a couple of batches: no accuracy worth keeping
            return
        self.val_track_acc_best(results["track_acc"])
        self.log("val/acc", results["acc"], prog_bar=True)
        self.log("val/track_acc", results["track_acc"], prog_bar=True)
        self.log("val/track_acc_best", self.val_track_acc_best.compute())

    def on_test_epoch_start(self):
        self._outputs = []

    def test_step(self, batch, batch_idx):
        self._evaluate_batch(batch, "test")

    def on_test_epoch_end(self):
        results = self._track_results()
        f1 = multiclass_f1_score(torch.as_tensor(results["track_pred"]), torch.as_tensor(results["track_true"]),
                                 num_classes=len(self.genres), average=None)
        self.log("test/acc", results["acc"])
        self.log("test/track_acc", results["track_acc"])
        self.log("test/macro_f1", f1.mean())
        # per genre: a table and the classification report (genre.tracking.report), not ten one-dot charts
        self._tested = TestResults(clip_true=results["clip_true"], clip_pred=results["clip_pred"],
                                   track_true=results["track_true"], track_pred=results["track_pred"],
                                   track_scores=results["track_scores"], track_embedding=results["track_embedding"])

    def configure_optimizers(self):
        # a network whose parts learn at rates of their own (a trained encoder) names its parameter groups
        params = self.net.param_groups() if hasattr(self.net, "param_groups") else self.parameters()
        optimizer = self.optimizer_factory(params=params)
        for group in optimizer.param_groups:   # a group's rate relative to the optimizer's (before any schedule)
            group["lr"] *= group.get("lr_scale", 1.0)
        if self.scheduler_factory is None:
            return optimizer
        target = getattr(self.scheduler_factory, "func", self.scheduler_factory)
        if "total_steps" in inspect.signature(target).parameters:   # genre.models.schedules: stepped per batch
            scheduler = self.scheduler_factory(optimizer=optimizer,
                                               total_steps=int(self.trainer.estimated_stepping_batches))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        scheduler = {"scheduler": self.scheduler_factory(optimizer=optimizer), "interval": "epoch"}
        if isinstance(scheduler["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler["monitor"] = "val/track_acc"   # scheduler=plateau: on what the best checkpoint is chosen by
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if getattr(self.frontend, "weights_outside_checkpoints", False):
            # a frozen pretrained encoder: its weights are named by the run's config (hub id and the commit it
            # resolved to, or encoder.path), not copied into every checkpoint (MERT-330M: 1.3 GB each)
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                        if not k.startswith("frontend.")}
        checkpoint["genre"] = self.run_info
        checkpoint["random_states"] = random_states()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A resumed fit draws what the uninterrupted run would have drawn from here on. Restored now:
        # Lightning creates a restarted run's training iterator (which draws its seed) before any
        # training hook; the resumed run skips the sanity check, whose draws the uninterrupted run did
        # not make here (genre.train). Loading a checkpoint to test or evaluate changes nothing.
        if checkpoint.get("random_states") and self._trainer is not None and \
                self.trainer.state.fn == TrainerFn.FITTING:
            restore_random_states(checkpoint["random_states"])

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Strict as ever; a frozen encoder's weights, which checkpoints leave out, are the ones it was built with."""
        if getattr(self.frontend, "weights_outside_checkpoints", False):
            state_dict = {**{f"frontend.{k}": v for k, v in self.frontend.state_dict().items()}, **state_dict}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def export(self) -> ClipClassifier:
        """The trained network with its normalisation, for MLflow and other consumers."""
        return ClipClassifier(self.normalize, self.net).eval()

    def classify_waveform(self, waveform: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Genre scores ``(n_genres,)`` of a whole mono waveform at the front end's sample rate: windows
        covering it, each classified, aggregated as in evaluation (:func:`genre.models.inference.classify_waveform`,
        the code the logged MLflow model runs)."""
        return aggregate_windows(self.window_probabilities(waveform, batch_size), self.aggregation)

    def window_probabilities(self, waveform: np.ndarray, batch_size: int = 32) -> torch.Tensor:
        """The genre probabilities ``(n_windows, n_genres)`` of each window covering ``waveform`` (what
        :meth:`classify_waveform` aggregates); a long file is classified segment by segment with these."""
        self.eval()
        return window_probabilities(waveform, self.frontend, lambda clips: self(clips).softmax(-1), self.clip_frames,
                                    self.frontend.hop_length, batch_size, self.normalize.mean.device)

    @torch.no_grad()
    def analyse_waveform(self, waveform: np.ndarray, batch_size: int = 32) -> WaveformAnalysis:
        """Everything a person looking at one song is shown, from one pass of the front end and one of the network:
        its features, its windows' probabilities and the track's scores (as :meth:`classify_waveform` gives them:
        ``forward`` is ``head(embed(x))``, batch by batch alike), and its learned embedding (as
        :meth:`embed_waveform`, the mean of the windows' embeddings)."""
        self.eval()
        device = self.normalize.mean.device
        features = waveform_features(waveform, self.frontend, self.clip_frames, self.frontend.hop_length, device)
        clips = cut_windows(features, self.clip_frames)
        embedded = [self.net.embed(self.normalize(clips[i:i + batch_size])) for i in range(0, len(clips), batch_size)]
        probabilities = torch.cat([self.net.head(part).softmax(-1) for part in embedded])
        return WaveformAnalysis(features.cpu().numpy(), window_starts(features.shape[-1], self.clip_frames),
                                probabilities.cpu().numpy(), aggregate_windows(probabilities, self.aggregation),
                                torch.cat(embedded).mean(0).cpu().numpy())

    @torch.no_grad()
    def embed_clips(self, clips: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """The learned embedding of a track from its clips ``(n, 1, n_bands, clip_frames)``: the mean of the
        clips' embeddings, as the run's t-SNE plots and separation scores take it."""
        self.eval()
        parts = [self.net.embed(self.normalize(clips[i:i + batch_size])) for i in range(0, len(clips), batch_size)]
        return torch.cat(parts).mean(0).cpu().numpy()

    def embed_waveform(self, waveform: np.ndarray) -> np.ndarray:
        """The learned embedding of a whole mono waveform: its windows (as :meth:`classify_waveform`), embedded."""
        return self.embed_clips(waveform_clips(waveform, self.frontend, self.clip_frames, self.frontend.hop_length,
                                               self.normalize.mean.device))


@dataclass
class WaveformAnalysis:
    """One song as :meth:`GenreClassifier.analyse_waveform` sees it."""

    features: np.ndarray            # (n_bands, n_frames), the front end's output, frames hop_length samples apart
    starts: np.ndarray              # (n_windows,) first frame of each window (clip_frames long)
    probabilities: np.ndarray       # (n_windows, n_genres)
    scores: np.ndarray              # (n_genres,), the windows aggregated as in evaluation
    embedding: np.ndarray           # (width,), the learned embedding (mean over the windows)


def tested(trainer: pl.Trainer, module: GenreClassifier, **test_kwargs) -> tuple[dict[str, float], TestResults | None]:
    """``trainer.test(module, **test_kwargs)``: its metrics, and the predictions it made (``None`` where the
    test ran in other processes, under ``ddp_spawn``)."""
    module._tested = None
    [raw] = trainer.test(module, **test_kwargs)
    results, module._tested = module._tested, None
    return {key: float(value) for key, value in raw.items()}, results

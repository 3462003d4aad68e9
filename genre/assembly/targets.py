"""Calling what a config names with ``_target_``, and only what genre builds.

A config reaches this module from ``conf/``, from the command line, from a checkpoint (its run's resolved
config) and from a run logged on a shared tracking server. A ``_target_`` is a dotted name that Hydra would
import and call with the node's settings, so a config of plain data could otherwise run any command
(``{"_target_": "os.system", "command": ...}``). Every target is therefore checked against
:data:`COMPONENTS`, genre's own components and the library classes the shipped configs name, before
anything is imported or called; anything else is a :class:`~genre.runtime.errors.ConfigError` that names the
setting. Light: the commands that only classify a file import it without Lightning or MLflow.

Adding a component (a network, a front end, a dataset) means adding its dotted name here
(``tests/test_config_targets.py`` checks that every ``_target_`` in ``conf/`` and ``experiments/`` is listed).
"""
from __future__ import annotations

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from genre.runtime.errors import ConfigError

COMPONENTS = frozenset({
    # dataset builders (genre.datasets)
    "genre.datasets.synthetic.build", "genre.datasets.gtzan.build", "genre.datasets.fma.build",
    "genre.datasets.msd.build", "genre.datasets.ismir2004.build", "genre.datasets.folder.build",
    # feature front ends and augmentation
    "genre.features.spectral.FeatureExtractor", "genre.features.encoders.Encoder", "genre.data.augment.Augment",
    # networks
    "genre.models.cnn3.CNN3", "genre.models.resnet.ShortChunkResNet", "genre.models.probe.Probe",
    # schedules
    "genre.models.schedules.warmup_cosine", "genre.models.schedules.one_cycle",
    # the torch optimizers and schedulers the configs name
    "torch.optim.Adam", "torch.optim.AdamW", "torch.optim.SGD", "torch.optim.RMSprop",
    "torch.optim.lr_scheduler.ReduceLROnPlateau", "torch.optim.lr_scheduler.CosineAnnealingLR",
    "torch.optim.lr_scheduler.StepLR", "torch.optim.lr_scheduler.OneCycleLR",
    # the trainer and its callbacks
    "pytorch_lightning.Trainer", "pytorch_lightning.callbacks.ModelCheckpoint",
    "pytorch_lightning.callbacks.EarlyStopping",
    # the classical baselines (genre.models.classical)
    "sklearn.neighbors.KNeighborsClassifier", "sklearn.svm.SVC", "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.linear_model.LogisticRegression", "sklearn.tree.DecisionTreeClassifier",
    "sklearn.naive_bayes.GaussianNB",
})


def check_targets(node, where: str = "") -> None:
    """Refuse (:class:`ConfigError`) the first ``_target_`` anywhere in ``node`` (a config, a dict or a list)
    that is not in :data:`COMPONENTS`, naming its setting; nothing is imported. ``where`` prefixes the
    setting's name for a node that is not a child of the whole config (``features`` for its own node)."""
    if isinstance(node, (DictConfig, ListConfig)):
        try:
            node = OmegaConf.to_container(node, resolve=True)   # a target given by interpolation is checked too
        except Exception:   # an unresolvable value elsewhere in the node (``???``): its targets as written
            node = OmegaConf.to_container(node, resolve=False)
    _check(node, where)


def _check(node, path: str) -> None:
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and str(target) not in COMPONENTS:
            setting = f"{path}._target_" if path else "_target_"
            raise ConfigError(
                f"{setting}={str(target)[:200]!r} is not a component genre builds: a config (a checkpoint's, a "
                f"logged run's or a file's) may name only genre's datasets, front ends, networks and schedules and "
                f"the optimizers, trainer callbacks and scikit-learn estimators of conf/ "
                f"(genre.assembly.targets.COMPONENTS); refusing to import or call it")
        for key, value in node.items():
            _check(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check(value, f"{path}[{i}]")


def _where(node) -> str:
    """The dotted name of ``node`` within its config (``features`` for ``cfg.features``), or ''."""
    if isinstance(node, DictConfig):
        full = node._get_full_key("_target_")
        return full.rsplit("._target_", 1)[0] if full.endswith("._target_") else ""
    return ""


def call_target(node: DictConfig, _leave_out: tuple[str, ...] = (), **extra):
    """``node._target_(**node, **extra)`` (without the keys in ``_leave_out``), once the target is known to be a
    component (:func:`check_targets`). Called directly: Hydra's ``instantiate`` would wrap a
    :class:`genre.runtime.errors.GenreError` (whose message is meant for the user) in its own exception."""
    check_targets(node, _where(node))
    settings = OmegaConf.to_container(node, resolve=True)
    for key in _leave_out:
        settings.pop(key, None)
    return hydra.utils.get_method(settings.pop("_target_"))(**settings, **extra)


def instantiate(node, **extra):
    """Hydra's ``instantiate`` (``_partial_``, nested targets), once every target in ``node`` is a component."""
    check_targets(node, _where(node))
    return hydra.utils.instantiate(node, **extra)


def build_network(model_cfg: DictConfig, input_shape: tuple[int, int], n_classes: int):
    """The network of ``model=...`` for clips of ``input_shape`` (bands, frames) and ``n_classes`` genres: the one
    place a network is built (training, a checkpoint's predictor, the benchmark). ``name`` names the run and
    ``meant_for`` lists the settings the network was designed with (``genre.shift`` applies them): neither is
    an argument of the network."""
    return call_target(model_cfg, _leave_out=("name", "meant_for"), input_shape=tuple(input_shape),
                       n_classes=n_classes)

"""genre: an experiment-tracked training framework for music genre classification.

One run, top to bottom: ``train.py`` (:mod:`genre.cli`) -> :func:`genre.train.train`, which builds
every object from the composed config (:mod:`genre.assembly.build`): the dataset index
(:mod:`genre.datasets`), the data pipeline (:mod:`genre.data`: audio cache, feature cache, clips), the
feature front end (:mod:`genre.features`), the network (:mod:`genre.models`) inside the
LightningModule (:mod:`genre.models.module`), and the MLflow run (:mod:`genre.tracking`).
"""
from pathlib import Path

from omegaconf import OmegaConf

# ${seconds:...}: a number of seconds as a name says it (6 and 6.0 both "6"), so that a folder named after a
# setting is the same folder whichever way the setting was typed (dataset.track_seconds=6 made a second corpus)
OmegaConf.register_new_resolver("seconds", lambda value: f"{float(value):g}", replace=True)

CONFIG_DIR = Path(__file__).resolve().parent / "conf"   # Hydra's conf/, shipped inside the package

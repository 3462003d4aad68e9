"""genre: an experiment-tracked training framework for music genre classification.

One run, top to bottom: ``train.py`` (:mod:`genre.cli`) -> :func:`genre.train.train`, which builds
every object from the composed config (:mod:`genre.assembly.build`): the dataset index
(:mod:`genre.datasets`), the data pipeline (:mod:`genre.data`: audio cache, feature cache, clips), the
feature front end (:mod:`genre.features`), the network (:mod:`genre.models`) inside the
LightningModule (:mod:`genre.models.module`), and the MLflow run (:mod:`genre.tracking`).
"""
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "conf"   # Hydra's conf/, shipped inside the package

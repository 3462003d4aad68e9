"""Configs turned into objects: the one place that does it, above the wings it assembles (``genre.data``,
``genre.datasets``, ``genre.features``, ``genre.models``), with what every assembly checks first.

- :mod:`~genre.assembly.targets`: calling what a config names with ``_target_``, and only genre's components
  (the allow-list: a checkpoint's or a logged run's config of plain data runs no code).
- :mod:`~genre.assembly.build`: every object of a run from the composed config (training and evaluation).
- :mod:`~genre.assembly.predictor`: a checkpoint's predictor, light, for classifying a file.
"""

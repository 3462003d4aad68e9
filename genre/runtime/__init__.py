"""What every command runs on, light enough to import before any torch, data or MLflow.

- :mod:`~genre.runtime.errors`: what "the input or the settings are wrong" looks like, and each command's way out.
- :mod:`~genre.runtime.signals`: one rule for SIGINT and SIGTERM in every phase.
- :mod:`~genre.runtime.settings`: every range checked once, right after composition.
- :mod:`~genre.runtime.parallel`: one function over many jobs on every core, and the file lock parallel runs share.
- :mod:`~genre.runtime.console`: third-party noise silenced, MLflow's lines in the project's format.
- :mod:`~genre.runtime.hydra_callbacks` and :mod:`~genre.runtime.launcher`: Hydra's side (work before a run
  or a sweep starts; ``hydra/launcher=parallel``).
"""

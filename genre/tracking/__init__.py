"""MLflow tracking: where runs go and what a run reports.

- :mod:`~genre.tracking.store`: the store (sqlite or a server), the logger that survives a lost server, the
  sweep's store set-up; :mod:`~genre.tracking.unsent`: the file that logger keeps refused metrics in.
- :mod:`~genre.tracking.report`: what a run records (confusion matrices, reports, plots, the model), from
  :mod:`~genre.tracking.plots` and :mod:`~genre.tracking.separation`.
- :mod:`~genre.tracking.audio_model`: the logged model (waveforms in, genres out).
- :mod:`~genre.tracking.checkpoints`: checkpoints written whole or not at all.
"""

"""MLflow tracking: where runs go and what a run reports.

- :mod:`~genre.tracking.store`: the store (sqlite or a server): its URI, its health, its set-up before a run
  or a sweep, retries of what a busy store refuses.
- :mod:`~genre.tracking.logger`: the run's logger, which survives a lost server, its system metrics and
  dataset input, the lines that end a run; :mod:`~genre.tracking.unsent`: the file it keeps refused
  metrics in.
- :mod:`~genre.tracking.report`: what a run records (confusion matrices, reports, plots, the model), from
  :mod:`~genre.tracking.plots` and :mod:`~genre.tracking.separation`.
- :mod:`~genre.tracking.audio_model`: the logged model (waveforms in, genres out).
- :mod:`~genre.tracking.checkpoints`: checkpoints written whole or not at all.
"""

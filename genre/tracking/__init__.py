"""MLflow tracking, in two parts: where runs go (:mod:`genre.tracking.store`) and what a run reports
(:mod:`genre.tracking.report`)."""

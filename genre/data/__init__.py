"""The data pipeline, dataset-agnostic: index and split protocols -> decoded audio cache -> feature
cache -> clips -> the Lightning DataModule (:func:`genre.data.datamodule.prepare` runs it)."""

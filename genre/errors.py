"""Errors that mean "the input or the settings are wrong": the command line prints their message
(which names the file or setting and what to do) instead of a traceback."""
from genre.data.audio import AudioDecodeError
from genre.data.index import DatasetError
from genre.features import FeatureError


class ConfigError(ValueError):
    """Settings that cannot work together (e.g. a resume with another model); the message says what to do."""


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be reached; raised before any training."""


USER_ERRORS = (DatasetError, FeatureError, AudioDecodeError, FileExistsError, ConfigError, TrackingError)

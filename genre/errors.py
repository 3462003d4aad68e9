"""Errors that mean "the input or the settings are wrong": the command line prints their message
(which names the file or setting and what to do) instead of a traceback."""
from genre.data.audio import AudioDecodeError
from genre.data.index import DatasetError
from genre.features import FeatureError

USER_ERRORS = (DatasetError, FeatureError, AudioDecodeError, FileExistsError)

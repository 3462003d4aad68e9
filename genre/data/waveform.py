"""What a waveform must be before it is classified or trained on: finite, within reach of full scale, and
not silent. numpy only: it travels inside every logged MLflow model (beside ``inference.py``) and runs in
the cache's worker processes, which never import torch.
"""
from __future__ import annotations

import numpy as np

# Decoded audio stays within a few units of full scale (+-1; float files may overshoot a little). A sample
# far beyond it is a damaged file or not audio, and its features would overflow (a float WAV holding 1e30
# made every loss NaN).
MAX_ABS_SAMPLE = 16.0


def waveform_problem(waveform: np.ndarray) -> str | None:
    """Why ``waveform`` cannot be classified or trained on (empty, non-finite, far beyond full scale), or
    None when it can. Silence is judged separately (:func:`is_silent`): a file may be silent only in the
    part a run uses."""
    if waveform.size == 0:
        return "empty audio (0 samples)"
    finite = np.isfinite(waveform)
    if not finite.all():
        return f"audio contains NaN or infinite samples ({int((~finite).sum())} of {waveform.size})"
    peak = float(np.abs(waveform).max())
    if peak > MAX_ABS_SAMPLE:
        return (f"samples up to {peak:.3g}, far beyond full scale (+-1; at most {MAX_ABS_SAMPLE:g} is taken): "
                f"a damaged file or not audio")
    return None


SILENCE_DBFS = -60.0   # loudest sample below this: digital silence or the noise floor of 16-bit audio


def is_silent(waveform: np.ndarray) -> bool:
    """True when the loudest sample of ``waveform`` is below :data:`SILENCE_DBFS`: nothing to classify."""
    return waveform.size == 0 or float(np.abs(waveform).max()) < 10 ** (SILENCE_DBFS / 20)


def loudest_level(waveform: np.ndarray) -> str:
    """The loudest sample of ``waveform`` in dBFS, as a reason for silence says it."""
    peak = float(np.abs(waveform).max()) if waveform.size else 0.0
    return f"{20 * np.log10(peak):.0f} dBFS" if peak > 0 else "digital silence"


def input_problem(waveform: np.ndarray) -> str | None:
    """Why a waveform given to classify is refused (:func:`waveform_problem`, or silence), or None."""
    problem = waveform_problem(waveform)
    if problem is None and is_silent(waveform):
        problem = (f"silent (its loudest sample is {loudest_level(waveform)}, below {SILENCE_DBFS:.0f} dBFS): "
                   f"nothing to classify")
    return problem

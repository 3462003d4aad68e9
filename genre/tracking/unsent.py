"""The file a run keeps what its tracking server refused in, ``unsent_metrics.jsonl``: one JSON object a
line, each a metrics call (run id, step, time, values) or, last, the run's final status. The run's logger
writes it (:mod:`genre.tracking.store`); ``python -m genre.replay`` sends it (:mod:`genre.replay`)."""
from __future__ import annotations

import json
import time

MLFLOW_STATUS = {"success": "FINISHED", "finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}


def metrics_line(run_id: str, step: int | None, metrics: dict[str, float]) -> str:
    """One line of ``unsent_metrics.jsonl``: a metrics call the tracking server refused."""
    return json.dumps({"run_id": run_id, "step": step, "timestamp": int(time.time() * 1000),
                       "metrics": {k: float(v) for k, v in metrics.items()}}) + "\n"


def status_line(run_id: str, status: str) -> str:
    """The last line of ``unsent_metrics.jsonl`` when the run could not be marked finished."""
    return json.dumps({"run_id": run_id, "status": MLFLOW_STATUS.get(status.lower(), status.upper())}) + "\n"


def read_line(line: str) -> dict | None:
    """The record one line holds, or None when the line is not a whole one."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    whole = isinstance(record, dict) and isinstance(record.get("run_id"), str) and (
        "status" in record or isinstance(record.get("metrics"), dict))
    return record if whole else None

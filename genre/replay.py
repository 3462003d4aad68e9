"""Send the metrics a run kept locally, while its tracking server was away, to the run.

    python -m genre.replay <run output dir>/unsent_metrics.jsonl [--tracking-uri http://host:5000]

A run whose tracking server went away mid-run trains on and writes each metrics call the server
refused to ``unsent_metrics.jsonl`` in its output directory (one JSON object a line: run id, step,
time and values), and, if the run could not be marked finished, a last line with its status. Once
the server is back, this sends them to the same MLflow run with their original steps and times and
marks the run finished. What was sent is not sent twice (nor a value the run already has at that
step: a call whose answer was lost may have been stored): the file is renamed
``unsent_metrics.sent.jsonl`` when everything went through, or keeps only the lines still unsent.
The tracking URI is never written to the file (it may hold credentials): pass it, or set
``MLFLOW_TRACKING_URI``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from genre.runtime.errors import ConfigError, exit_on_user_error
from genre.tracking.unsent import read_line


def replay(path: Path, tracking_uri: str) -> tuple[int, int, list[int]]:
    """Send every line of ``path`` to ``tracking_uri``; returns (metric values sent, runs marked, numbers of
    the lines skipped as torn).

    A value the run already has at that step is not sent again (the server may have stored a call
    whose answer never came back). A line that is not a whole record (a kill while it was written
    leaves the last one cut short) is skipped, not sent, and reported; the lines after it are sent.
    Stops at the first line the store refuses, leaving that line and the ones after it in ``path``.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    lines = [line for line in path.read_text().splitlines() if line.strip()]
    client = MlflowClient(tracking_uri)
    stored: dict[tuple[str, str], set[tuple[int, float]]] = {}

    def already_there(run_id: str, key: str, step: int, value: float) -> bool:
        # a call whose answer was lost may have been stored all the same: never store it twice
        if (run_id, key) not in stored:
            stored[run_id, key] = {(m.step, m.value) for m in client.get_metric_history(run_id, key)}
        return (step, value) in stored[run_id, key]

    sent = 0
    marked: set[str] = set()   # runs whose final status was set (a file may hold several status lines)
    torn: list[int] = []
    for number, line in enumerate(lines):
        record = read_line(line)
        if record is None:
            torn.append(number + 1)
            continue
        try:
            if "status" in record:
                client.set_terminated(record["run_id"], record["status"])
                marked.add(record["run_id"])
                continue
            run_id, step = record["run_id"], record["step"] or 0
            timestamp = record.get("timestamp") or int(time.time() * 1000)
            metrics = [Metric(key, value, timestamp, step) for key, value in record["metrics"].items()
                       if not already_there(run_id, key, step, value)]
            if metrics:
                client.log_batch(run_id, metrics=metrics)
                sent += len(metrics)
        except BaseException as error:
            _keep(path, lines[number:])
            error.replay_run_id = record.get("run_id")   # what main says of it: the refused record is now line 1
            raise
    os.replace(path, path.with_name(path.name.replace(".jsonl", ".sent.jsonl")))
    return sent, len(marked), torn


def _keep(path: Path, lines: list[str]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(line + "\n" for line in lines))
    os.replace(partial, path)


def _refusal_advice(error: Exception, path: Path) -> str:
    """What to do when the store stopped the replay: wait for a store that is away; for a record it refuses
    (a run it does not know or has deleted, a value it will not take), running again meets the same refusal."""
    reason = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
    code = getattr(error, "error_code", "")
    away = isinstance(error, (ConnectionError, TimeoutError, OSError)) or code in ("TEMPORARILY_UNAVAILABLE",
                                                                                   "INTERNAL_ERROR") \
        or "Max retries" in str(error) or "Connection" in str(error)
    run_id = getattr(error, "replay_run_id", None)
    if away:
        return (f"the tracking store could not be reached ({reason}); what was not sent is still in {path}: run "
                f"this again once the store answers")
    return (f"the tracking store refused the record now on line 1 of {path}" + (f" (run {run_id})" if run_id else "")
            + f" ({reason}); sending it again meets the same refusal: check --tracking-uri names the run's store, or "
            f"remove that line (a run deleted from the store cannot take it) and run this again for the rest")


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genre.replay", description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path, help="a run's unsent_metrics.jsonl")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                        help="the run's tracking store (default: $MLFLOW_TRACKING_URI)")
    args = parser.parse_args(argv)
    if not args.tracking_uri:
        raise ConfigError("name the run's tracking store: --tracking-uri http://host:5000 (or set MLFLOW_TRACKING_URI)")
    if not args.path.is_file():
        raise ConfigError(f"{args.path} does not exist: a run writes unsent_metrics.jsonl in its output directory "
                          f"only when its tracking server refused metrics")
    from genre.tracking.store import is_tracking_server, limit_http_retries

    if is_tracking_server(args.tracking_uri):
        limit_http_retries()   # a server still away is reported in seconds, not after minutes of retries
    try:
        sent, marked, torn = replay(args.path, args.tracking_uri)
    except Exception as error:
        print(f"error: {_refusal_advice(error, args.path)}", file=sys.stderr)
        return 1
    if torn:
        print(f"warning: skipped {len(torn)} line(s) of {args.path} that are not whole records (line "
              f"{', '.join(map(str, torn))}; a run killed while writing leaves its last line cut short)",
              file=sys.stderr)
    print(f"sent {sent} metric values" + (f" and set the final status of {marked} run(s)" if marked else "") +
          f"; {args.path.name} renamed {args.path.name.replace('.jsonl', '.sent.jsonl')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

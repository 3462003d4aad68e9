"""A console that says what happened: third-party noise silenced by name, and MLflow's log lines in the
project's format (the lines that end a run: :func:`genre.tracking.logger.closing_lines`).

Each silenced message is named here with why it means nothing to a user of this project; anything
else still shows. Called by the commands (:mod:`genre.cli`) before torch, Lightning or MLflow load.
"""
from __future__ import annotations

import logging
import os
import re
import time
import warnings
from pathlib import Path

# (category, start of the message, why it is noise here)
SILENCED_WARNINGS = (
    (Warning, r"`isinstance\(treespec, LeafSpec\)` is deprecated",
     "Lightning 2.6 calling a torch API deprecated in 2.11: nothing a user can change"),
    (Warning, r"The number of training batches \(\d+\) is smaller than the logging interval",
     "metrics are logged per epoch here, never per step"),
    (UserWarning, r"No complete tensor found in the group",
     "torch.export saving a CPU program: the weights are on the CPU"),
    (UserWarning, r"The given buffer is not writable",
     "torch.export loading a program's weights read-only; they are never written to"),
    (Warning, r"Found \d+ module\(s\) in eval mode at the start of training",
     "a frozen pretrained encoder (genre.features.encoders) stays in evaluation mode on purpose: no dropout"),
)

# Lightning's INFO lines that advertise, restate a default, or list hardware a CPU user does not have
SILENCED_LOG_LINES = ("Tip: For seamless cloud logging", "litlogger", "GPU available: False",
                      "TPU available: False", "HPU available: False")


class _DropLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in SILENCED_LOG_LINES)


def quiet_console() -> None:
    """Silence the named noise; send MLflow's log lines through the project's handlers (Hydra's format)
    and drop its artifact download progress bars."""
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")          # MLflow's own handler and format
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for category, message, _why in SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropLines())
    mlflow_logger = logging.getLogger("mlflow")
    mlflow_logger.handlers.clear()
    mlflow_logger.propagate = True
    logging.getLogger("alembic").setLevel(logging.WARNING)   # MLflow's store migrations, step by step
    # "Started monitoring system metrics", "Stopping ...", "Successfully terminated ...": three lines a run
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)



# "<stage>: <n> tracks <done> in <seconds> s ...": what a first-run stage logs when it is done, and how
# the benchmark (genre.bench, figure 6) reads it back from a run's log
STAGE_LINE = re.compile(r"([a-z][a-z ]*): \d+ tracks \w+ in ([\d.]+) s")


def log_stage_done(logger: logging.Logger, stage: str, tracks: int, done: str, started: float,
                   processes: int | None = None, where: str | None = None) -> None:
    """Log that ``stage`` is done: ``tracks`` tracks ``done`` since ``started`` (``time.perf_counter()``)."""
    line = f"{stage}: {tracks} tracks {done} in {time.perf_counter() - started:.1f} s"
    if processes is not None:
        line += f" ({processes} processes)"
    logger.info(line + (f" into {where}" if where else ""))


def program_here(name: str) -> str:
    """How to call this environment's program ``name`` (``python``, ``mlflow``, ``genre-train``) from the
    working directory, as a printed command must be typed: ``name`` when PATH finds this environment's,
    else its path (``.venv/bin/mlflow`` for a venv not activated). Paths are compared as they are, not
    through their links: a venv's ``python`` links to the interpreter it was made from."""
    import shutil
    import sys

    beside = Path(sys.executable) if name == "python" else Path(sys.executable).parent / name
    on_path = shutil.which(name)
    if not beside.is_file() or (on_path and Path(on_path).absolute() == beside.absolute()):
        return name
    try:
        return str(beside.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(beside.absolute())


def resume_command(ckpt_path: str | Path | None = None) -> str:
    """The command that ran this one, as typed from the working directory: ``python train.py`` (or the venv's
    python, when it is not the one on PATH), else ``genre-train``; with ``ckpt_path``, followed by the run's own
    overrides (Hydra's, shell-quoted, any earlier ``ckpt_path=`` left out) and ``ckpt_path=<it>``: the command
    that resumes it."""
    import shlex
    import sys

    if ckpt_path is not None:
        try:
            from hydra.core.hydra_config import HydraConfig

            overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("ckpt_path=")]
        except ValueError:   # outside a Hydra run (a test calling train() directly): the command line's own
            overrides = [a for a in sys.argv[1:] if "=" in a and not a.startswith(("ckpt_path=", "-"))]
        return " ".join([resume_command(), *map(shlex.quote, overrides), shlex.quote(f"ckpt_path={ckpt_path}")])

    script = Path(sys.argv[0])
    if script.suffix == ".py":
        try:
            shown = script.absolute().relative_to(Path.cwd())
        except ValueError:
            shown = script.absolute()
        return f"{program_here('python')} {shown}"
    return program_here("genre-train")

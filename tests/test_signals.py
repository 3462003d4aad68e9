"""One rule for SIGINT and SIGTERM in every phase (issue 24, item 4): the run is marked FAILED and can be
resumed, the command exits 130 or 143 with one line and no traceback; SIGKILL leaves it RUNNING."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, compose_config, mlflow_runs, tiny_overrides


@pytest.fixture
def handlers():
    """The commands' handlers (genre.runtime.signals), as train.py installs them, restored afterwards."""
    from genre.runtime import signals

    saved = {s: signal.getsignal(s) for s in signals.HANDLED}
    for state in (signals._received, signals._redelivering, signals._deferred_since):
        state.clear()
    signals.install()
    yield
    for state in (signals._received, signals._redelivering, signals._deferred_since):
        state.clear()
    for s, handler in saved.items():
        signal.signal(s, handler)


def _signal_self_in(monkeypatch, owner, name: str, signum: int):
    """Make ``owner.name`` send ``signum`` to this process when it is called (a signal in that phase)."""
    original = getattr(owner, name)

    def wrapped(*args, **kwargs):
        os.kill(os.getpid(), signum)
        time.sleep(1)   # the handler raises here at the latest
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


@pytest.mark.slow
@pytest.mark.parametrize("phase, name, signum", [
    ("fit", "on_train_epoch_end", signal.SIGTERM),
    ("test", "on_test_epoch_start", signal.SIGTERM),
    ("test", "on_test_epoch_start", signal.SIGINT),
    ("outputs", "log_training_outputs", signal.SIGTERM),
])
def test_a_signal_in_any_phase_marks_the_run_failed_and_stops_with_128_plus_its_number(
        tmp_path, monkeypatch, handlers, phase, name, signum):
    import genre.train
    from genre.models.module import GenreClassifier
    from genre.runtime.signals import Interrupted
    from genre.train import train

    _signal_self_in(monkeypatch, genre.train if phase == "outputs" else GenreClassifier, name, signum)
    with pytest.raises(Interrupted) as stopped:
        train(compose_config("train", tiny_overrides(**{"logger.system_metrics": "false"}), tmp_path))
    assert stopped.value.status == 128 + signum
    [run] = mlflow_runs(tmp_path)
    assert run.info.status == "FAILED"
    assert f"run {run.info.run_name} (id {run.info.run_id}) is marked FAILED" in str(stopped.value)


def _wait_for(path, process, seconds=240):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_during_fit_exits_143_without_a_traceback_and_the_printed_resume_finishes_the_run(tmp_path):
    overrides = tiny_overrides(**{"trainer.max_epochs": 200, "callbacks.early_stopping.patience": 200,
                                  "logger.system_metrics": "false"})
    command = [sys.executable, "train.py", f"paths.root_dir={tmp_path}", *overrides]
    bare = {**os.environ, "PATH": "/usr/bin:/bin"}              # a shell where the venv is not activated
    run = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=bare)
    _wait_for(next_run_dir(tmp_path, run) / "checkpoints" / "last.ckpt", run)
    run.send_signal(signal.SIGTERM)            # what a scheduler's pre-emption sends
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("stopped:")]
    printed = re.match(r"stopped: interrupted by SIGTERM: run \S+ \(id \w+\) is marked FAILED; resume it with: "
                       r"(\S+ train.py (.+) ckpt_path=(\S+/last.ckpt))$", line)
    assert printed, line
    # the run's own settings, as it was given them (they were printed as "<the same settings>")
    assert shlex.split(printed.group(2)) == [f"paths.root_dir={tmp_path}", *overrides]
    [interrupted] = mlflow_runs(tmp_path)
    assert interrupted.info.status == "FAILED"

    import torch

    reached = torch.load(printed.group(3), map_location="cpu", weights_only=True)["epoch"]
    # the printed command, as printed, in that shell; only its epochs cut short, for the test's time
    command = printed.group(1).replace("trainer.max_epochs=200", f"trainer.max_epochs={reached + 2}")
    resumed = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=600, env=bare)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    [finished] = mlflow_runs(tmp_path)
    assert finished.info.run_id == interrupted.info.run_id and finished.info.status == "FINISHED"
    # its last lines name the folder its checkpoints stay in, not the new session's
    [outputs] = re.findall(r"outputs  (\S+)", resumed.stderr + resumed.stdout)
    assert Path(printed.group(3)).resolve().parent.parent == Path(outputs).resolve()


def next_run_dir(root, process, seconds=120):
    """The output folder the run made under ``root``/outputs/runs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        made = list((root / "outputs" / "runs").glob("*")) if (root / "outputs" / "runs").is_dir() else []
        if made:
            return made[0]
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.05)
    pytest.fail("the run made no output folder")


def test_a_signal_inside_the_stores_code_is_handled_once_the_program_is_out_of_it(monkeypatch, handlers):
    """A raise inside the store's session or connection pool left a transaction open: the job hung on its
    way out and the other jobs met "database is locked" (CI). The signal waits until the code is out."""
    import sys

    from genre.runtime import signals

    sent = []
    monkeypatch.setattr(signals.os, "kill", lambda pid, signum: sent.append(signum))
    inside = {"__name__": "sqlalchemy.orm.session"}                # a frame of the store's code
    exec("import sys\ndef session(): return sys._getframe()\n", inside)
    signals._handle(signal.SIGTERM, inside["session"]())          # deferred: no exception here
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent == [signal.SIGTERM]                               # delivered again a moment later
    with pytest.raises(signals.Interrupted):                       # and handled where it is safe
        signals._handle(signal.SIGTERM, sys._getframe())


def test_a_stop_that_lands_in_a_finaliser_is_raised_again_where_the_program_is():
    """Python drops what a handler raises inside a ``__del__`` or a weakref callback: SIGTERM sent while a
    run built its feature cache was lost there, and the run went on and exited 0 (CI)."""
    program = """if True:
        import os, signal, sys, time
        from genre.runtime import signals
        from genre.runtime.errors import exit_on_user_error

        class Finalised:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGTERM)
                sum(range(10000))   # the handler runs here, where Python drops what it raises

        @exit_on_user_error
        def work():
            Finalised()            # collected at once
            for _ in range(100):   # the program's own work, where the stop must reach it
                time.sleep(0.02)
            print("finished")

        signals.install()
        work()
    """
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "finished" not in done.stdout
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip() == "stopped: interrupted by SIGTERM"


@pytest.mark.slow
def test_sigterm_that_lightnings_own_flag_ends_fit_with_is_still_143_and_failed(tmp_path, monkeypatch, handlers):
    """SIGTERM deferred out of the store's code: Lightning's flag ended fit first, with a SystemExit of
    status 0, and the run exited 0 (CI)."""
    import types

    from genre.models.module import GenreClassifier
    from genre.runtime import signals
    from genre.runtime.signals import Interrupted
    from genre.train import train

    monkeypatch.setattr(signals.threading, "Timer", lambda *a, **k: types.SimpleNamespace(start=lambda: None))
    logging_like = {"__name__": "logging"}                          # a frame of code a raise must not split
    exec("import os, signal\ndef emit(): os.kill(os.getpid(), signal.SIGTERM)\n", logging_like)
    original = GenreClassifier.on_train_epoch_end

    def epoch_end(self):
        logging_like["emit"]()                                       # deferred; Lightning's flag is set
        return original(self)

    monkeypatch.setattr(GenreClassifier, "on_train_epoch_end", epoch_end)
    with pytest.raises(Interrupted) as stopped:
        train(compose_config("train", tiny_overrides(**{"logger.system_metrics": "false"}), tmp_path))
    assert stopped.value.status == 143
    [run] = mlflow_runs(tmp_path)
    assert run.info.status == "FAILED"

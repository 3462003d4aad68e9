"""The install is reproducible: the README's two commands and CI install from one lock of the versions the
suite passed with, which pins every dependency pyproject.toml names, and the README's versions table is
read from it (issue: a fresh install resolved soundfile 0.14.0, and the suite failed on every new machine)."""
import importlib.util
import re
import subprocess
import sys

import tomllib

from conftest import ROOT


def lock_pins() -> dict:
    """What requirements.lock pins, read by the same code that writes the README's table."""
    spec = importlib.util.spec_from_file_location("versions_table", ROOT / ".ci" / "versions_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.locked()


def test_the_lock_pins_every_dependency_and_extra_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = list(project["dependencies"]) + [req for reqs in project["optional-dependencies"].values() for req in reqs]
    names = {re.match(r"[A-Za-z0-9_.\-]+", req).group(0).lower().replace("_", "-") for req in named}
    names.discard("genre")                                   # the test extra names the sweep extra
    pins = lock_pins()
    assert sorted(names - set(pins)) == [], "refresh the lock: bash .ci/lock"
    assert pins["torch"] == pins["torchaudio"] == "2.11.0"  # pinned together (pyproject.toml)


def test_the_readme_commands_and_ci_install_from_the_lock():
    readme = (ROOT / "README.md").read_text()
    installs = re.findall(r"pip install[^\n`&]*-e \S+", readme)
    fresh = [line for line in installs if '-e .' in line or '-e ".[test]"' in line]
    assert len(fresh) >= 2 and all("-c requirements.lock" in line for line in fresh), fresh
    ci = (ROOT / ".ci" / "run").read_text()
    assert '-c requirements.lock -e ".[test]"' in ci
    assert "bash .ci/lock" in readme


def test_the_readmes_versions_table_is_the_locks():
    done = subprocess.run([sys.executable, str(ROOT / ".ci" / "versions_table.py")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pins = lock_pins()
    for name in ("torch", "soundfile", "numpy", "mlflow"):
        assert f"| {name} | {pins[name]} |" in done.stdout
        assert f"| {name} | {pins[name]} |" in (ROOT / "README.md").read_text()

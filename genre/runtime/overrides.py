"""The command line's settings checked for typos before Hydra composes them, with the closest valid name.

Hydra answers ``feature=mfcc`` with "Could not override 'feature'... To append to your config use
+feature=mfcc", which is wrong advice for a typo, and exits 1 with its own format. Here each ``key=value``
of ``train.py``, ``evaluate.py`` and ``genre-app`` is looked up first: a config group's option among the
group's files, a setting in the config those groups compose. One that is not there is a
:class:`~genre.runtime.errors.ConfigError` (``error: ...``, exit status 2) naming the closest valid name
(``did you mean features=mfcc?``) and, for a group, its options. Overrides that add or delete (``+``, ``~``),
Hydra's own (``hydra.``, ``hydra/``) and sweep expressions are left to Hydra.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from omegaconf import DictConfig

from genre.runtime.errors import ConfigError


def _groups(config_dir: Path) -> dict[str, list[str]]:
    """Each config group (``model``, ``dataset/split``) and its options (file names without ``.yaml``)."""
    groups = {}
    for folder in sorted(p for p in config_dir.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        name = folder.relative_to(config_dir).as_posix()
        if name.split("/")[0] == "hydra":
            continue
        groups[name] = sorted(p.stem for p in folder.glob("*.yaml"))
    return groups


def _closest(word: str, candidates) -> str | None:
    found = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return found[0] if found else None


def _parse(argv: list[str]) -> tuple[list[tuple[str, str]], bool]:
    """The ``(key, value)`` overrides that this module checks, and whether the command is a sweep (``-m``)."""
    sweep = any(arg in ("-m", "--multirun") for arg in argv)
    pairs = []
    for arg in argv:
        if arg.startswith(("-", "+", "~")) or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        if key.startswith(("hydra.", "hydra/")) or key == "hydra" or "@" in key:
            continue
        pairs.append((key, value))
    return pairs, sweep


def _values(value: str, sweep: bool) -> list[str]:
    """The options a group override names: one, or each of a sweep's comma-separated list."""
    if "(" in value or "$" in value:   # choice(...), range(...), an interpolation: Hydra's to judge
        return []
    return [v.strip() for v in value.split(",")] if sweep else [value.strip()]


# launchers a sweep must not use, and why
REFUSED_LAUNCHERS = {
    "joblib": "hydra/launcher=joblib: joblib's launcher stops the whole sweep when one job's process dies "
              "(TerminatedWorkerError) and leaves that job's MLflow run RUNNING; use hydra/launcher=parallel "
              "(hydra.launcher.n_jobs=N), which runs the jobs in parallel the same way, survives a dead job and "
              "marks its run FAILED",
}


def check_overrides(config_dir: Path, config_name: str, argv: list[str]) -> None:
    """Refuse the first override of ``argv`` that names no config group option or setting of ``config_name``
    (composed from ``config_dir`` with the command's group choices), with the closest valid name; and a launcher
    of :data:`REFUSED_LAUNCHERS`."""
    for arg in argv:
        key, _, value = arg.lstrip("+").partition("=")
        if key == "hydra/launcher" and value in REFUSED_LAUNCHERS:
            raise ConfigError(REFUSED_LAUNCHERS[value])
    pairs, sweep = _parse(argv)
    if not pairs:
        return
    groups = _groups(config_dir)
    chosen = []
    for key, value in pairs:
        if key not in groups:
            continue
        for option in _values(value, sweep):
            if option in ("null", "") or option in groups[key]:
                continue
            near = _closest(option, groups[key])
            hint = f"did you mean {key}={near}? " if near else ""
            raise ConfigError(f"{key}={option}: {key} has no option {option!r}; {hint}"
                              f"its options: {', '.join(groups[key])}")
        options = _values(value, sweep)
        if options and options[0] not in ("null", ""):
            chosen.append(f"{key}={options[0]}")   # a sweep's settings are looked up under its first option
    settings = [(key, value) for key, value in pairs if key not in groups]
    if not settings:
        return
    config = _compose(config_dir, config_name, chosen)
    if config is None:
        return   # it does not compose for another reason: Hydra says which
    top_level = [g for g in groups if "/" not in g]
    for key, value in settings:
        if _has(config, key):
            continue
        raise ConfigError(_unknown_setting(config, key, value, top_level))


def _has(config: DictConfig, key: str) -> bool:
    """Whether ``key`` (dotted) is a setting of ``config``, set or not (``???``, null)."""
    node = config
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node.keys():   # `in node` is False for ???
            return False
        node = node._get_node(part)
    return True


def _unknown_setting(config: DictConfig, key: str, value: str, groups: list[str]) -> str:
    """What to say of ``key``, a setting ``config`` does not have: the closest one at the level that exists."""
    parts = key.split(".")
    node, known = config, []
    for part in parts[:-1]:
        child = node.get(part) if isinstance(node, DictConfig) else None
        if not isinstance(child, DictConfig):
            break
        node, known = child, [*known, part]
    missing = parts[len(known)]
    candidates = list(node.keys()) if isinstance(node, DictConfig) else []
    if not known:
        candidates += groups
    near = _closest(missing, candidates)
    prefix = ".".join(known)
    where = f"{prefix} has no setting {missing!r}" if prefix else f"no setting or config group is named {missing!r}"
    if near is None:
        return (f"{key}={value}: {where} ({_this_command()} --cfg job lists the settings); add + in front "
                f"(+{key}=...) only to add a new setting on purpose")
    suggestion = ".".join([*known, near, *parts[len(known) + 1:]])
    return f"{key}={value}: {where}; did you mean {suggestion}={value}?"


def _this_command() -> str:
    """This command as typed from the working directory (``python train.py``, ``.venv/bin/genre-app``)."""
    import sys

    from genre.runtime.console import program_here, resume_command

    return resume_command() if sys.argv[0].endswith(".py") else program_here(Path(sys.argv[0]).name)


def _compose(config_dir: Path, config_name: str, overrides: list[str]) -> DictConfig | None:
    """The config the command's group choices compose, unresolved, or None when it does not compose."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    except Exception:
        return None
    finally:
        GlobalHydra.instance().clear()

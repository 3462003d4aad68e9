"""A config of plain data runs no code: every ``_target_`` read from a checkpoint, a logged run or a file must
be one of genre's components (issue: a checkpoint whose stored config named ``os.system`` ran a command in
``evaluate.py ckpt_path=``, ``evaluate.py run_id=`` and ``genre-app run_id=``)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from conftest import ROOT, compose_config, tiny_overrides, write_tone

HOSTILE = ["os.system", "subprocess.Popen", "builtins.eval", "genre.runtime.errors.refuse_unwritable"]


def _checkpoint(tmp_path):
    """A checkpoint as train.py writes one (config, genres, clip frames, weights), without training."""
    from genre.assembly.build import build_classifier

    cfg = compose_config("train", tiny_overrides(), tmp_path)
    genres = ["blues", "jazz"]
    module = build_classifier(cfg, genres, 20)
    info = {"config": OmegaConf.to_container(cfg, resolve=True), "genres": genres, "clip_frames": 20}
    return {"genre": info, "state_dict": module.state_dict()}


def _hostile(tmp_path, setting: str, target: str):
    """The checkpoint with ``setting`` (a dotted path) replaced by a node calling ``target``."""
    checkpoint = _checkpoint(tmp_path)
    marker = tmp_path / "PWNED"
    node = checkpoint["genre"]["config"]
    *parents, last = setting.split(".")
    for key in parents:
        node = node[key]
    arguments = {"os.system": {"command": f"touch {marker}"}, "subprocess.Popen": {"args": ["touch", str(marker)]},
                 "builtins.eval": {"source": f"open({str(marker)!r}, 'w')"}}.get(target, {"path": str(marker)})
    node[last] = {"_target_": target, **arguments}
    path = tmp_path / "shared.ckpt"
    torch.save(checkpoint, path)
    return path, marker


@pytest.mark.parametrize("target", HOSTILE)
@pytest.mark.parametrize("setting", ["features", "model", "optimizer", "model.head"])
def test_a_checkpoint_naming_any_other_target_is_refused_by_every_loader_and_runs_nothing(tmp_path, target,
                                                                                           setting):
    from genre.assembly.build import load_classifier
    from genre.assembly.predictor import load_predictor
    from genre.runtime.errors import ConfigError

    path, marker = _hostile(tmp_path, setting, target)
    named = re.escape(f"{setting}._target_={target!r} is not a component genre builds")
    for load in (load_predictor, load_classifier):
        with pytest.raises(ConfigError, match=named):
            load(path)
    assert not marker.exists(), f"{target} ran"


def test_the_genuine_checkpoint_still_loads(tmp_path):
    from genre.assembly.build import load_classifier
    from genre.assembly.predictor import load_predictor

    path = tmp_path / "genuine.ckpt"
    torch.save(_checkpoint(tmp_path), path)
    assert load_predictor(path).genres == ["blues", "jazz"]
    assert load_classifier(path).module.genres == ["blues", "jazz"]


def test_evaluate_refuses_it_in_one_line_naming_the_setting(tmp_path):
    path, marker = _hostile(tmp_path, "features", "os.system")
    song = write_tone(tmp_path / "song.wav", 4.0)
    done = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), f"ckpt_path={path}", f"audio={song}"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "features._target_='os.system' is not a component genre builds" in done.stderr
    assert not marker.exists()


def test_a_composed_config_naming_another_target_is_refused_before_any_work(tmp_path):
    from genre.runtime.errors import ConfigError
    from genre.train import train

    cfg = compose_config("train", tiny_overrides(), tmp_path)
    OmegaConf.update(cfg, "optimizer", {"_target_": "os.system", "command": f"touch {tmp_path / 'PWNED'}"},
                     force_add=True)
    with pytest.raises(ConfigError, match=r"optimizer._target_='os.system'"):
        train(cfg)
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "data").exists()


def test_every_target_the_shipped_configs_name_is_a_component():
    """Adding a component means listing it (genre.assembly.targets.COMPONENTS); Hydra's own group is Hydra's."""
    from genre.assembly.targets import COMPONENTS

    def targets(node):
        if isinstance(node, dict):
            if "_target_" in node:
                yield node["_target_"]
            for value in node.values():
                yield from targets(value)
        elif isinstance(node, list):
            for value in node:
                yield from targets(value)

    named = {}
    for path in [*(ROOT / "conf").rglob("*.yaml"), *(ROOT / "experiments").rglob("*.yaml")]:
        parts = path.relative_to(ROOT).parts
        if "hydra" in parts or "hparams_search" in parts:   # Hydra builds these (launchers, samplers), not genre
            continue
        config = yaml.safe_load(path.read_text()) or {}
        config.pop("hydra", None)   # Hydra's own callbacks
        for target in targets(config):
            named.setdefault(target, str(path.relative_to(ROOT)))
    assert named, "no target found in conf/"
    assert {t: p for t, p in named.items() if t not in COMPONENTS} == {}
    for target in COMPONENTS:   # and each listed one exists
        module, _, name = target.rpartition(".")
        assert hasattr(__import__(module, fromlist=[name]), name), target

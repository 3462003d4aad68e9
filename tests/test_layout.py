"""The package stands on its own: its configuration ships inside it, every object is built from config,
every module says its job, and an installed copy runs without the checkout."""
import ast
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from genre.assembly.build import build_callbacks, build_classifier, build_frontend, compose_config


def test_every_module_opens_with_a_docstring_saying_its_job():
    missing = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "genre").rglob("*.py"))
               if not ast.get_docstring(ast.parse(path.read_text()))]
    assert missing == []


def test_no_comment_points_outside_the_repository():
    """Knowledge the code relies on is in docs/, not in a file only the authors had."""
    cited = [str(p.relative_to(ROOT)) for p in (ROOT / "genre").rglob("*") if p.is_file() and p.suffix in (".py", ".yaml")
             and "PITFALLS" in p.read_text()]
    assert cited == [] and (ROOT / "docs" / "pitfalls.md").is_file()


def test_the_caches_layout_is_known_in_one_module_and_the_top_holds_only_commands():
    """The HDF5 layout of the caches was known in 6 files; commands and components were mixed at the top."""
    def imports(path):
        tree = ast.parse(path.read_text())
        return {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}

    package = ROOT / "genre"
    opening_hdf5 = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if "h5py" in imports(p))
    # the caches, and MSD's own metadata files (its summary HDF5), which are not a cache
    assert opening_hdf5 == ["data/cache.py", "datasets/msd.py"]
    top = sorted(p.stem for p in package.glob("*.py"))
    assert top == ["__init__", "bench", "check", "cli", "compare", "evaluate", "replay", "shift", "train"]


def test_no_module_of_genre_imports_itself_through_others():
    """genre.tracking.store imported genre.replay, which imported the store back (lazily): an import circle.
    Every import counts, also those inside functions."""
    package = ROOT / "genre"
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in package.rglob("*.py") if "plugins" not in p.parts}
    graph = {}
    for name, path in modules.items():
        named = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                named |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                named |= {alias.name for alias in node.names}
        graph[name] = {m for m in named if m in modules and m != name}

    def circle_from(start):
        path, seen = [start], set()

        def walk(node):
            for nxt in sorted(graph[node]):
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    path.append(nxt)
                    found = walk(nxt)
                    if found:
                        return found
                    path.pop()
            return None
        return walk(start)

    circles = [circle for circle in map(circle_from, sorted(graph)) if circle]
    assert circles == [], " -> ".join(circles[0])


def test_feature_groups_share_one_description():
    mel, mfcc = compose_config("train").features, compose_config("train", ["features=mfcc"]).features
    assert mfcc.kind == "mfcc" and {k: v for k, v in mfcc.items() if k != "kind"} == \
        {k: v for k, v in mel.items() if k != "kind"}
    assert build_frontend(mfcc).n_bands == mfcc.n_mfcc


def test_every_dataset_offers_the_shared_split_settings():
    for name in ("synthetic", "gtzan", "fma", "msd", "folder"):
        dataset = compose_config("train", [f"dataset={name}", "dataset.root=/x"] if name == "folder"
                                 else [f"dataset={name}"]).dataset
        assert {"fractions", "split_seed", "folds", "fold"} <= set(dataset), name
    assert compose_config("train").dataset.fractions.train == 0.7      # the synthetic corpus keeps its own


def test_optimizer_scheduler_and_callbacks_come_from_config(tmp_path):
    cfg = compose_config("train", ["optimizer=sgd", "optimizer.lr=0.05", "scheduler=cosine",
                                   "trainer.max_epochs=7", "callbacks.early_stopping.patience=3"])
    module = build_classifier(cfg, ["a", "b"], 50, lr_scale=2)
    configured = module.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == pytest.approx(0.1)
    assert isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) and scheduler.T_max == 7
    callbacks = build_callbacks(cfg.callbacks, tmp_path / "ckpts")
    assert callbacks["early_stopping"].patience == 3
    assert callbacks["best_checkpoint"].dirpath == str(tmp_path / "ckpts") == callbacks["last_checkpoint"].dirpath
    assert module.hparams.genres == ["a", "b"] and module.hparams.clip_frames == 50


@pytest.mark.slow
def test_an_installed_package_runs_without_the_checkout(tmp_path):
    """``pip install .`` (not editable) and the console script compose the shipped configuration."""
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(ROOT)],
                   check=True, capture_output=True)
    [wheel] = wheel_dir.glob("genre-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    script = (target / "bin" / "genre-train").read_text()
    assert "from genre.cli import train" in script
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", "import sys, genre; from genre.cli import train; "
                          "print(genre.__file__, file=sys.stderr); train()",
                          "--cfg", "job", "experiment=gtzan_filtered", "features=mfcc"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert str(target) in out.stderr                       # the installed copy, not the checkout
    assert "experiment_name: gtzan_filtered" in out.stdout and "kind: mfcc" in out.stdout
    listed = subprocess.run([sys.executable, "-c", "import genre.datasets.gtzan as g; print(len(g.gtzan_filtered_lists()['train']))"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert listed.stdout.strip() == "443"


def test_every_option_of_a_group_is_in_the_lists_that_name_them():
    """The lists of options are written by hand in a few places; they went stale (the train.yaml header
    lacked the scikit-learn models, conf/evaluate.yaml and this file lacked ismir2004)."""
    import re

    from genre import CONFIG_DIR

    header = [line for line in (CONFIG_DIR / "train.yaml").read_text().splitlines() if line.startswith("#   ")]
    readme = (ROOT / "README.md").read_text()
    for group in ("dataset", "features", "model", "optimizer", "scheduler", "augment", "recipe", "callbacks",
                  "trainer", "logger", "hparams_search"):
        options = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
        [line] = [line for line in header if line.split()[1] == group]
        listed = set(re.findall(r"[a-z_0-9]+", line.split(None, 2)[2]))
        assert set(options) <= listed, (group, set(options) - listed)
        if group in ("dataset", "features", "model"):   # the README says how to pick each one
            missing = [o for o in options if not re.search(rf"{group}=([a-z_0-9|]*\|)?{o}\b", readme)]
            assert missing == [], (group, missing)
    evaluate_datasets = (CONFIG_DIR / "evaluate.yaml").read_text().split("another corpus to score the model on")[1]
    assert all(p.stem in evaluate_datasets.splitlines()[0] for p in (CONFIG_DIR / "dataset").glob("*.yaml"))


def test_debug_tiny_is_the_run_the_tests_start_from():
    """``python train.py debug=tiny`` gives users the run the tests use (one place: conf/debug/tiny.yaml)."""
    from omegaconf import OmegaConf

    from conftest import tiny_overrides

    def settings(overrides):
        cfg = compose_config("train", overrides)
        return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}

    tiny = settings(["debug=tiny"])
    assert tiny == settings(tiny_overrides())
    assert tiny != settings([])
    assert tiny["trainer"]["max_epochs"] == 3 and tiny["model"]["channels"] == [4, 8, 8]
    assert settings(["debug=tiny", "model=resnet"])["model"]["channels"] == [4, 8, 8]


def test_every_network_front_end_and_dataset_option_meets_its_contract(tmp_path):
    """The contracts (genre.models.Network, genre.features.FrontEnd, genre.datasets.DatasetBuilder) are
    written once; every option of conf/model, conf/features and conf/dataset meets its own."""
    import inspect

    from genre import CONFIG_DIR
    from genre.assembly.targets import build_network
    from genre.features import FrontEnd
    from genre.features.encoders import EMBEDDERS, save_tiny_ast, save_tiny_clap, save_tiny_mert, save_tiny_muq
    from genre.models import Network

    # a pretrained encoder's option loads its real class, here with tiny random weights saved as the hub has them
    tiny = {"mert": save_tiny_mert(tmp_path / "mert"), "ast": save_tiny_ast(tmp_path / "ast"),
            "clap": save_tiny_clap(tmp_path / "clap"), "muq": save_tiny_muq(tmp_path / "muq")}
    assert set(tiny) == set(EMBEDDERS)
    for option in sorted(p.stem for p in (CONFIG_DIR / "features").glob("*.yaml")):
        cfg = compose_config("train", [f"features={option}"])
        if "encoder" in cfg:
            small = ["encoder.width=16", *(["encoder.layers=3", "encoder.window_seconds=1", "encoder.hop_seconds=1"]
                                           if cfg.encoder.loader != "clap" else [])]   # CLAP: its own 10-s window
            cfg = compose_config("train", [f"features={option}", f"encoder.path={tiny[cfg.encoder.loader]}", *small])
        frontend = build_frontend(cfg.features)
        assert isinstance(frontend, FrontEnd), option
        features = frontend(torch.zeros(2, frontend.sample_rate) + 0.01 * torch.randn(2, frontend.sample_rate))
        assert features.shape == (2, frontend.n_bands, frontend.n_frames(frontend.sample_rate)), option
    for option in sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml")):
        cfg = compose_config("train", [f"model={option}"])
        if "sklearn" in cfg.model._target_:
            continue                                   # the scikit-learn baselines: genre.models.classical
        cfg = compose_config("train", [f"model={option}", *cfg.model.meant_for])   # a probe: over an encoder
        bands = 32 if cfg.model.get("n_layers") is None else 4 * cfg.model.n_layers
        net = build_network(cfg.model, (bands, 80), 4).eval()
        assert isinstance(net, Network), option
        x = torch.randn(3, 1, bands, 80)
        assert torch.allclose(net(x), net.head(net.embed(x))) and net(x).shape == (3, 4), option
    for option in sorted(p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml")):
        builder = __import__("hydra").utils.get_method(compose_config("train", [f"dataset={option}"]).dataset._target_)
        assert "track_seconds" in inspect.signature(builder).parameters, option


def test_the_domain_shift_offers_every_network_with_the_settings_it_was_designed_with():
    from genre import CONFIG_DIR
    from genre.shift import network_settings

    networks = network_settings()
    assert networks["resnet"] == ["clips.clip_seconds=3"] and networks["cnn3"] == []
    assert set(networks) == {p.stem for p in (CONFIG_DIR / "model").glob("*.yaml")
                             if "sklearn" not in compose_config("train", [f"model={p.stem}"]).model._target_}


def test_the_progress_bar_is_tqdm_whatever_is_installed():
    """With rich installed (the test and sweep extras bring it) Lightning switched to its rich bar, and log
    lines landed at the end of bar lines."""
    from pytorch_lightning.callbacks import TQDMProgressBar

    from genre.train import progress_bar

    [bar] = progress_bar(compose_config("train").trainer)
    assert type(bar) is TQDMProgressBar
    assert progress_bar(compose_config("train", ["trainer.enable_progress_bar=false"]).trainer) == []

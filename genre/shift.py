"""How far a model travels: in-domain accuracy and accuracy under the built-in domain shift.

    python -m genre.shift [--root shift] [--models cnn3 resnet] [--seeds 1 2 3] [--json shift.json] [-- overrides]

For each model, with the plain recipe (Adam, no augmentation) and with ``recipe=modern`` (AdamW,
warm-up and cosine, label smoothing, every augmentation), and each seed: train on the built-in corpus
with timbre set ``a`` (``python train.py``, the README's main command), then score the best checkpoint
on the same test compositions rendered with timbre set ``b`` (``evaluate.py dataset=synthetic
dataset.timbres=b split=test``). Prints and writes the table: test track accuracy on a and on b, mean
± std over seeds, and the drop from a to b. Every run is an MLflow run in ``<root>/mlflow.db``
(experiment ``domain_shift``); ``python -m genre.compare`` tables them too.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np

from genre.compare import mean_std
from genre.runtime.errors import exit_on_user_error

RECIPES = {"plain": [], "modern": ["recipe=modern"]}


def network_settings() -> dict[str, list[str]]:
    """Every network of conf/model with the settings it was designed with (its ``meant_for``: resnet, a
    short-chunk model, trains on 3-s clips; cnn3 on the seed project's 10 s)."""
    from genre import CONFIG_DIR
    from genre.assembly.build import compose_config

    networks = {}
    for option in sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml")):
        model = compose_config("train", [f"model={option}"]).model
        if "meant_for" in model:   # the scikit-learn baselines have no network and are not compared here
            networks[option] = list(model.meant_for)
    return networks


def recipes_for(settings: list[str]) -> dict[str, list[str]]:
    """The recipes a network is compared under: both, unless its settings choose a pretrained encoder, whose
    embeddings the modern recipe's augmentation in dB does not apply to (it is refused there): plain alone."""
    from genre.assembly.build import compose_config

    return {"plain": RECIPES["plain"]} if "encoder" in compose_config("train", settings) else RECIPES


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-c", *command], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} failed:\n{done.stderr[-3000:]}")


def measure(root: Path, models: list[str], seeds: list[int], extra: list[str]) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    common = [f"paths.root_dir={root.resolve()}", "logger.experiment_name=domain_shift",
              "trainer.enable_progress_bar=false", *extra]
    rows, designed = [], network_settings()
    recipes = {model: recipes_for(designed[model]) for model in models}
    for model in models:
        for recipe, recipe_overrides in recipes[model].items():
            for seed in seeds:
                start = time.perf_counter()
                name = f"shift-{model}-{recipe}-s{seed}"
                _run(["from genre.cli import train; train()", *common, f"model={model}", *designed[model],
                      *recipe_overrides, f"seed={seed}", f"logger.run_name={name}"], root)
                client = mlflow.MlflowClient(f"sqlite:///{root.resolve()}/mlflow.db")
                experiment = client.get_experiment_by_name("domain_shift")
                [run] = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'",
                                           order_by=["attributes.start_time DESC"], max_results=1)
                _run(["from genre.cli import evaluate; evaluate()", f"run_id={run.info.run_id}",
                      f"paths.root_dir={root.resolve()}", "dataset=synthetic", "dataset.timbres=b", "split=test",
                      *[o for o in extra if o.startswith("dataset.")]], root)   # the same corpus settings
                metrics = client.get_run(run.info.run_id).data.metrics
                rows.append({"model": model, "recipe": recipe, "seed": seed, "run_id": run.info.run_id,
                             "a": metrics["test/track_acc"], "b": metrics["evaluate/synthetic/test/track_acc"],
                             "seconds": time.perf_counter() - start})
                print(f"{name}: a {rows[-1]['a']:.3f}, b {rows[-1]['b']:.3f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    table = []
    for model in models:
        for recipe in recipes[model]:
            chosen = [r for r in rows if r["model"] == model and r["recipe"] == recipe]
            a, b = np.array([r["a"] for r in chosen]), np.array([r["b"] for r in chosen])
            (a_mean, a_std, _), (b_mean, b_std, _), (drop_mean, drop_std, _) = map(mean_std, (a, b, a - b))
            table.append({"model": model, "recipe": recipe, "seeds": len(chosen), "a_mean": a_mean, "a_std": a_std,
                          "b_mean": b_mean, "b_std": b_std, "drop_mean": drop_mean, "drop_std": drop_std})
    return {"runs": rows, "table": table}


def markdown(result: dict) -> str:
    lines = ["| model | recipe | in domain (a) | shifted (a -> b) | drop |", "|---|---|---|---|---|"]
    for t in result["table"]:
        lines.append(f"| {t['model']} | {t['recipe']} | {100 * t['a_mean']:.1f} ± {100 * t['a_std']:.1f} % | "
                     f"{100 * t['b_mean']:.1f} ± {100 * t['b_std']:.1f} % | "
                     f"{100 * t['drop_mean']:.1f} ± {100 * t['drop_std']:.1f} points |")
    return "\n".join(lines)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genre.shift", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("shift"), help="paths.root_dir of the runs")
    parser.add_argument("--models", nargs="+", default=["cnn3", "resnet"], choices=sorted(network_settings()))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--json", type=Path, help="write the runs and the table here")
    parser.add_argument("overrides", nargs="*", help="more train.py overrides for every run (after --)")
    args = parser.parse_args(argv)
    result = measure(args.root, args.models, args.seeds, args.overrides)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

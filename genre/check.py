"""Does this machine reproduce the README's default run? ``python -m genre.check [--train]`` (``genre-check``).

    python -m genre.check                      # the corpus and its features, and the conditions, against the reference
    python -m genre.check --train              # and the default command itself (seed 42, a few minutes on 2 cores)
    python -m genre.check --train --write-reference ours.json [override ...]   # a lab's own reference
    python -m genre.check --train --reference ours.json [override ...]         # ... checked on another machine

A training run is bit-for-bit the reference's when four things are the same (README, Reproducibility): the
feature values (``features_digest``), torch's CPU kernel level, torch's thread count, and the numerical
libraries' versions. The check builds the default corpus and feature cache under ``--root`` (reused when
there), compares each of the four, and with ``--train`` runs ``python train.py`` (the default command, seed 42)
and compares its test accuracies. It says what differs and what to expect then; its exit status is 0 when
everything compared is the same, 1 when something differs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# The README's default command (python train.py, seed 42) as measured on a 2-core x86_64 machine, 2026-12-03,
# by `python -m genre.check --train --write-reference`: the corpus and features digest, the conditions that
# decide bit-for-bit agreement, and the test metrics of the split protocol named.
REFERENCE = {
    "command": "python train.py",
    "features_digest": "ed0cc181e2f50ed9b27e",
    "cpu_kernels": "AVX512",
    "torch_threads": "2",
    "library_versions": "torch=2.11.0 numpy=2.4.6 scipy=1.17.1 librosa=0.11.0 soxr=1.1.0 pytorch-lightning=2.6.6",
    "split_protocol": "random-stratified-by-track(train=0.7,val=0.15,test=0.15,seed=0)",
    "test/track_acc": 0.8166666626930237,
    "test/acc": 0.8166666626930237,
}
CONDITIONS = ("features_digest", "cpu_kernels", "torch_threads", "library_versions")
METRICS = ("test/track_acc", "test/acc")
WHAT_FOLLOWS = {
    "features_digest": "the corpus or its features differ (a library's version, or the settings): training starts "
                       "from other numbers, so expect a result within the spread over seeds, not the same one",
    "cpu_kernels": "torch's kernels differ: the last bits of each gradient do, so the run goes elsewhere within the "
                   "spread over seeds; ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 pins AVX2 on x86",
    "torch_threads": "another thread count sums in another order: set OMP_NUM_THREADS to the reference's",
    "library_versions": "other library versions may compute differently: install the reference's to compare bit "
                        "for bit",
}


def compare(reference: dict, here: dict) -> tuple[list[tuple[str, str, str, str]], bool]:
    """Rows ``(item, reference, here, verdict)`` for what both have, and whether all of it is the same."""
    rows, same = [], True
    conditions_same = all(reference.get(k) == here.get(k) for k in CONDITIONS if k in here)
    for key in (*CONDITIONS, "split_protocol", *METRICS):
        if key not in here or key not in reference:
            continue
        equal = here[key] == reference[key]
        if key in METRICS:
            shown = (f"{reference[key]:.1%}", f"{here[key]:.1%}")
            if equal:
                verdict = "same, bit for bit"
            elif conditions_same:
                verdict = "DIFFERS although every condition is the same: please report it"
            else:
                verdict = "differs, as the conditions above that differ make expected"
        else:
            shown = (str(reference[key]), str(here[key]))
            verdict = "same" if equal else f"differs: {WHAT_FOLLOWS.get(key, 'another protocol: not comparable')}"
        same &= equal
        rows.append((key, *shown, verdict))
    return rows, same


def measure(root: Path, overrides: list[str], train: bool) -> dict:
    """The four conditions of this machine for the config of ``overrides`` (its corpus and feature cache built
    under ``root``, or reused), and with ``train`` the test metrics of that command run there (seed 42)."""
    if train:
        return _trained(root, overrides)
    from genre.assembly.build import build_frontend, compose_config, prepare_data
    from genre.train import numerics_tags

    cfg = compose_config("train", [f"paths.root_dir={root}", *overrides])
    data = prepare_data(cfg, build_frontend(cfg.features))
    return {**numerics_tags(data), "split_protocol": data.index.split_protocol}


def _trained(root: Path, overrides: list[str]) -> dict:
    import mlflow

    command = [sys.executable, "-c", "from genre.cli import train_command; train_command()", f"paths.root_dir={root}",
               "trainer.enable_progress_bar=false", "logger.experiment_name=genre-check", *overrides]
    print(f"training: python train.py {' '.join(overrides)} (in {root}) ...", flush=True)
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the training run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name("genre-check")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    tags, metrics = run.data.tags, run.data.metrics
    return {**{k: tags[k] for k in CONDITIONS}, "split_protocol": tags["split_protocol"],
            **{k: metrics[k] for k in METRICS}, "run_id": run.info.run_id}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genre.check", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:]))
    parser.add_argument("overrides", nargs="*", help="train.py settings (a reference of your own must name them too)")
    parser.add_argument("--root", type=Path, help="where the corpus, caches and run go (default: a new temporary folder)")
    parser.add_argument("--train", action="store_true", help="also run the command and compare its test metrics")
    parser.add_argument("--reference", type=Path, help="compare with this reference (JSON) instead of the README's")
    parser.add_argument("--write-reference", type=Path, help="write what was measured here as a reference (JSON)")
    args = parser.parse_args(argv)
    if args.overrides and not (args.reference or args.write_reference):
        parser.error("the built-in reference is the default command's: with settings, give --reference FILE "
                     "(or --write-reference FILE to make one)")
    reference = REFERENCE
    if args.reference:
        try:
            reference = json.loads(args.reference.read_text())
        except (OSError, ValueError) as error:
            parser.error(f"--reference {args.reference}: not a reference written by --write-reference ({error})")
        if reference.get("overrides", []) != args.overrides:
            parser.error(f"--reference {args.reference} was measured with settings {reference.get('overrides', [])}; "
                         f"give the same settings to compare")
    with tempfile.TemporaryDirectory(prefix="genre-check-") as scratch:
        root = (args.root or Path(scratch)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        here = measure(root, args.overrides, args.train)
    if args.write_reference:
        args.write_reference.write_text(json.dumps({"command": " ".join(["python train.py", *args.overrides]),
                                                    "overrides": args.overrides, **here}, indent=2))
        print(f"reference written: {args.write_reference}")
        if args.overrides and not args.reference:     # nothing to compare with: the built-in one is the default's
            return 0
    rows, same = compare(reference, here)
    print(f"reference: {reference.get('command', 'python train.py')}" + ("" if args.train else
          " (its corpus, features and conditions; --train runs it too)"))
    width = max(len(row[0]) for row in rows)
    for item, theirs, ours, verdict in rows:
        shown = ours if theirs == ours else f"{ours} here, {theirs} in the reference"
        print(f"  {item:<{width}}  {shown}\n  {'':<{width}}  -> {verdict}")
    print("this machine reproduces the reference bit for bit" if same and args.train else
          "this machine has the reference's conditions: a training run should reproduce it bit for bit" if same else
          "this machine differs from the reference where marked: compare runs as mean ± std over seeds")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

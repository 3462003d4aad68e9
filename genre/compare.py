"""Compare the runs of an experiment with each other and with the published numbers.

    python -m genre.compare experiment=lachmish2016 [logger.tracking_uri=...] [out_dir=...]

Reads the finished runs of the experiment's MLflow experiment and groups them by every resolved
setting except the seed and what only says where or how a run ran (output paths, run name, worker
counts, progress bars): only true replicates are averaged. It reports mean and standard deviation over
distinct seeds of clip and track accuracy and of the genre separation scores (runs that repeat a seed
are counted once, and the table says so), and puts them beside the preset's published numbers. Each
split protocol has its own table, whose columns are exactly the settings that differ between its rows. Writes a Markdown table, an HTML page and a bar chart to
``out_dir`` (default ``outputs/compare/<experiment>``) and logs them as artifacts of a comparison run, in
the experiment ``<experiment>-comparisons`` (the training runs' list keeps training runs only).
"""
from __future__ import annotations

import base64
import html
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import numpy as np
from omegaconf import DictConfig, OmegaConf

from genre.assembly.build import compose_config
from genre.runtime.errors import ConfigError, exit_on_user_error
from genre.tracking.store import RUN_KIND_TAG, resolve_tracking_uri

METRICS = (("test/acc", "clip acc"), ("test/track_acc", "track acc"),
           ("test/features_silhouette", "feature silhouette"), ("test/features_knn_acc", "feature k-NN acc"),
           ("test/embeddings_knn_acc", "embedding k-NN acc"))
# Settings that say where or how a run ran, not what it computed: never a reason to split a group.
RUN_LOCAL = ("seed", "ckpt_path", "processes", "logger/run_name", "logger/tracking_uri", "logger/artifact_location",
             "clips/cache_workers", "dataset/num_workers", "trainer/enable_progress_bar",
             "trainer/enable_model_summary", "trainer/log_every_n_steps")
RUN_LOCAL_PREFIXES = ("paths/",)
RUN_LOCAL_SUFFIXES = ("/dirpath",)   # where a callback writes (checkpoints): an output path


def mean_std(values) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and number of replicate values: the one place the
    spread over seeds is computed (this table, ``genre.shift``)."""
    values = np.asarray(list(values), dtype=float)
    if not len(values):
        return float("nan"), float("nan"), 0
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values)


@dataclass
class Group:
    """Runs whose every setting but the seed (and run-local ones) is the same: replicates."""

    protocol: str
    dataset: str
    features: str
    model: str
    settings: tuple[tuple[str, str], ...]          # every setting that defines the group
    run_ids: list[str] = field(default_factory=list)
    seeds: list[str] = field(default_factory=list)  # one per run, in run order
    values: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))

    @property
    def label(self) -> str:
        return f"{self.model} on {self.features}"

    @property
    def distinct_seeds(self) -> list[str]:
        return sorted(set(self.seeds), key=lambda seed: (len(seed), seed))

    def mean_std(self, metric: str) -> tuple[float, float, int]:
        """Mean and standard deviation over distinct seeds, and their number: runs that repeat a seed are
        not replicates, so each seed counts once (the mean of its runs)."""
        per_seed = [np.mean(finite) for values in self.values.get(metric, {}).values()
                    if len(finite := [v for v in values if np.isfinite(v)])]
        return mean_std(per_seed)

    def seeds_cell(self) -> str:
        """n, the seeds, and a warning where runs repeat a seed."""
        seeds = self.distinct_seeds
        text = f"{len(seeds)} ({', '.join(seeds)})"
        repeated = sorted(seed for seed in seeds if self.seeds.count(seed) > 1)
        if repeated:
            text += f"; {len(self.run_ids)} runs: seed {', '.join(repeated)} repeated, counted once (not replicates)"
        return text


def is_run_local(key: str, tags: dict[str, str]) -> bool:
    """A setting that says where or how a run ran; the synthetic corpus's folder is named after its
    settings (which are compared), so its path is run-local too."""
    return key in RUN_LOCAL or key.startswith(RUN_LOCAL_PREFIXES) or key.endswith(RUN_LOCAL_SUFFIXES) or \
        (key == "dataset/root" and tags.get("dataset") == "synthetic")


def group_runs(runs) -> list[Group]:
    """Finished training runs grouped by every setting but the seed and the run-local ones."""
    groups: dict[tuple, Group] = {}
    for run in runs:
        tags, params = run.data.tags, run.data.params
        if RUN_KIND_TAG in tags or "test/track_acc" not in run.data.metrics:   # a comparison, a sweep's parent
            continue
        settings = tuple(sorted((key, value) for key, value in params.items() if not is_run_local(key, tags)))
        key = (tags.get("split_protocol", "unknown"), tags.get("dataset", "?"), tags.get("features", "?"),
               tags.get("model", "?"), settings)
        group = groups.setdefault(key, Group(*key))
        group.run_ids.append(run.info.run_id)
        seed = tags.get("seed", params.get("seed", "?"))
        group.seeds.append(seed)
        for metric, _ in METRICS:
            if metric in run.data.metrics:
                group.values[metric][seed].append(run.data.metrics[metric])
    return sorted(groups.values(), key=lambda g: (g.protocol, g.label, g.settings))


def _cell(group: Group, metric: str) -> str:
    mean, std, n = group.mean_std(metric)
    if not n:
        return "–"
    if n == 1:   # one seed has no spread: none is shown, rather than a "± 0.0" that claims one
        return f"{100 * mean:.1f} %" if metric.endswith("acc") else f"{mean:.3f}"
    if metric.endswith("acc"):
        return f"{100 * mean:.1f} ± {100 * std:.1f} %"
    return f"{mean:.3f} ± {std:.3f}"


def _distinguishing(groups: list[Group]) -> list[str]:
    """Exactly the settings that differ between ``groups`` (a table's rows): its columns."""
    keys = {k for g in groups for k, _ in g.settings}
    return sorted(k for k in keys if len({dict(g.settings).get(k) for g in groups}) > 1)


def markdown(experiment: str, reference: DictConfig | None, groups: list[Group]) -> str:
    """The comparison as Markdown, one table per split protocol (by hand: pandas' ``to_markdown`` needs
    ``tabulate``, which nothing else here needs, and the cells are formatted per metric anyway)."""
    lines = [f"# Comparison: {experiment}", ""]
    if reference:
        lines += [f"{reference.title}.", ""]
    for protocol in sorted({g.protocol for g in groups}):
        members = [g for g in groups if g.protocol == protocol]
        shown = _distinguishing(members)
        lines += [f"## Split protocol: {protocol}", "",
                  "| run configuration | " + " | ".join(shown + ["seeds"] + [name for _, name in METRICS]) + " |",
                  "|" + "---|" * (2 + len(shown) + len(METRICS))]
        for g in members:
            settings = dict(g.settings)
            row = [f"{g.label} ({g.dataset})"] + [settings.get(k, "") for k in shown]
            row += [g.seeds_cell()] + [_cell(g, m) for m, _ in METRICS]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += ["Mean ± standard deviation over distinct seeds (n); a seed run more than once counts once. Rows differ "
              "only in the settings shown; accuracies on the test split of the protocol named above.", ""]
    if reference and reference.published:
        lines += ["## Published", "", f"Protocol: {reference.protocol}", "",
                  "| published result | level | accuracy | source | note |", "|---|---|---|---|---|"]
        for entry in reference.published:
            lines.append(f"| {entry.label} | {entry.level} | {entry.accuracy:.2f} % | {entry.source} | "
                         f"{entry.get('note', '')} |")
        lines += ["", "Published numbers come from their own protocols (above), which differ from the runs' "
                      "split protocols: compare them with that in mind.", ""]
    return "\n".join(lines)


def bar_chart(experiment: str, reference: DictConfig | None, groups: list[Group]) -> plt.Figure:
    """Track accuracy per configuration (mean ± std over seeds) beside the published numbers."""
    labels, means, errors, colours = [], [], [], []
    palette = plt.get_cmap("tab10")
    protocols = sorted({g.protocol for g in groups})
    shown = _distinguishing(groups)
    for g in groups:
        mean, std, n = g.mean_std("test/track_acc")
        settings = ", ".join(f"{key.split('/')[-1]}={value}" for key, value in g.settings if key in shown)
        labels.append(f"{g.label}\n{settings}\nn={n}, protocol {protocols.index(g.protocol) + 1}")
        means.append(100 * mean)
        errors.append(100 * std)
        colours.append(palette(protocols.index(g.protocol) % 10))
    published = list(reference.published) if reference and reference.published else []
    labels += [f"{entry.label}\n(published, {entry.level})" for entry in published]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(labels)), 5.5))
    ax.bar(range(len(means)), means, yerr=errors, color=colours, capsize=4, edgecolor="black", linewidth=0.5)
    ax.bar(range(len(means), len(labels)), [entry.accuracy for entry in published], color="lightgrey",
           edgecolor="black", linewidth=0.5, hatch="//")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    legend = "; ".join(f"protocol {i + 1}: {p}" for i, p in enumerate(protocols))
    against = " vs published" if published else ""   # said only when published numbers are drawn
    ax.set_title(f"{experiment}: test track accuracy (mean ± std over seeds){against}\n{legend}", fontsize=8)
    fig.tight_layout()
    return fig


def tsne_side_by_side(client: mlflow.MlflowClient, groups: list[Group], out: Path) -> Path | None:
    """The input-feature t-SNE of one run per feature kind, side by side (the seed's mel-vs-MFCC picture)."""
    first_of_kind: dict[str, str] = {}
    for g in groups:
        first_of_kind.setdefault(g.features, g.run_ids[0])
    if len(first_of_kind) < 2:
        return None
    fig, axes = plt.subplots(1, len(first_of_kind), figsize=(6 * len(first_of_kind), 5.5))
    with tempfile.TemporaryDirectory(prefix="genre-compare-") as downloads:   # no stray copy left in ``out``
        for ax, (kind, run_id) in zip(axes, sorted(first_of_kind.items()), strict=True):
            ax.imshow(plt.imread(client.download_artifacts(run_id, "tsne_features.png", downloads)))
            ax.set_axis_off()
            ax.set_title(kind)
    fig.tight_layout()
    path = out / "tsne_features_side_by_side.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def html_page(markdown_text: str, images: list[Path]) -> str:
    """A self-contained page: the tables and the figures (embedded)."""
    body, table = [], []
    for line in markdown_text.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
                tag = "th" if not table else "td"
                table.append("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
            continue
        if table:
            body.append("<table>" + "".join(table) + "</table>")
            table = []
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    for image in images:
        data = base64.b64encode(image.read_bytes()).decode()
        body.append(f'<p><img alt="{image.stem}" src="data:image/png;base64,{data}"></p>')
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:4px 8px;font-size:13px}img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>" \
           + "\n".join(body) + "</body></html>"


def compare(cfg: DictConfig, out_dir: str | Path | None = None) -> dict:
    """Build the comparison of ``cfg.logger.experiment_name``; returns paths, groups and the run id."""
    experiment = cfg.logger.experiment_name
    tracking_uri = resolve_tracking_uri(cfg.logger.tracking_uri, cfg.paths.root_dir)
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    if client.get_experiment_by_name(experiment) is None:
        raise ConfigError(f"no MLflow experiment {experiment!r} in {tracking_uri}; train runs with "
                         f"experiment=... (or logger.experiment_name=...) first")
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string="attributes.status = 'FINISHED'",
                              output_format="list")
    groups = group_runs(runs)
    if not groups:
        raise ConfigError(f"experiment {experiment!r} has no finished training run with test metrics")
    out = Path(out_dir or Path(cfg.paths.log_dir) / "compare" / experiment)
    out.mkdir(parents=True, exist_ok=True)
    reference = cfg.get("reference")
    text = markdown(experiment, reference, groups)
    (out / "comparison.md").write_text(text)
    fig = bar_chart(experiment, reference, groups)
    fig.savefig(out / "comparison.png", dpi=110)
    plt.close(fig)
    images = [out / "comparison.png"]
    side_by_side = tsne_side_by_side(client, groups, out)
    if side_by_side:
        images.append(side_by_side)
    (out / "comparison.html").write_text(html_page(text, images))
    # in an experiment of its own: the training runs' list shows training runs only
    comparisons = f"{experiment}-comparisons"
    if client.get_experiment_by_name(comparisons) is None:
        location = str(client.get_experiment_by_name(experiment).artifact_location)
        local = "://" not in location or location.startswith("file:")   # else the server's own store decides
        client.create_experiment(comparisons, artifact_location=f"{location}-comparisons" if local else None)
    compared = sum(len(g.run_ids) for g in groups)
    with mlflow.start_run(experiment_id=client.get_experiment_by_name(comparisons).experiment_id,
                          run_name=f"comparison of {compared} runs of {experiment}",
                          tags={RUN_KIND_TAG: "comparison", "compared_experiment": experiment,
                                "mlflow.note.content": f"The comparison table of experiment {experiment}: "
                                                       f"{compared} runs in {len(groups)} configurations."}) as run:
        for path in [out / "comparison.md", out / "comparison.html", *images]:
            mlflow.log_artifact(str(path))
        mlflow.log_param("compared_runs", compared)
    print(text)
    print(f"written to {out}; logged as run {run.info.run_id} in experiment {comparisons}")
    return {"out_dir": out, "groups": groups, "run_id": run.info.run_id, "markdown": text}


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    overrides = list(sys.argv[1:] if argv is None else argv)
    out_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("out_dir=")), None)
    cfg = compose_config("train", [o for o in overrides if not o.startswith("out_dir=")])
    OmegaConf.resolve(cfg.logger)
    compare(cfg, out_dir)


if __name__ == "__main__":
    main()

"""`purejaxspi plot DIR [DIR ...]`: learning curves and rliable's aggregate metrics from run directories.

Runs are grouped into one line per algorithm / setting: the algorithm plus every config field and
hyperparameter that differs between the loaded runs; seeds are the samples. Curves show the IQM
(or mean) across seeds per env-step bin with a stratified-bootstrap 95% band; the aggregate panel
compares final scores (the metric's mean over the last 10% of env steps) across groups and games.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from purejaxspi.analysis.stats import (
    AGGREGATE_NAMES,
    CI,
    aggregate_estimates,
    curve_estimates,
    improvement_estimates,
)
from purejaxspi.errors import PlotError
from purejaxspi.lifecycle.metrics import in_final_window
from purejaxspi.lifecycle.rundir import RunDirError, check_kinds, read_record

# Columns that average over the episodes finished in an iteration: their final score weights each
# iteration by its episodes, as summary.json's final_return does.
EPISODE_COLUMNS = ("episodic_return", "episode_length")


@dataclasses.dataclass
class RunCurve:
    """One run (one seed of one setting) of one env: the metric against env steps."""

    env: str
    settings: dict  # everything that may tell groups apart: algo, config fields, hp_<name>
    seed: int
    steps: np.ndarray
    values: np.ndarray  # NaN where the cell is empty (e.g. no episode finished)
    weights: np.ndarray  # episodes per iteration for EPISODE_COLUMNS, else 1
    label: str = ""

    def final(self) -> float:
        """The final score: the (weighted) mean over the last metrics.FINAL_FRACTION of the run's env steps."""
        keep = in_final_window(self.steps, self.steps.max()) & ~np.isnan(self.values) & (self.weights > 0)
        return float(np.average(self.values[keep], weights=self.weights[keep])) if keep.any() else math.nan

    def mean_over_run(self) -> float:
        """The mean over every logged iteration: the area under the learning curve per env step, which
        ranks how fast runs learn where their final scores all reach a cap."""
        keep = ~np.isnan(self.values)
        return float(self.values[keep].mean()) if keep.any() else math.nan


def read_run_dir(run_dir: Path, metric: str) -> list[RunCurve]:
    """Every run of a directory's metrics.csv, reading the columns its header names."""
    record = read_record(run_dir)
    check_kinds(run_dir, ("metrics.csv",))
    path = run_dir / "metrics.csv"
    if not path.is_file():
        raise PlotError(f"{path} not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if metric not in header:
            choices = [c for c in header if c not in ("run", "seed", "iteration") and not c.startswith("hp_")]
            raise PlotError(f"{path} has no column {metric!r}; choose --metric from {', '.join(choices)}")
        data: dict[int, list] = {}
        seeds, hparams = {}, {}
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                continue  # a line cut off by a kill
            run = int(row["run"])
            seeds[run] = int(row["seed"])
            hparams[run] = {k: float(v) for k, v in row.items() if k.startswith("hp_")}
            weight = float(row["episodes"] or 0) if metric in EPISODE_COLUMNS else 1.0
            data.setdefault(run, []).append(
                (int(row["env_steps"]), float(row[metric]) if row[metric] else math.nan, weight)
            )
    config = {k: v for k, v in record["config"].items() if k != "env_id"}
    curves = []
    for run, points in sorted(data.items()):
        points.sort()
        steps, values, weights = (np.asarray(x, float) for x in zip(*points))
        curves.append(
            RunCurve(record["config"]["env_id"], {**config, **hparams[run]}, seeds[run], steps, values, weights)
        )
    return curves


def read_run_dirs(run_dirs: list[Path], metric: str) -> list[RunCurve]:
    """Every run of every directory; a directory that is not a run's, or no rows at all, is a PlotError."""
    curves = []
    for d in run_dirs:
        try:
            curves += read_run_dir(d, metric)
        except RunDirError as e:
            raise PlotError(str(e)) from None
    if not curves:
        raise PlotError("no metrics rows in " + ", ".join(map(str, run_dirs)))
    return curves


def label_groups(curves: list[RunCurve], ignore: frozenset[str] = frozenset()) -> list[str]:
    """Name each run's group by the algorithm and the fewest settings that tell the groups of its env
    apart (except those in `ignore`, e.g. a heatmap's two axes).

    A setting joins the name only where it splits groups that the algorithm and the settings before
    it (hyperparameters first) leave together: comparing two algorithms' presets names the algorithms,
    not every setting their presets differ in. Settings that differ only between envs do not split
    groups, so the same grid run on several games forms one group per setting across the games.
    """
    named_in = {}
    for env in {c.env for c in curves}:
        members = [c for c in curves if c.env == env]
        keys = sorted({k for c in members for k in c.settings} - {"algo"} - set(ignore))
        keys.sort(key=lambda k: not k.startswith("hp_"))
        named: list[str] = []
        for k in keys:
            if count_groups(members, named + [k]) > count_groups(members, named):
                named.append(k)
        named_in[env] = named
    for c in curves:
        parts = [str(c.settings.get("algo", "?"))]
        for k in named_in[c.env]:
            value = c.settings.get(k)
            parts.append(f"{k.removeprefix('hp_')}={value:g}" if isinstance(value, float) else f"{k}={value}")
        c.label = " ".join(parts)
    return list(dict.fromkeys(c.label for c in curves))


def count_groups(curves: list[RunCurve], names: list[str]) -> int:
    """How many groups the algorithm and the settings `names` split `curves` into."""
    return len({json.dumps([c.settings.get(k) for k in ("algo", *names)]) for c in curves})


def relabel(curves: list[RunCurve], labels: tuple[str, ...]) -> None:
    """Give the groups (in the order they first appear) the user's `labels`; PlotError if the counts differ."""
    groups = list(dict.fromkeys(c.label for c in curves))
    if len(labels) != len(groups):
        raise PlotError(
            f"--labels gives {len(labels)} names for {len(groups)} settings ({'; '.join(groups)}); give one each"
        )
    names = dict(zip(groups, labels))
    for c in curves:
        c.label = names[c.label]


def binned(curve: RunCurve, edges: np.ndarray) -> np.ndarray:
    """The run's metric averaged in each env-step bin, carried forward over bins without data."""
    index = np.clip(np.searchsorted(edges, curve.steps, side="left") - 1, 0, len(edges) - 2)
    sums = np.bincount(index, np.nan_to_num(curve.values), len(edges) - 1)
    counts = np.bincount(index, ~np.isnan(curve.values), len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(counts > 0, sums / counts, np.nan)
    for i in range(1, len(out)):  # forward fill: the latest value seen
        if np.isnan(out[i]):
            out[i] = out[i - 1]
    return out


def step_bins(curves: list[RunCurve], bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges and centres of at most `bins` env-step bins spanning the curves (no more bins than points)."""
    edges = np.linspace(0.0, max(c.steps.max() for c in curves), min(bins, max(len(c.steps) for c in curves)) + 1)
    return edges, (edges[:-1] + edges[1:]) / 2


def draw_band(
    ax, members: list[RunCurve], edges: np.ndarray, aggregate: str, reps: int, seed: int, label: str, color=None
) -> bool:
    """The members' aggregate curve with its bootstrap band; False (nothing drawn) when no bin has
    a value from every seed (bins before that are skipped)."""
    matrix = np.stack([binned(c, edges) for c in members])
    drawn = ~np.isnan(matrix).any(axis=0)
    if not drawn.any():
        return False
    centres = ((edges[:-1] + edges[1:]) / 2)[drawn]
    point, interval = curve_estimates(matrix[:, drawn], aggregate, reps, seed)
    (line,) = ax.plot(centres, point, color=color, label=label, lw=1.8)
    ax.fill_between(centres, interval[0], interval[1], color=line.get_color(), alpha=0.2, lw=0)
    return True


def normalised_finals(curves: list[RunCurve], metric: str) -> tuple[dict[str, dict[str, list[float]]], str]:
    """{group: {env: [final score per seed]}} and how the scores are scaled (for the axis label)."""
    envs = sorted({c.env for c in curves})
    finals: dict[str, dict[str, list[float]]] = {}
    for c in curves:
        finals.setdefault(c.label, {}).setdefault(c.env, []).append(c.final())
    hns = _hns_table() if metric == "episodic_return" else None
    if hns is not None and all(env in hns for env in envs):
        from purejaxspi.envs.scores import human_normalised

        def normalised(env, x):
            return _nan_if_none(human_normalised(env, x))

        return {
            g: {e: [normalised(e, x) for x in xs] for e, xs in per.items()} for g, per in finals.items()
        }, "human-normalised score"
    if len(envs) == 1:
        return finals, f"final {metric}"
    bounds = {
        e: (
            np.nanmin([x for per in finals.values() for x in per.get(e, [])]),
            np.nanmax([x for per in finals.values() for x in per.get(e, [])]),
        )
        for e in envs
    }

    def scale(e, x):
        return (x - bounds[e][0]) / ((bounds[e][1] - bounds[e][0]) or 1.0)

    return (
        {g: {e: [scale(e, x) for x in xs] for e, xs in per.items()} for g, per in finals.items()},
        f"final {metric}, min-max normalised per env over the plotted runs",
    )


def score_matrices(finals: dict[str, dict[str, list[float]]]) -> dict[str, np.ndarray]:
    """{group: [runs, envs]} for the groups that have every env (seeds cut to the fewest any env has)."""
    envs = sorted({e for per in finals.values() for e in per})
    out = {}
    for group, per in finals.items():
        if set(per) != set(envs):
            continue
        n = min(len(per[e]) for e in envs)
        matrix = np.array([per[e][:n] for e in envs], float).T
        if not np.isnan(matrix).any():
            out[group] = matrix
    return out


def plot(
    run_dirs: list[Path],
    out: Path,
    metric: str = "episodic_return",
    aggregate: str = "iqm",
    bins: int = 50,
    reps: int = 2000,
    seed: int = 0,
    gap_threshold: float | None = None,
    labels: tuple[str, ...] = (),
) -> dict:
    """Draw the figure into `out` and write the numbers next to it (`out` with .json); returns them.
    `labels` name the compared settings in order (default: what differs between them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = unique_curves(read_run_dirs(run_dirs, metric))
    if labels:
        relabel(curves, labels)
    groups = list(dict.fromkeys(c.label for c in curves))
    envs = sorted({c.env for c in curves})
    colours = {g: plt.get_cmap("tab10")(i % 10) for i, g in enumerate(groups)}
    finals, score_label = normalised_finals(curves, metric)
    scores = score_matrices(finals)
    show_aggregates = len(scores) >= 1 and any(m.size > 1 for m in scores.values())
    show_gap = show_aggregates and metric == "episodic_return"
    names = (AGGREGATE_NAMES if show_gap else AGGREGATE_NAMES[:3]) if show_aggregates else ()
    poi = improvement_estimates(scores, reps, seed) if show_aggregates else ({}, {})
    width = max(4.5 * len(envs), 3.2 * (len(names) + (1 if poi[0] else 0)), 8)
    height = 4.2 + (0.45 * len(scores) + 2.4 if show_aggregates else 0) + 0.3 * len(groups)  # legend rows
    fig = plt.figure(figsize=(width, height), layout="constrained")
    top: Any = fig
    bottom: Any = None
    if show_aggregates:
        top, bottom = fig.subfigures(2, 1, height_ratios=[4.2, height - 4.2])  # type: ignore[misc]
    summary: dict[str, Any] = {
        "metric": metric,
        "aggregate": aggregate,
        "confidence": CI,
        "bootstrap_reps": reps,
        "envs": envs,
        "groups": draw_curve_panels(top, curves, colours, metric, aggregate, bins, reps, seed, width),
    }
    if show_aggregates:
        threshold = gap_threshold
        if threshold is None:
            default_max = max(float(np.max(m)) for m in scores.values()) if scores else 1.0
            threshold = 1.0 if score_label != f"final {metric}" else default_max
        estimates = aggregate_estimates(scores, threshold, reps, seed)
        draw_aggregate_panels(bottom, scores, colours, names, estimates, poi, threshold, score_label)
        summary.update(aggregate_summary(scores, names, estimates, poi, score_label, threshold if show_gap else None))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def unique_curves(curves: list[RunCurve]) -> list[RunCurve]:
    """The curves labelled by what differs between their settings, the same seed of the same setting
    loaded twice counted once."""
    label_groups(curves)
    seen, unique = set(), []
    for c in curves:
        if (c.env, c.label, c.seed) not in seen:
            seen.add((c.env, c.label, c.seed))
            unique.append(c)
    return unique


def draw_curve_panels(top, curves, colours, metric, aggregate, bins, reps, seed, width) -> dict:
    """One learning-curve panel per env, a line and band per group, a shared legend below; returns
    {group: {env: {seeds, final}}} of what was drawn."""
    envs = sorted({c.env for c in curves})
    groups: dict[str, dict] = {}
    axes = np.atleast_1d(top.subplots(1, len(envs), squeeze=False)[0])
    for ax, env in zip(axes, envs):
        env_curves = [c for c in curves if c.env == env]
        edges, _ = step_bins(env_curves, bins)
        for group, colour in colours.items():
            members = [c for c in env_curves if c.label == group]
            if not members or not draw_band(ax, members, edges, aggregate, reps, seed, group, colour):
                continue
            groups.setdefault(group, {})[env] = {
                "seeds": [c.seed for c in members],
                "final": [_number(c.final()) for c in members],
            }
        counts = sorted({len([c for c in env_curves if c.label == g]) for g in colours} - {0})
        seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        ax.set_title(f"{env} ({seeds} seed{'s' if counts[-1] > 1 else ''} per line)")
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"{metric} ({aggregate.upper() if aggregate == 'iqm' else aggregate} over seeds, {CI:.0%} CI)")
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 4))
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    columns = max(1, min(3, len(labels), int(width * 12 / max(len(lab) + 6 for lab in labels))))
    top.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=9, frameon=False)
    return groups


def draw_aggregate_panels(bottom, scores, colours, names, estimates, poi, threshold, score_label) -> None:
    """The aggregate metrics across seeds (and games) with their CIs, and the probability of improvement."""
    point, interval = estimates
    poi_point, poi_interval = poi
    panels = bottom.subplots(1, len(names) + (1 if poi_point else 0), squeeze=False)[0]
    order = list(scores)
    for k, (ax, name) in enumerate(zip(panels, names)):
        for y, group in enumerate(order):
            lo, hi = interval[group][:, k]
            ax.barh(y, hi - lo, left=lo, height=0.6, color=colours[group], alpha=0.75)
            ax.plot([point[group][k]] * 2, [y - 0.3, y + 0.3], color="black", lw=1.5)
        ax.set_yticks(range(len(order)), order if k == 0 else [""] * len(order), fontsize=9)
        ax.invert_yaxis()  # groups top to bottom in legend order
        ax.set_title(name + (f" (threshold {threshold:g})" if name == "Optimality gap" else ""), fontsize=10)
        ax.set_xlabel(score_label if len(score_label) < 40 else "normalised score", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    if poi_point:
        ax = panels[-1]
        for y, pair in enumerate(poi_point):
            lo, hi = np.ravel(poi_interval[pair])
            ax.barh(y, hi - lo, left=lo, height=0.6, color="tab:grey", alpha=0.6)
            ax.plot([float(np.ravel(poi_point[pair])[0])] * 2, [y - 0.3, y + 0.3], color="black", lw=1.5)
        ax.set_yticks(range(len(poi_point)), list(poi_point), fontsize=8)
        ax.invert_yaxis()
        ax.yaxis.tick_right()
        ax.axvline(0.5, color="black", ls="--", lw=0.8)
        ax.set_xlim(-0.03, 1.03)
        ax.set_title("P(X > Y)", fontsize=10)
        ax.set_xlabel("probability of improvement", fontsize=9)
    num_envs = next(iter(scores.values())).shape[1]  # [runs, envs]
    bottom.suptitle(f"Aggregates over {num_envs} env(s): {score_label}; {CI:.0%} stratified bootstrap CIs", fontsize=10)


def aggregate_summary(scores, names, estimates, poi, score_label, threshold) -> dict:
    """The aggregates' numbers as the figure's JSON records them."""
    point, interval = estimates
    poi_point, poi_interval = poi
    order = list(scores)
    summary: dict[str, Any] = {
        "score": score_label,
        "aggregated_groups": order,  # groups with final scores in every env
        "aggregates": {
            g: {
                n: {"point": float(point[g][k]), "ci": [float(interval[g][0, k]), float(interval[g][1, k])]}
                for k, n in enumerate(names)
            }
            for g in order
        },
    }
    if threshold is not None:
        summary["optimality_gap_threshold"] = threshold
    summary["probability_of_improvement"] = {
        p: {"point": float(np.ravel(poi_point[p])[0]), "ci": [float(x) for x in np.ravel(poi_interval[p])]}
        for p in poi_point
    }
    return summary


def _nan_if_none(x: float | None) -> float:
    return math.nan if x is None else x


def _number(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@functools.cache
def _hns_table():
    try:
        from purejaxspi.envs import scores as hns
    except ImportError:
        return None
    return hns.reference_scores()

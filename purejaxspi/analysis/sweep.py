"""`purejaxspi plot DIR --heatmap X Y`: a sweep over two hyperparameters as one heatmap per env.

Each cell is one pair of values (x, y); its samples are the seeds trained with it, each scored by its
final value of the metric (the mean over the last 10% of env steps, as everywhere). A cell shows the
IQM (or mean) over its seeds with a 95% percentile-bootstrap CI (the IQM's is the one summary.json
gives each setting, `lifecycle.metrics.iqm_interval`). Runs that differ in anything else
(the algorithm, a third hyperparameter) form separate panels. Below the heatmaps, the learning curves
of the best cell, the cell where both are 0 (for the alphas: PPO's objective in the same program) and
any cells named with `--highlight` show how the scores were reached.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from purejaxspi.analysis.plot import RunCurve, draw_band, label_groups, read_run_dirs, step_bins
from purejaxspi.analysis.stats import CI, curve_estimates
from purejaxspi.errors import PlotError
from purejaxspi.lifecycle.metrics import iqm, iqm_interval


@dataclasses.dataclass
class Cell:
    """The seeds of one (x, y) pair in one panel."""

    x: float
    y: float
    curves: list[RunCurve]
    point: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)

    def finals(self) -> np.ndarray:
        return np.asarray([c.final() for c in self.curves], float)


@dataclasses.dataclass
class Panel:
    """One env and one setting of everything else: its cells over the x values and y values."""

    env: str
    group: str
    x_values: list[float]
    y_values: list[float]
    cells: dict[tuple[float, float], Cell]

    def best(self) -> Cell | None:
        scored = [c for c in self.cells.values() if math.isfinite(c.point)]
        return max(scored, key=lambda c: c.point) if scored else None


def hparam_key(name: str, curves: list[RunCurve]) -> str:
    """The settings key of hyperparameter `name` ("reward_coef" or "hp_reward_coef"); a typo names the choices."""
    key = name if name.startswith("hp_") else f"hp_{name}"
    names = sorted({k for c in curves for k in c.settings if k.startswith("hp_")})
    if key not in names:
        raise PlotError(
            f"--heatmap: {name!r} is not a hyperparameter of these runs; choose from "
            + ", ".join(n.removeprefix("hp_") for n in names)
        )
    return key


def sweep_panels(
    curves: list[RunCurve], x: str, y: str, aggregate: str = "iqm", reps: int = 2000, seed: int = 0
) -> list[Panel]:
    """Group runs into panels (env, everything but x and y) and cells (x, y), each cell estimated."""
    if not curves:
        raise PlotError("no runs to sweep")
    kx, ky = hparam_key(x, curves), hparam_key(y, curves)
    if kx == ky:
        raise PlotError("--heatmap needs two different hyperparameters")
    label_groups(curves, frozenset({kx, ky}))
    panels: dict[tuple[str, str], Panel] = {}
    for c in sorted(curves, key=lambda c: c.env):
        panel = panels.setdefault((c.env, c.label), Panel(c.env, c.label, [], [], {}))
        cell = panel.cells.setdefault((c.settings[kx], c.settings[ky]), Cell(c.settings[kx], c.settings[ky], []))
        if all(other.seed != c.seed for other in cell.curves):  # a seed loaded twice counts once
            cell.curves.append(c)
    for panel in panels.values():
        panel.x_values = sorted({cx for cx, _ in panel.cells})
        panel.y_values = sorted({cy for _, cy in panel.cells})
        for cell in panel.cells.values():
            finals = cell.finals()
            finals = finals[np.isfinite(finals)]
            if finals.size == 0:
                continue
            if aggregate == "iqm":
                cell.point, cell.ci = iqm(finals), iqm_interval(finals, reps, seed)
            else:
                point, interval = curve_estimates(finals[:, None], aggregate, reps, seed)
                cell.point, cell.ci = float(point[0]), (float(interval[0, 0]), float(interval[1, 0]))
    return list(panels.values())


def _short(v: float) -> str:
    return f"{v:g}"


def _curve_cells(panel: Panel, highlight: list[tuple[float, float]]) -> list[tuple[str, Cell]]:
    """The cells whose learning curves are drawn, each with why: the best, (0, 0), the highlighted ones."""
    reasons: dict[tuple[float, float], list[str]] = {}
    best = panel.best()
    if best is not None:
        reasons.setdefault((best.x, best.y), []).append("best")
    if (0.0, 0.0) in panel.cells:
        reasons.setdefault((0.0, 0.0), []).append("both 0")
    for key in highlight:
        if key in panel.cells:
            reasons.setdefault(key, []).append("highlighted")
    return [(", ".join(why), panel.cells[key]) for key, why in reasons.items()]


def heatmap(
    run_dirs: list[Path],
    out: Path,
    x: str,
    y: str,
    metric: str = "episodic_return",
    aggregate: str = "iqm",
    bins: int = 50,
    reps: int = 2000,
    seed: int = 0,
    highlight: Sequence[tuple[float, float]] = (),
) -> dict:
    """Draw one heatmap per panel (and the chosen cells' curves) into `out`, write the numbers next to
    it (`out` with .json) and return them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sweep_panels(read_run_dirs(run_dirs, metric), x, y, aggregate, reps, seed)
    chosen = [(float(a), float(b)) for a, b in highlight]
    names = x.removeprefix("hp_"), y.removeprefix("hp_")
    stat = "IQM" if aggregate == "iqm" else "mean"
    width = max(4.0 + 1.3 * max(len(p.x_values) for p in panels), 5.0)
    fig, axes = plt.subplots(
        2,
        len(panels),
        figsize=(width * len(panels), 4.0 + 0.8 * max(len(p.y_values) for p in panels) + 3.6),
        squeeze=False,
        layout="constrained",
        height_ratios=[1.4, 1.0],
    )
    summary: dict[str, Any] = {
        "metric": metric,
        "x": names[0],
        "y": names[1],
        "aggregate": aggregate,
        "confidence": CI,
        "bootstrap_reps": reps,
        "panels": [],
    }
    for k, panel in enumerate(panels):
        draw_heatmap(fig, axes[0, k], panel, names, metric, stat)
        drawn = draw_cell_curves(axes[1, k], panel, chosen, names, metric, stat, bins, aggregate, reps, seed)
        summary["panels"].append(panel_summary(panel, drawn))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def draw_heatmap(fig, ax, panel: Panel, names: tuple[str, str], metric: str, stat: str) -> None:
    """The panel's cells as a heatmap, each with its point, CI and seed count (the best in bold)."""
    grid = np.full((len(panel.y_values), len(panel.x_values)), np.nan)
    for (cx, cy), cell in panel.cells.items():
        grid[panel.y_values.index(cy), panel.x_values.index(cx)] = cell.point
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, shrink=0.85, label=f"final {metric} ({stat})")
    finite = grid[np.isfinite(grid)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    best = panel.best()
    for (cx, cy), cell in panel.cells.items():
        i, j = panel.y_values.index(cy), panel.x_values.index(cx)
        if math.isfinite(cell.point):
            text = f"{cell.point:.3g}\n[{cell.ci[0]:.3g}, {cell.ci[1]:.3g}]\nn={len(cell.curves)}"
            colour = "black" if cell.point > middle else "white"
        else:
            text, colour = "no score", "black"
        weight = "bold" if cell is best else "normal"
        ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color=colour, fontweight=weight)
    ax.set_xticks(range(len(panel.x_values)), [_short(v) for v in panel.x_values])
    ax.set_yticks(range(len(panel.y_values)), [_short(v) for v in panel.y_values])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(f"{panel.env}: {panel.group}\nfinal {metric}, {stat} over seeds [{CI:.0%} CI]", fontsize=10)


def draw_cell_curves(ax, panel, chosen, names, metric, stat, bins, aggregate, reps, seed) -> list[dict]:
    """The learning curves of the best cell, the (0, 0) cell and the chosen ones; returns those drawn."""
    env_curves = [c for cell in panel.cells.values() for c in cell.curves]
    edges, _ = step_bins(env_curves, bins)
    drawn = []
    for why, cell in _curve_cells(panel, chosen):
        label = f"{names[0]}={_short(cell.x)} {names[1]}={_short(cell.y)} ({why})"
        if draw_band(ax, cell.curves, edges, aggregate, reps, seed, label):
            drawn.append({"x": cell.x, "y": cell.y, "why": why})
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"{metric} ({stat} over seeds, {CI:.0%} CI)")
    ax.grid(alpha=0.3)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 4))
    if drawn:
        ax.legend(fontsize=8, frameon=False)
    return drawn


def panel_summary(panel: Panel, drawn: list[dict]) -> dict:
    """A panel's numbers as the figure's JSON records them."""
    best = panel.best()
    return {
        "env": panel.env,
        "group": panel.group,
        "x_values": panel.x_values,
        "y_values": panel.y_values,
        "cells": [
            {
                "x": c.x,
                "y": c.y,
                "seeds": [r.seed for r in c.curves],
                "final": [_number(v) for v in c.finals()],
                "point": _number(c.point),
                "ci": [_number(v) for v in c.ci],
            }
            for c in panel.cells.values()
        ],
        "best": None if best is None else {"x": best.x, "y": best.y, "point": best.point},
        "curves": drawn,
    }


def _number(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None

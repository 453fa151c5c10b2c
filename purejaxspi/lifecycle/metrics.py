"""Host side of training: metrics rows out of the program, CSV and summary writers, progress bar.

Nothing here runs inside the jitted program; it only sees each chunk's metrics once it is done.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from purejaxspi.algo.config import HPARAM_NAMES, Config
from purejaxspi.envs.scores import human_normalised, reference_scores
from purejaxspi.scale.grid import RunGrid

CSV_METRICS = (
    "policy_loss",
    "value_loss",
    "entropy",
    "reward_loss",
    "transition_loss",
    "gradient_penalty",
    "approx_kl",
    "clip_fraction",
    "ratio_outside",
    "ratio_min",
    "ratio_max",
    "advantage_abs",
    "world_model_share",
    "learning_rate",
    "update_epochs_run",
)
# Exact diagnostics from envs that offer a probe (the confounding gridworld); empty cells elsewhere.
PROBE_METRICS = ("init_value", "repr_dist")
# The run's hyperparameter settings are `hp_<name>`; `learning_rate` is the annealed rate in use.
CSV_COLUMNS = (
    ("run", "seed")
    + tuple(f"hp_{n}" for n in HPARAM_NAMES)
    + ("iteration", "env_steps", "episodic_return", "episode_length", "episodes")
    + CSV_METRICS
    + ("spi_condition",)
    + PROBE_METRICS
)
# A run's final score is the mean over the episodes that end in the last share of its env steps.
FINAL_FRACTION = 0.1


def in_final_window(env_steps, total_env_steps):
    """Whether iterations ending at `env_steps` (a number or array) lie in a run's final window."""
    return np.asarray(env_steps) > (1.0 - FINAL_FRACTION) * total_env_steps


def episodic_means(metrics: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean return and length of the episodes that finished in each iteration (NaN where none did)."""
    count = metrics["episode_count"]
    with np.errstate(invalid="ignore", divide="ignore"):
        ret = np.where(count > 0, metrics["episode_return_sum"] / count, np.nan)
        length = np.where(count > 0, metrics["episode_length_sum"] / count, np.nan)
    return ret, length


def _fmt(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return str(int(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    return "" if math.isnan(x) else repr(x)


class MetricsLog:
    """Writes metrics.csv chunk by chunk and keeps the per-run episode totals for the summary."""

    def __init__(self, path: Path, config: Config, grid: RunGrid, append: bool = False):
        self.config = config
        self.grid = grid
        self.file = open(path, "a" if append else "w", newline="")  # noqa: SIM115 (appended to chunk by chunk)
        self.writer = csv.writer(self.file)
        if not append:
            self.writer.writerow(CSV_COLUMNS)
        # per-run sums of returns / episodes in the final window
        self.total_env_steps = config.num_iterations * config.batch_size
        self.final_return_sum = np.zeros(grid.size)
        self.final_count = np.zeros(grid.size)
        self.latest_return = np.full(grid.size, np.nan)
        self.latest_probe = {name: np.full(grid.size, np.nan) for name in PROBE_METRICS}

    def write_chunk(
        self, metrics: dict[str, np.ndarray], first_iteration: int, num_rows: int | None = None
    ) -> list[dict]:
        """Append rows for iterations [first_iteration, first_iteration + num_rows) of every run; returns
        them, {column: value}, for the other sinks."""
        written = []
        ret, length = episodic_means(metrics)
        num_iters = ret.shape[1] if num_rows is None else num_rows
        for r, run in enumerate(self.grid.runs):
            hp = run.hparams.as_dict()
            for i in range(num_iters):
                iteration = first_iteration + i
                env_steps = (iteration + 1) * self.config.batch_size
                row = [run.index, run.seed] + [hp[n] for n in HPARAM_NAMES]
                row += [iteration, env_steps, ret[r, i], length[r, i], int(metrics["episode_count"][r, i])]
                # a metric the program does not report (PPO's world model, a Lipschitz model's penalty) is empty
                row += [metrics[name][r, i] if name in metrics else np.nan for name in CSV_METRICS]
                row.append(bool(metrics["spi_condition"][r, i]))
                row += [metrics[name][r, i] if name in metrics else np.nan for name in PROBE_METRICS]
                self.writer.writerow([_fmt(v) for v in row])
                written.append(dict(zip(CSV_COLUMNS, row)))
                if in_final_window(env_steps, self.total_env_steps):
                    self.final_return_sum[r] += metrics["episode_return_sum"][r, i]
                    self.final_count[r] += metrics["episode_count"][r, i]
            finished = ret[r, :num_iters][~np.isnan(ret[r, :num_iters])]
            if finished.size:
                self.latest_return[r] = finished[-1]
            for name in PROBE_METRICS:
                if name in metrics and num_iters:
                    self.latest_probe[name][r] = metrics[name][r, num_iters - 1]
        self.file.flush()
        return written

    def accumulators(self) -> dict[str, np.ndarray]:
        """The per-run totals a checkpoint keeps (`name` or `latest_probe.<probe>`), to resume the summary."""
        probes = {f"latest_probe.{name}": values for name, values in self.latest_probe.items()}
        totals = {"final_return_sum": self.final_return_sum, "final_count": self.final_count}
        return {**totals, "latest_return": self.latest_return, **probes}

    def restore(self, accumulators: dict[str, np.ndarray]) -> None:
        """Put back what `accumulators` gave (a probe added since the checkpoint keeps its NaNs)."""
        for name, value in accumulators.items():
            owner, _, probe = name.partition(".")
            if probe:
                self.latest_probe[probe] = value.copy()
            else:
                setattr(self, owner, value.copy())

    def final_returns(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.final_count > 0, self.final_return_sum / self.final_count, np.nan)

    def probe_summary(self) -> dict:
        """final_<probe> per run (its value after the last iteration) and the median over runs."""
        summary = {}
        for name, values in self.latest_probe.items():
            if np.isnan(values).all():
                continue
            summary[f"final_{name}"] = [_json_float(v) for v in values]
            summary[f"median_final_{name}"] = _json_float(np.nanmedian(values))
        return summary

    def close(self):
        """Close the file; a flush that fails here (a full disk, already reported) loses only unflushed rows."""
        with contextlib.suppress(OSError):
            self.file.close()


def trim_mean(values: np.ndarray, proportion: float, axis: int = 0) -> np.ndarray:
    """The mean without the `proportion` lowest and highest values along `axis`: scipy.stats.trim_mean's
    computation, step for step and so to the bit, without the 0.9 s that importing scipy.stats costs
    every run's summary."""
    values = np.asarray(values)
    count = values.shape[axis]
    low = int(proportion * count)
    high = count - low
    if low > high:
        raise ValueError(f"cannot trim {proportion} from each end")
    kept = np.partition(values, (low, high - 1), axis).take(np.arange(low, high), axis)
    return np.mean(kept, axis=axis)


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (robust to outlier seeds)."""
    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    return float(trim_mean(values, 0.25)) if values.size else float("nan")


def iqm_interval(values: np.ndarray, reps: int = 2000, seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap CI of the IQM over seeds: the seeds resampled with replacement `reps` times
    (for one task, what rliable's stratified bootstrap does), reproducible for a seed."""
    values = np.asarray(values, float)
    samples = values[np.random.default_rng(seed).integers(0, values.size, (reps, values.size))]
    low, high = np.percentile(trim_mean(samples, 0.25, axis=1), [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(low), float(high)


def _json_float(x: float):
    return None if x is None or not math.isfinite(float(x)) else float(x)


def write_summary(
    path: Path | None,
    config: Config,
    grid: RunGrid,
    final_returns: np.ndarray,
    steps_per_second: float,
    extra: dict | None = None,
    run_fields: dict[str, list] | None = None,
):
    """summary.json; `extra` adds top-level fields, `run_fields` {name: one value per run} per-run ones."""
    run_fields = run_fields or {}
    finite = final_returns[~np.isnan(final_returns)]
    summary = {
        "env": config.env_id,
        "algo": config.algo,
        "runs": [
            {
                "run": run.index,
                "seed": run.seed,
                "hparams": run.hparams.as_dict(),
                "final_return": _json_float(final_returns[r]),
                **{name: values[r] for name, values in run_fields.items()},
            }
            for r, run in enumerate(grid.runs)
        ],
        "final_return_median": _json_float(np.median(finite)) if finite.size else None,
        "final_return_iqm": _json_float(iqm(final_returns)),
        "env_steps_per_second": steps_per_second,
    }
    summary.update(extra or {})
    if path is not None:
        path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def setting_summaries(
    grid: RunGrid,
    final_returns: np.ndarray,
    probes: dict[str, np.ndarray] | None = None,
    reps: int = 2000,
    seed: int = 0,
) -> list[dict]:
    """One entry per hyperparameter setting of the grid, its seeds the samples: the values that vary in
    the grid, its runs and seeds, and the final return's IQM with a 95% bootstrap CI over the seeds (and
    each probe's IQM), so a sweep reads as a table without re-reading metrics.csv."""
    varied = grid.varied()
    members: dict[tuple, list[int]] = {}
    for r, run in enumerate(grid.runs):
        members.setdefault(tuple(run.hparams.as_dict().values()), []).append(r)
    out = []
    for indices in members.values():
        hp = grid.runs[indices[0]].hparams.as_dict()
        finals = np.asarray(final_returns, float)[indices]
        finite = finals[np.isfinite(finals)]
        entry: dict[str, Any] = {
            "hparams": {n: hp[n] for n in varied},
            "runs": [grid.runs[r].index for r in indices],
            "seeds": [grid.runs[r].seed for r in indices],
            "final_return_iqm": None,
            "final_return_ci": None,
            "final_return_median": None,
        }
        if finite.size:
            entry.update(
                final_return_iqm=iqm(finite),
                final_return_ci=list(iqm_interval(finite, reps, seed)),
                final_return_median=float(np.median(finite)),
            )
        for name, values in (probes or {}).items():
            entry[f"final_{name}_iqm"] = _json_float(iqm(np.asarray(values, float)[indices]))
        out.append(entry)
    return out


def hns_summary_fields(env_id: str, final_returns: np.ndarray) -> tuple[dict[str, list], dict[str, float | None]]:
    """Per-run `final_hns` and the grid's `final_hns_median` / `final_hns_iqm`, for summary.json.

    Both are empty for games outside the table; a run with no finished episode has `final_hns` None.
    """
    if env_id not in reference_scores():
        return {}, {}
    per_run = [human_normalised(env_id, float(r)) for r in final_returns]
    finite = np.asarray([h for h in per_run if h is not None], float)
    median = float(np.median(finite)) if finite.size else None
    return {"final_hns": per_run}, {"final_hns_median": median, "final_hns_iqm": iqm(finite) if finite.size else None}

"""TensorBoard (tensorboardX) and optional Weights & Biases logging of metrics.csv's rows.

The sinks receive the rows the MetricsLog has just written, so they log exactly the CSV's columns,
whatever they are, with env steps as the step. One TensorBoard sub-run (and one W&B run) per grid member.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from purejaxspi.scale.grid import RunGrid

# Columns that identify a row rather than measure something.
ID_COLUMNS = ("run", "seed", "iteration", "env_steps")


def scalar_columns(header: list[str]) -> list[str]:
    """Every measured column: not an id, not a run's fixed hyperparameter setting."""
    return [c for c in header if c not in ID_COLUMNS and not c.startswith("hp_")]


def run_names(grid: RunGrid) -> list[str]:
    """`run003-seed1-learning_rate=0.001`: the index, seed and the hyperparameters the grid varies."""
    varied = grid.varied()
    names = []
    for run in grid.runs:
        hp = run.hparams.as_dict()
        name = f"run{run.index:03d}-seed{run.seed}"
        names.append(name + "".join(f"-{n}={hp[n]:g}" for n in varied))
    return names


def _scalars(row: dict, columns: list[str]) -> dict[str, float]:
    """The row's finite measurements (a metric the program does not report is NaN)."""
    values = {c: float(row[c]) for c in columns if c in row}
    return {c: v for c, v in values.items() if math.isfinite(v)}


class TensorBoardLog:
    """DIR/tensorboard/<run name>/ event files; `purge_step` drops a killed run's events past the checkpoint."""

    def __init__(self, run_dir: Path, grid: RunGrid, header: tuple[str, ...], purge_step: int | None = None):
        from tensorboardX import SummaryWriter

        self.columns = scalar_columns(list(header))
        self.writers = [
            SummaryWriter(str(run_dir / "tensorboard" / name), purge_step=purge_step, flush_secs=30)
            for name in run_names(grid)
        ]
        if purge_step is None:
            for writer, run in zip(self.writers, grid.runs):
                hp = ", ".join(f"{k}={v:g}" for k, v in run.hparams.as_dict().items())
                writer.add_text("hparams", f"seed={run.seed}, {hp}", 0)

    def update(self, rows: list[dict]) -> None:
        """Log the rows just written to metrics.csv."""
        for row in rows:
            writer = self.writers[int(row["run"])]
            step = int(row["env_steps"])
            for name, value in _scalars(row, self.columns).items():
                writer.add_scalar(name, value, step)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class WandbLog:
    """One W&B run per grid member (project `project`, grouped by the run directory's name)."""

    def __init__(self, run_dir: Path, grid: RunGrid, header: tuple[str, ...], project: str, record: dict, resume: bool):
        try:
            import wandb
        except ImportError:
            raise ImportError("--wandb needs the wandb extra: uv sync --extra wandb") from None
        self.columns = scalar_columns(list(header))
        self.runs = []
        for name, run in zip(run_names(grid), grid.runs):
            config = {**record, "run": run.index, "seed": run.seed, "hparams": run.hparams.as_dict()}
            self.runs.append(
                wandb.init(
                    project=project,
                    group=run_dir.name,
                    name=name,
                    config=config,
                    dir=str(run_dir),
                    id=re.sub(r"[^A-Za-z0-9_-]", "_", f"{run_dir.name}-{name}")[:128],
                    resume="allow" if resume else None,
                    reinit="create_new",
                )
            )

    def update(self, rows: list[dict]) -> None:
        """Log the rows just written to metrics.csv."""
        for row in rows:
            self.runs[int(row["run"])].log(_scalars(row, self.columns), step=int(row["env_steps"]))

    def close(self) -> None:
        for run in self.runs:
            run.finish()

"""The errors the library raises for what a user can cause; each message is one line.

The library never prints or exits: the CLI maps a `UserError` to that line and exit code 2, a
`NonFiniteLossError` (training diverged; the metrics written so far are kept) to exit code 1, and a
`RunInterrupted` (SIGINT / SIGTERM / SIGHUP, checkpoint saved) to 128 + the signal's number.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or an unusable run directory, checkpoint or device set-up: fix the command and rerun."""


class ConfigError(UserError):
    """A configuration that cannot train: unknown choices, impossible shapes, bad coefficients.

    `setting` names the setting or hyperparameter at fault (the CLI shows it as its flag).
    """

    def __init__(self, message: str, setting: str | None = None):
        super().__init__(message)
        self.setting = setting


class UnknownEnvError(ConfigError):
    """An env id that no backend provides."""


class RunDirError(UserError):
    """A run directory that cannot be used as asked."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read into this program; the message names the folder."""


class DeviceError(UserError):
    """A device count or device set-up the machine cannot provide."""


class DistributedError(UserError):
    """Processes that cannot be joined with jax.distributed."""


class EvalError(UserError):
    """An evaluation the run cannot do (for example a video of vector observations)."""


class PlotError(UserError):
    """Run directories that cannot be plotted as asked."""


class MissingPackageError(UserError):
    """An optional package a command needs is not installed (an offline node's wheelhouse leaves the
    analysis packages out: plots and videos are drawn where the run directories are copied back)."""


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss; metrics up to that iteration are on disk."""

    def __init__(self, run: int, seed: int, iteration: int, metrics_path):
        self.run, self.seed, self.iteration, self.metrics_path = run, seed, iteration, metrics_path
        super().__init__(
            f"non-finite loss in run {run} (seed {seed}) at iteration {iteration}; metrics so far are in {metrics_path}"
        )


class ResourceError(UserError):
    """A grid whose program needs more memory than the machine has free; says both figures and what to change."""


class DiskFullError(UserError):
    """A write that failed for lack of space; what was written before it (and the last checkpoint) is intact."""


class RunInterrupted(RuntimeError):
    """SIGINT, SIGTERM or SIGHUP stopped training at a chunk boundary, after a checkpoint (or before training
    began, with nothing to save); `--resume` continues."""

    def __init__(self, signum: int, iteration: int, out, saved: bool = True):
        import signal

        self.signum, self.iteration, self.out = signum, iteration, out
        where = f"at iteration {iteration}, checkpoint saved" if saved else f"at iteration {iteration}, before training"
        super().__init__(
            f"stopped by {signal.Signals(signum).name} {where}; `purejaxspi train --resume {out}` continues"
        )

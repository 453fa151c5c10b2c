"""`purejaxspi eval DIR`: play episodes with a run directory's newest checkpoint, every run at once.

The episode loop is one pure function (a `lax.while_loop` until each of the N envs has finished an
episode), vmapped over the grid's runs and jitted. Videos come from the image observations themselves.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxspi.algo.config import Config
from purejaxspi.algo.networks import Agent
from purejaxspi.algo.train import act
from purejaxspi.envs.base import BatchedEnv
from purejaxspi.errors import EvalError
from purejaxspi.lifecycle import checkpoint
from purejaxspi.scale.grid import RunGrid, grid_from_values
from purejaxspi.settings import check_part, setting
from purejaxspi.versions import require


class Episodes(NamedTuple):
    """Per env (one episode each) of one run: [N]."""

    returns: jax.Array
    lengths: jax.Array
    finished: jax.Array


def make_play(agent: Agent, env: BatchedEnv, max_steps: int, greedy: bool):
    """play(params, spectral, key) -> Episodes: the first episode of each of env.num_envs envs."""

    def play(params, spectral, key):
        reset_key, key = jax.random.split(key)
        env_state, obs, mask = env.reset(reset_key)
        n = obs.shape[0]
        zeros = jnp.zeros((n,), jnp.float32)
        init = (jnp.int32(0), env_state, obs, mask, key, Episodes(zeros, zeros, jnp.zeros((n,), bool)))

        def running(carry):
            t, *_, episodes = carry
            return (t < max_steps) & ~jnp.all(episodes.finished)

        def step(carry):
            t, env_state, obs, mask, key, episodes = carry
            key, action_key, step_key = jax.random.split(key, 3)
            action, _, _ = act(agent, {"params": params, "spectral": spectral}, obs, mask, action_key, greedy)
            env_state, ts = env.step(env_state, action, step_key)
            first = ts.episode_done & ~episodes.finished
            episodes = Episodes(
                jnp.where(first, ts.episode_return, episodes.returns),
                jnp.where(first, ts.episode_length.astype(jnp.float32), episodes.lengths),
                episodes.finished | ts.episode_done,
            )
            return t + 1, env_state, ts.obs, ts.action_mask, key, episodes

        return jax.lax.while_loop(running, step, init)[-1]

    return play


def make_record(agent: Agent, env: BatchedEnv, num_frames: int, greedy: bool, frame_scale: float):
    """record(params, spectral, key) -> (frames [T, *obs] uint8, episode_done [T]) of env 0."""

    def record(params, spectral, key):
        reset_key, key = jax.random.split(key)
        env_state, obs, mask = env.reset(reset_key)

        def step(carry, _):
            env_state, obs, mask, key = carry
            key, action_key, step_key = jax.random.split(key, 3)
            action, _, _ = act(agent, {"params": params, "spectral": spectral}, obs, mask, action_key, greedy)
            env_state, ts = env.step(env_state, action, step_key)
            frame = jnp.clip(obs[0] * frame_scale, 0, 255).astype(jnp.uint8)
            return (env_state, ts.obs, ts.action_mask, key), (frame, ts.episode_done[0])

        return jax.lax.scan(step, (env_state, obs, mask, key), None, num_frames)[1]

    return record


# MinAtar channels drawn in these colours (cycled); background black.
PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 190],
    ],
    np.uint8,
)


def to_rgb(frames: np.ndarray, family: str, pixels: int = 240) -> np.ndarray:
    """[T, H, W, C] uint8 observations -> [T, h, w, 3] RGB frames about `pixels` high (nearest-neighbour)."""
    if family == "atari" or frames.shape[-1] == 1:
        grey = frames[..., -1]  # Atari: the newest stacked frame
        rgb = np.repeat(grey[..., None], 3, axis=-1)
    else:
        on = frames > 127
        colours = PALETTE[np.arange(frames.shape[-1]) % len(PALETTE)]
        rgb = np.zeros(frames.shape[:3] + (3,), np.uint8)
        for c in range(frames.shape[-1]):  # later channels drawn over earlier ones
            rgb[on[..., c]] = colours[c]
    scale = max(1, pixels // frames.shape[1])
    rgb = rgb.repeat(scale, axis=1).repeat(scale, axis=2)
    # codecs prefer even sizes
    return rgb[:, : rgb.shape[1] // 2 * 2, : rgb.shape[2] // 2 * 2]


def write_video(path: Path, frames: np.ndarray, fps: int = 15) -> None:
    import imageio.v3 as iio

    if path.suffix == ".gif":
        iio.imwrite(path, frames, duration=1000 / fps, loop=0)
    else:
        iio.imwrite(path, frames, fps=fps)


# ---- the host side: a run directory in, eval.json (and videos) out ---------------------------------


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    run_dir: Path
    obs_shape: tuple[int, ...]
    config: Config
    grid: RunGrid
    record: dict
    params: object  # [R, ...]
    spectral: object
    iteration: int
    checkpoint: Path
    note: str | None = None  # newer checkpoints that did not restore, in one line


def load_run(run_dir: Path) -> LoadedRun:
    """config.json and the newest checkpoint's parameters of every run."""
    from purejaxspi.envs import env_for
    from purejaxspi.lifecycle.metrics import MetricsLog
    from purejaxspi.lifecycle.rundir import read_record
    from purejaxspi.scale.mapping import make_trainer

    record = read_record(run_dir)
    config = Config.of(**record["config"])
    grid = grid_from_values(record["hparam_values"], record["seed"], record["num_seeds"])
    env = env_for(config.env, None, tuple(r.seed for r in grid.runs))
    template = jax.eval_shape(make_trainer(config, env).init, grid.keys(), grid.hparams())
    scratch = MetricsLog(Path(os.devnull), config, grid)
    scratch.close()
    restored = checkpoint.restore_latest(run_dir, template, checkpoint.cursor(scratch))
    if restored is None:
        raise EvalError(f"no checkpoint in {checkpoint.checkpoint_dir(run_dir)}; train (or resume) the run first")
    state = restored.state
    return LoadedRun(
        run_dir,
        env.spec.obs_shape,
        config,
        grid,
        record,
        state.params,
        state.spectral,
        restored.iteration,
        restored.path,
        restored.note(),
    )


def eval_keys(grid: RunGrid, seed: int) -> jax.Array:
    """One key per run from its training seed and the evaluation seed (not a key used in training)."""
    return jax.vmap(lambda k: jax.random.fold_in(k, 1_000_003 + seed))(grid.keys())


def evaluate(run: LoadedRun, episodes: int, greedy: bool, max_steps: int, seed: int = 0, write: bool = True) -> dict:
    """Play `episodes` episodes per run and (with `write`) write DIR/eval.json; returns its content."""
    from purejaxspi.envs import env_for
    from purejaxspi.lifecycle.metrics import iqm
    from purejaxspi.provenance import provenance, utc_now

    started = utc_now()
    config, grid = run.config, run.grid
    env = env_for(config.env, episodes, tuple(r.seed for r in grid.runs))
    agent = _agent(config, env)
    play = jax.jit(jax.vmap(make_play(agent, env, max_steps, greedy)))
    result = jax.device_get(play(run.params, run.spectral, eval_keys(grid, seed)))
    normalise = _hns(config.env_id)
    rows = []
    for r, member in enumerate(grid.runs):
        done = np.asarray(result.finished[r])
        returns = np.asarray(result.returns[r])[done]
        mean = float(returns.mean()) if returns.size else None
        row = {
            "run": member.index,
            "seed": member.seed,
            "hparams": member.hparams.as_dict(),
            "mean_return": mean,
            "std_return": float(returns.std()) if returns.size else None,
            "mean_length": float(np.asarray(result.lengths[r])[done].mean()) if returns.size else None,
            "episodes_finished": int(done.sum()),
        }
        if normalise is not None:
            row["hns"] = normalise(mean) if mean is not None else None
        rows.append(row)
    means = np.array([np.nan if row["mean_return"] is None else row["mean_return"] for row in rows])
    finite = means[~np.isnan(means)]
    report = {
        "env": config.env_id,
        "algo": config.algo,
        "checkpoint": str(run.checkpoint),
        "iteration": run.iteration,
        "episodes": episodes,
        "greedy": greedy,
        "max_steps": max_steps,
        "seed": seed,
        "runs": rows,
        "mean_return_median": float(np.median(finite)) if finite.size else None,
        "mean_return_iqm": iqm(means) if finite.size else None,
    }
    if normalise is not None:
        hns = np.array([np.nan if row["hns"] is None else row["hns"] for row in rows])
        report["hns_median"] = float(np.nanmedian(hns)) if np.isfinite(hns).any() else None
        report["hns_iqm"] = iqm(hns) if np.isfinite(hns).any() else None
    report["provenance"] = provenance(started)
    if write:
        (run.run_dir / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def check_video(run: LoadedRun) -> None:
    """Videos are drawn from image observations [H, W, C]; refuse others before any work."""
    if len(run.obs_shape) != 3:
        raise EvalError(
            f"--video draws image observations; {run.config.env_id} has vector observations {run.obs_shape}"
        )


def record_videos(run: LoadedRun, num_frames: int, greedy: bool, fmt: str = "gif", seed: int = 0) -> list[Path]:
    """One episode (at most num_frames steps) per run, from env 0, as DIR/videos/run<r>-seed<s>.<fmt>."""
    from purejaxspi.envs import env_for

    check_video(run)
    config, grid = run.config, run.grid
    env = env_for(config.env, 1, tuple(r.seed for r in grid.runs))
    frame_scale = 1.0 if env.spec.family == "atari" else 255.0
    record = jax.jit(jax.vmap(make_record(_agent(config, env), env, num_frames, greedy, frame_scale)))
    frames, done = jax.device_get(record(run.params, run.spectral, eval_keys(grid, seed)))
    folder = run.run_dir / "videos"
    folder.mkdir(exist_ok=True)
    paths = []
    for r, member in enumerate(grid.runs):
        ends = np.flatnonzero(done[r])
        length = int(ends[0]) + 1 if ends.size else num_frames
        path = folder / f"run{member.index:03d}-seed{member.seed}.{fmt}"
        write_video(path, to_rgb(np.asarray(frames[r][:length]), env.spec.family))
        paths.append(path)
    return paths


def _agent(config: Config, env: BatchedEnv) -> Agent:
    from purejaxspi.scale.mapping import make_trainer

    return make_trainer(config, env).agent


def _hns(env_id: str):
    """score -> human-normalised score for Atari games in the reference table, else None."""
    try:
        from purejaxspi.envs import scores as hns
    except ImportError:
        return None
    if env_id not in hns.reference_scores():
        return None
    return lambda score: hns.human_normalised(env_id, score)


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """Play episodes with the newest checkpoint of a training run (every run at once); writes DIR/eval.json."""

    episodes: int = setting(10, "Episodes per run (played in parallel, one per env).", bound="positive")
    greedy: bool = setting(False, "Act by the argmax of the policy instead of sampling from it.")
    max_steps: int = setting(
        27_000, "Steps after which unfinished episodes are left out (and counted as unfinished).", bound="positive"
    )
    seed: int = setting(0, "Evaluation seed (combined with each run's own seed).", bound="nonnegative")
    video: bool = setting(
        False, "Also write one episode per run to DIR/videos/ (image observations: MinAtar, Atari, the gridworld)."
    )
    video_steps: int = setting(1000, "Longest video, in env steps.", bound="positive")
    video_format: str = setting("gif", "gif, or mp4 where imageio has an ffmpeg plugin.", choices=("gif", "mp4"))

    def check(self) -> None:
        check_part(self)
        if self.video:
            require("--video", "imageio")
        if self.video and self.video_format == "mp4":
            import importlib.util

            if not any(importlib.util.find_spec(m) for m in ("imageio_ffmpeg", "av")):
                raise EvalError(
                    "--video-format mp4 needs an imageio ffmpeg plugin (pip install imageio-ffmpeg); gif needs none"
                )


def evaluate_dir(run_dir: Path, options: EvalOptions) -> tuple[dict, list[Path], str | None]:
    """Play `options.episodes` per run of `run_dir` (and its videos): (eval.json's content, the videos'
    paths, a note on checkpoints that did not restore). Raises EvalError, also for outputs that cannot
    be written."""
    from purejaxspi.lifecycle.rundir import check_kinds, read_record

    options.check()
    read_record(run_dir)
    check_kinds(run_dir, ("checkpoints", "eval.json", "videos"))
    run = load_run(run_dir)
    if options.video:
        check_video(run)
    try:
        report = evaluate(run, options.episodes, options.greedy, options.max_steps, options.seed)
        videos = []
        if options.video:
            args = (options.video_steps, options.greedy, options.video_format, options.seed)
            videos = record_videos(run, *args)
    except OSError as e:  # eval.json or a video that cannot be written (a full disk, a read-only directory)
        where = f" ({e.filename})" if e.filename else ""
        raise EvalError(f"cannot write the evaluation's outputs in {run_dir}: {e.strerror or e}{where}") from None
    return report, videos, run.note

"""The host loop: chunk plans that resume where a run stopped, chunks re-cut by time without changing
a run's metrics; memory that does not grow with run length."""

import subprocess
import sys

import pytest

import purejaxspi as pjs
from purejaxspi.lifecycle.chunks import chunk_plan, timed_chunk_size


def test_chunk_plan_covers_the_rest_of_a_run_with_the_run_s_own_chunk_size():
    assert chunk_plan(10, 3) == [3, 3, 3, 1]
    assert chunk_plan(10, 3, start=4) == [3, 3]
    assert chunk_plan(10, 3, start=10) == []
    assert chunk_plan(100, 0, start=97) == [3]  # default size: a twentieth of the whole run
    assert sum(chunk_plan(41, 0, start=7)) == 34


def test_a_chunk_far_over_the_target_time_is_cut_to_it_and_one_near_it_is_kept():
    # 100 iterations ran in 50 s against a 10 s target: 20 iterations a chunk from now on
    assert timed_chunk_size(100, 50.0, 10.0, remaining=1900, compile_seconds=5.0) == 20
    assert timed_chunk_size(100, 50.0, 10.0, remaining=7, compile_seconds=5.0) == 7  # never past the run's end
    assert timed_chunk_size(1, 50.0, 10.0, remaining=100, compile_seconds=5.0) == 1  # one iteration is the floor
    for seconds in (1.5, 10.0, 19.0):  # within [target / 10, 2 x target]: no new compile
        assert timed_chunk_size(100, seconds, 10.0, remaining=1900, compile_seconds=5.0) == 100


def test_short_chunks_grow_only_when_the_rest_of_the_run_repays_the_compile():
    # 10 iterations in 0.1 s: the rest (1,000 iterations, 10 s) is under 30 compiles of 1 s, so kept ...
    assert timed_chunk_size(10, 0.1, 10.0, remaining=1000, compile_seconds=1.0) == 10
    # ... while 100,000 iterations (1,000 s) repay it: 1,000 iterations (10 s) a chunk
    assert timed_chunk_size(10, 0.1, 10.0, remaining=100_000, compile_seconds=1.0) == 1000


@pytest.mark.slow
def test_chunks_re_cut_by_time_train_the_same_run(tmp_path):
    config = pjs.make_config("CartPole-v1", "ppo", num_envs=4, num_steps=32, total_timesteps=40 * 128)
    grid = pjs.make_grid(config, num_seeds=2)
    reports = []
    # a first chunk of 2 iterations (a twentieth of 40) runs far over a 0.1 ms target: the rest in chunks of 1
    pjs.train(config, grid, tmp_path / "timed", pjs.RunOptions(chunk_seconds=1e-4), on_progress=reports.append)
    assert [r.chunk for r in reports] == list(range(1 + 1 + 38))
    pjs.train(config, grid, tmp_path / "fixed", pjs.RunOptions(chunk_iterations=2))

    def rows(name):
        return sorted((tmp_path / name / "metrics.csv").read_text().splitlines())

    assert rows("timed") == rows("fixed")


PEAK = """
import resource, sys
from purejaxspi.cli import main
status = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
raise SystemExit(status)
"""


def start_training(tmp_path, name, total_timesteps):
    args = [
        "train",
        "--env",
        "CartPole-v1",
        "--algo",
        "ppo",
        "--num-seeds",
        "4",
        "--num-envs",
        "4",
        "--num-steps",
        "32",
        "--total-timesteps",
        str(total_timesteps),
        "--chunk-iterations",
        "4",
        "--checkpoint-every",
        "5",
        "--tensorboard",
        "--quiet",
        "--out",
        str(tmp_path / name),
    ]
    return subprocess.Popen(
        [sys.executable, "-c", PEAK, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def peak_rss_kb(proc):
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    return int(stdout.split()[-1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_chunks(tmp_path):
    # 4 chunks against 40 chunks of the same size, with checkpoints and TensorBoard on (run side by side)
    short, long = start_training(tmp_path, "short", 4 * 128 * 4), start_training(tmp_path, "long", 160 * 128)
    short, long = peak_rss_kb(short), peak_rss_kb(long)
    assert long < 1.1 * short, (short, long)

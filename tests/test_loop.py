"""The host loop: chunks sized by time from the first iteration without changing a run's metrics; memory
that does not grow with run length."""

import subprocess
import sys

import pytest
from conftest import SMALL_PPO

import purejaxspi as pjs
from purejaxspi.lifecycle.chunks import METRICS_BUFFER_BYTES, chunk_capacity, next_chunk


def test_a_chunk_holds_what_the_metrics_buffer_holds_whatever_the_budget_and_fixed_length():
    buffer_rows = METRICS_BUFFER_BYTES // 1000
    # one program for the runs of a config and grid size: the same capacity for every fixed length
    # within the buffer
    assert {chunk_capacity(chunk, row_bytes=1000) for chunk in (0, 1, 3, 7, buffer_rows)} == {buffer_rows}
    assert chunk_capacity(buffer_rows + 5, row_bytes=1000) == buffer_rows + 5  # a longer fixed chunk is kept
    assert chunk_capacity(0, row_bytes=METRICS_BUFFER_BYTES * 4) == 1  # a row beyond the buffer: one at a time


def test_the_first_chunk_is_one_iteration_and_the_next_ones_last_the_target_time():
    assert next_chunk(1000, 500, 0, None, 10.0) == 1  # no pace yet: one iteration
    assert next_chunk(1000, 500, 0, 0.5, 10.0) == 20  # 0.5 s an iteration: 20 make 10 s
    assert next_chunk(1000, 500, 0, 30.0, 10.0) == 1  # one iteration is the floor
    assert next_chunk(1000, 500, 0, 1e-6, 10.0) == 500  # the buffer's capacity is the ceiling
    assert next_chunk(7, 500, 0, 0.01, 10.0) == 7  # never past the run's end
    assert next_chunk(1000, 500, 8, None, 10.0) == 8  # a fixed length from the start
    assert next_chunk(3, 500, 8, 0.5, 10.0) == 3
    assert next_chunk(1000, 5, 8, None, 10.0) == 5  # never past the capacity
    assert next_chunk(0, 8, 0, 0.5, 10.0) == 0


@pytest.mark.slow
def test_chunks_re_cut_by_time_train_the_same_run(tmp_path):
    # the small PPO program of the CLI tests (conftest.SMALL_PPO): 2 runs of 4 envs x 16 steps
    config = pjs.make_config("CartPole-v1", "ppo", num_envs=4, num_steps=16, total_timesteps=40 * 64)
    grid = pjs.make_grid(config, num_seeds=2)
    reports = []
    # every chunk runs far over a 0.1 ms target: 40 chunks of one iteration, against a run in chunks of 3
    pjs.train(config, grid, tmp_path / "timed", pjs.RunOptions(chunk_seconds=1e-4), on_progress=reports.append)
    assert [r.chunk for r in reports] == list(range(1 + 40))
    pjs.train(config, grid, tmp_path / "fixed", pjs.RunOptions(chunk_iterations=3))

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
        *SMALL_PPO,
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
    short, long = start_training(tmp_path, "short", 4 * 4 * 64), start_training(tmp_path, "long", 160 * 64)
    short, long = peak_rss_kb(short), peak_rss_kb(long)
    assert long < 1.1 * short, (short, long)

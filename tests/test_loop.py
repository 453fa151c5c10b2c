"""The host loop: chunks sized by time from the first iteration without changing a run's metrics; memory
that does not grow with run length."""

import subprocess
import sys

import pytest

import purejaxspi as pjs
from purejaxspi.lifecycle.chunks import METRICS_BUFFER_BYTES, chunk_capacity, next_chunk


def test_a_chunk_holds_the_fixed_length_or_what_the_metrics_buffer_holds():
    assert chunk_capacity(100, 7, row_bytes=100) == 7
    assert chunk_capacity(3, 7, row_bytes=100) == 4  # at most the power of two at or above the run
    assert chunk_capacity(10**9, 0, row_bytes=1000) == METRICS_BUFFER_BYTES // 1000
    # runs of 33 to 64 iterations share one metrics buffer, and so one program
    assert {chunk_capacity(n, 0, row_bytes=1000) for n in range(33, 65)} == {64}
    assert chunk_capacity(1, 0, row_bytes=1000) == 1


def test_the_first_chunk_is_one_iteration_and_the_next_ones_last_the_target_time():
    assert next_chunk(1000, 500, False, None, 10.0) == 1  # no pace yet: one iteration
    assert next_chunk(1000, 500, False, 0.5, 10.0) == 20  # 0.5 s an iteration: 20 make 10 s
    assert next_chunk(1000, 500, False, 30.0, 10.0) == 1  # one iteration is the floor
    assert next_chunk(1000, 500, False, 1e-6, 10.0) == 500  # the buffer's capacity is the ceiling
    assert next_chunk(7, 500, False, 0.01, 10.0) == 7  # never past the run's end
    assert next_chunk(1000, 8, True, None, 10.0) == 8  # a fixed length from the start
    assert next_chunk(3, 8, True, 0.5, 10.0) == 3
    assert next_chunk(0, 8, False, 0.5, 10.0) == 0


@pytest.mark.slow
def test_chunks_re_cut_by_time_train_the_same_run(tmp_path):
    config = pjs.make_config("CartPole-v1", "ppo", num_envs=4, num_steps=32, total_timesteps=40 * 128)
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

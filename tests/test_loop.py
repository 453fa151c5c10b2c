"""The host loop: chunk plans that resume where a run stopped; memory that does not grow with run length."""

import subprocess
import sys

import pytest

from purejaxspi.lifecycle.loop import chunk_plan


def test_chunk_plan_covers_the_rest_of_a_run_with_the_run_s_own_chunk_size():
    assert chunk_plan(10, 3) == [3, 3, 3, 1]
    assert chunk_plan(10, 3, start=4) == [3, 3]
    assert chunk_plan(10, 3, start=10) == []
    assert chunk_plan(100, 0, start=97) == [3]  # default size: a twentieth of the whole run
    assert sum(chunk_plan(41, 0, start=7)) == 34


PEAK = """
import resource, sys
from purejaxspi.cli import main
status = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
raise SystemExit(status)
"""


def start_training(tmp_path, name, total_timesteps):
    args = ["train", "--env", "CartPole-v1", "--algo", "ppo", "--num-seeds", "4", "--num-envs", "4", "--num-steps", "32",
            "--total-timesteps", str(total_timesteps), "--chunk-iterations", "4", "--checkpoint-every", "5",
            "--tensorboard", "--quiet", "--out", str(tmp_path / name)]
    return subprocess.Popen([sys.executable, "-c", PEAK, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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

"""Run directories: refusing to clobber, comparing records, truncating a killed run's metrics."""

import pytest

from purejaxspi.lifecycle.rundir import (
    RunDirError,
    check_out_dir,
    record_mismatch,
    truncate_metrics,
)

HEADER = ("run", "seed", "iteration", "env_steps", "loss")


def test_a_non_empty_out_dir_is_refused_unless_resumed_or_overwritten(tmp_path):
    check_out_dir(tmp_path / "new", resume=False, overwrite=False)
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty", resume=False, overwrite=False)
    (tmp_path / "empty" / "metrics.csv").write_text("x")
    with pytest.raises(RunDirError, match="--resume"):
        check_out_dir(tmp_path / "empty", resume=False, overwrite=False)
    check_out_dir(tmp_path / "empty", resume=True, overwrite=False)
    check_out_dir(tmp_path / "empty", resume=False, overwrite=True)


def test_record_mismatch_names_the_first_differing_setting():
    saved = {"config": {"env_id": "CartPole-v1", "num_envs": 4}, "hparam_values": {"gamma": [0.99]}, "seed": 0}
    assert record_mismatch(saved, {**saved}) is None
    assert record_mismatch(saved, {**saved, "config": {"env_id": "CartPole-v1", "num_envs": 8}}) == "num_envs: 4 vs 8"
    assert (
        record_mismatch(saved, {**saved, "hparam_values": {"gamma": [0.9]}}) == "hparam_values.gamma: [0.99] vs [0.9]"
    )


def test_truncation_keeps_earlier_iterations_and_drops_a_cut_line(tmp_path):
    path = tmp_path / "metrics.csv"
    lines = [",".join(HEADER)] + [f"{r},{r},{i},{(i + 1) * 8},0.5" for i in range(4) for r in range(2)]
    path.write_text("\n".join(lines) + "\n0,0,4,4")  # a row cut off by a kill
    assert truncate_metrics(path, HEADER, 3) == 6
    kept = path.read_text().splitlines()
    assert kept[0] == ",".join(HEADER) and all(int(line.split(",")[2]) < 3 for line in kept[1:])


def test_truncation_refuses_a_file_with_other_columns(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("run,seed,iteration,old_metric\n0,0,0,1\n")
    with pytest.raises(RunDirError, match="other columns"):
        truncate_metrics(path, HEADER, 1)
    assert path.read_text() == "run,seed,iteration,old_metric\n0,0,0,1\n"  # untouched

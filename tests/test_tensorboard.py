"""TensorBoard sinks: every new complete metrics.csv row becomes scalars of its run's sub-run."""

import struct

from conftest import preset_values
from tensorboardX.proto import event_pb2

from purejaxspi.lifecycle.sinks import CsvTail, TensorBoardLog, run_names
from purejaxspi.scale.grid import grid_from_values

HEADER = ("run", "seed", "hp_gamma", "iteration", "env_steps", "episodic_return", "entropy")


def read_scalars(folder):
    """{tag: [(step, value)]} from the event files in a folder (TFRecord framing: length, crc, data, crc)."""
    scalars = {}
    for path in folder.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_new_rows_become_scalars_of_their_run(tmp_path):
    values = preset_values("vector")
    values["gamma"] = [0.9, 0.99]
    grid = grid_from_values(values, 0, 1)
    assert run_names(grid) == ["run000-seed0-gamma=0.9", "run001-seed0-gamma=0.99"]
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(",".join(HEADER) + "\n")
    log = TensorBoardLog(tmp_path, grid, CsvTail(csv_path, HEADER))
    with open(csv_path, "a") as f:
        f.write("0,0,0.9,0,8,,0.69\n1,0,0.99,0,8,12.5,0.68\n0,0,0.9,1,16,20.0,0.6")  # the last line is cut
    log.update()
    with open(csv_path, "a") as f:
        f.write("5\n")  # ... and completed later
    log.update()
    log.close()
    first = read_scalars(tmp_path / "tensorboard" / "run000-seed0-gamma=0.9")
    second = read_scalars(tmp_path / "tensorboard" / "run001-seed0-gamma=0.99")
    assert first["episodic_return"] == [(16, 20.0)]  # the empty cell is skipped
    assert [s for s, _ in first["entropy"]] == [8, 16] and abs(first["entropy"][1][1] - 0.65) < 1e-6
    assert second["episodic_return"] == [(8, 12.5)]
    assert "hp_gamma" not in first and "iteration" not in first

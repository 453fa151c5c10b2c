"""TensorBoard sinks: every metrics.csv row written becomes scalars of its run's sub-run."""

import math
import struct

from conftest import preset_values
from tensorboardX.proto import event_pb2

from purejaxspi.lifecycle.sinks import TensorBoardLog, run_names
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


def test_rows_written_become_scalars_of_their_run(tmp_path):
    values = preset_values("vector")
    values["gamma"] = [0.9, 0.99]
    grid = grid_from_values(values, 0, 1)
    assert run_names(grid) == ["run000-seed0-gamma=0.9", "run001-seed0-gamma=0.99"]
    log = TensorBoardLog(tmp_path, grid, HEADER)
    rows = [(0, 0, 0.9, 0, 8, math.nan, 0.69), (1, 0, 0.99, 0, 8, 12.5, 0.68)]
    log.update([dict(zip(HEADER, row)) for row in rows])  # one chunk's rows, as MetricsLog writes them
    log.update([dict(zip(HEADER, (0, 0, 0.9, 1, 16, 20.0, 0.65)))])  # the next chunk's
    log.close()
    first = read_scalars(tmp_path / "tensorboard" / "run000-seed0-gamma=0.9")
    second = read_scalars(tmp_path / "tensorboard" / "run001-seed0-gamma=0.99")
    assert first["episodic_return"] == [(16, 20.0)]  # the empty cell is skipped
    assert [s for s, _ in first["entropy"]] == [8, 16] and abs(first["entropy"][1][1] - 0.65) < 1e-6
    assert second["episodic_return"] == [(8, 12.5)]
    assert "hp_gamma" not in first and "iteration" not in first

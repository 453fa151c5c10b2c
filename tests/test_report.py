"""What a run says while it trains: plain progress lines a cluster log can use, and a terminal bar that
keeps its time left at 80 columns."""

import io

from purejaxspi.lifecycle.loop import Progress
from purejaxspi.lifecycle.report import ProgressPrinter, duration, progress_line

# 16 runs, 49,152 of 10,000,000 env steps each done, at 4,000 env steps/s (all runs)
PROGRESS = Progress("deepspi Breakout-MinAtar x16", 3, 16 * 49_152, 16 * 10_000_000, 4000.0, 0.5, (), 16)
LEFT = (16 * 10_000_000 - 16 * 49_152) / 4000.0


def test_durations_read_as_clock_times():
    assert [duration(s) for s in (0, 59.6, 61, 3600, 90_061)] == ["0:00", "1:00", "1:01", "1:00:00", "1 d 1:01:01"]
    assert duration(None) == "-"


def test_a_plain_progress_line_has_elapsed_time_steps_per_run_and_in_all_the_rate_and_the_eta():
    line = progress_line(PROGRESS, elapsed=65.0)
    assert "1:05 elapsed" in line
    assert "49,152/10,000,000 env steps per run" in line and f"{16 * 49_152:,} in all" in line
    assert "4,000 steps/s" in line and f"ETA {duration(LEFT)}" in line


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_terminal_bar_keeps_its_eta_at_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    stream = Terminal()
    printer = ProgressPrinter(True, notes=None, stream=stream)
    printer(PROGRESS._replace(chunk=0, completed_steps=0, steps_per_second=None))
    printer(PROGRESS)
    printer.close()
    last = [line for line in stream.getvalue().splitlines() if "ETA" in line][-1]
    assert f"ETA {duration(LEFT)}" in last, stream.getvalue()


def test_redirected_progress_prints_the_estimate_once_then_a_line_a_chunk():
    stream = io.StringIO()
    printer = ProgressPrinter(True, notes=None, stream=stream)
    printer(PROGRESS._replace(chunk=0, completed_steps=0, steps_per_second=None))
    printer(PROGRESS._replace(chunk=1))
    printer(PROGRESS._replace(chunk=2))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "to go at 4,000 env steps/s" in lines[0]
    assert all("ETA" in line for line in lines[1:])

"""Every `purejaxspi train` command in README.md, docs/ and benchmarks/README.md runs as written: each is
checked through `train --dry-run` (validated and planned, nothing compiled or written)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# where a command written in prose ends: a comment, a pipe, a shell operator, the closing backtick
END = re.compile(r"\s+#|\s*\||\s*;|\s*&|`|\s{2,}|\)|,|$")


def train_commands() -> list[tuple[str, str]]:
    """(page:line, the arguments after `purejaxspi train`) for every command that needs no earlier run
    (`--resume`), no shell variable and no help screen."""
    found = {}
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for match in re.finditer(r"purejaxspi train( [^`]*)?(?=`|$)", line):
                args = END.split(match.group(1) or "", maxsplit=1)[0].strip()
                if "$" in args or "--resume" in args or "--help" in args or "..." in args:
                    continue
                found.setdefault(args, f"{page.relative_to(ROOT)}:{number}")
    return [(where, args) for args, where in found.items()]


COMMANDS = train_commands()
# One process checks them all, its devices set as the command line sets them (one per core).
CHECK_ALL = """
import contextlib, io, json, sys
from purejaxspi.cli import main
results = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["train", *args.split(), "--dry-run"])
        except SystemExit as e:
            code = e.code
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory):
    """Each command's exit code and output, run from an empty folder (relative --out folders land there)."""
    folder = tmp_path_factory.mktemp("docs")
    argv = [sys.executable, "-c", CHECK_ALL, json.dumps([args for _, args in COMMANDS])]
    env = {**os.environ, "XLA_FLAGS": ""}  # the command line's own device count, not a test's
    done = subprocess.run(argv, capture_output=True, text=True, cwd=folder, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    return folder, dict(zip((args for _, args in COMMANDS), json.loads(done.stdout.splitlines()[-1])))


def test_the_pages_hold_train_commands():
    assert len(COMMANDS) >= 10, COMMANDS


@pytest.mark.parametrize("where, args", COMMANDS, ids=[f"{w} {a}" for w, a in COMMANDS])
def test_a_documented_train_command_runs_as_written(where, args, dry_runs):
    folder, results = dry_runs
    result = results[args]
    assert result["code"] == 0, f"{where}: `purejaxspi train {args}` fails: {result['err'].strip()}"
    assert "nothing compiled or written" in result["out"] and not any(folder.iterdir())

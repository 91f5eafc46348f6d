"""`hito worker` imports the worker's command only; every other command stays reachable."""

from __future__ import annotations

import json
import subprocess
import sys

import typer
from typer.testing import CliRunner

# Imported by other command groups only: a worker that loads them keeps them for its life.
OTHER_GROUPS = (
    "hito.commands.bench",
    "hito.commands.dlq",
    "hito.commands.pager",
    "hito.ops.pager.server",
    "hito.stack.manager",
    "httpx",
)

_PROBE = """
import json, sys
watched = json.loads(sys.argv[2])
sys.argv = ["hito", *json.loads(sys.argv[1])]
import hito.cli
try:
    hito.cli.main()
except SystemExit as end:
    code = end.code
print(json.dumps({"code": code, "loaded": sorted(m for m in watched if m in sys.modules)}))
"""


def _run(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(OTHER_GROUPS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_worker_command_loads_no_other_command_group() -> None:
    assert _run("worker", "--help") == {"code": 0, "loaded": []}


def test_other_commands_load_every_group() -> None:
    # The same probe sees them when the full command line is built: it can tell them apart.
    assert _run("dlq", "--help") == {"code": 0, "loaded": sorted(OTHER_GROUPS)}


def test_the_full_command_line_lists_every_command() -> None:
    from hito.cli import app

    assert isinstance(app, typer.Typer)
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("up", "down", "status", "worker", "bench", "dlq", "pager", "devices", "policy"):
        assert f" {name} " in result.output, name

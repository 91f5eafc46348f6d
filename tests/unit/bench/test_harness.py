"""Where a bench run writes: a directory of its own, whatever ``--out`` says."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hito.bench.harness import run_paths

_AT = datetime(2026, 12, 4, 10, 42, 4, tzinfo=UTC)


def test_logs_go_to_the_runs_own_directory_even_with_out(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    # An earlier run's worker log, with its readiness line, where --out points.
    (shared / "hito-1w-0.log").write_bytes(b"[^Worker]: Ready\n")
    workdir, out = run_paths(tmp_path / "state", _AT, "c924a5", shared / "report.json")
    assert out == shared / "report.json"
    assert workdir == tmp_path / "state" / "bench" / "20261204T104204Z-c924a5"
    assert list(workdir.iterdir()) == []


def test_without_out_the_report_is_in_the_runs_directory(tmp_path: Path) -> None:
    workdir, out = run_paths(tmp_path, _AT, "abc123", None)
    assert out == workdir / "report.json"
    assert workdir.is_dir()

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from hito.stack.progress import make_runner


def test_runner_logs_output_and_reports_success(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    log = tmp_path / "logs" / "step.log"
    make_runner(console)(["bash", "-c", "echo building; echo done-building"], log, "step")
    assert log.read_text() == "building\ndone-building\n"
    assert "done step" in console.export_text()


def test_runner_raises_with_the_log_tail_on_failure(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    with pytest.raises(RuntimeError, match=r"(?s)step failed \(exit 3\).*compiler exploded"):
        make_runner(Console(record=True))(
            ["bash", "-c", "echo compiler exploded; exit 3"], log, "step"
        )

"""Run long install steps with a live progress line (spinner, elapsed time, last log line)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from hito.stack.services import Runner

# Without a terminal (CI) a spinner cannot animate: print a heartbeat this often instead.
_HEARTBEAT_S = 60.0


def _last_line(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 2000))
            lines = fh.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:90] if lines else ""


def make_runner(console: Console) -> Runner:
    """A Runner that logs the command's output to a file and shows progress while it runs."""

    def run(argv: list[str], log_path: Path, label: str) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        console.print(f"[bold]installing[/] {label} (log: {log_path})")
        started = time.monotonic()
        with (
            log_path.open("ab") as out,
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                TextColumn("[dim]{task.fields[last]}"),
                console=console,
                transient=True,
            ) as progress,
        ):
            task = progress.add_task(label, last="")
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            next_beat = started + _HEARTBEAT_S
            while proc.poll() is None:
                time.sleep(0.5)
                progress.update(task, last=_last_line(log_path))
                if not console.is_terminal and time.monotonic() >= next_beat:
                    next_beat += _HEARTBEAT_S
                    elapsed = time.monotonic() - started
                    console.print(f"  … {label}: {elapsed:.0f} s, {_last_line(log_path)}")
        elapsed = time.monotonic() - started
        if proc.returncode != 0:
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(
                f"{label} failed (exit {proc.returncode}) after {elapsed:.0f} s; last lines of "
                f"{log_path}:\n" + "\n".join(tail)
            )
        console.print(f"[green]done[/] {label} in {elapsed:.0f} s")

    return run

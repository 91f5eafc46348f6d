"""CPU time of a contender, one definition for all of them: user + system time of its process
*tree* (every thread of the process, its live descendants, and the children they reaped), read
from ``/proc``. A contender's CPU over its measured window is the difference of two readings.

Every contender is measured this way, whether one process (the baselines read themselves at
their first record and at their end) or several (the harness reads Hito's workers from
outside), so their CPU µs per event compare. ``/proc`` counts in clock ticks (10 ms); a
process reading itself takes its own time and its reaped children's from ``getrusage``
(microseconds) instead, the same quantity less the readings' own cost: the lane floor handles
2,000 events in under a tick, which a tick-resolution reading put at 0.0 µs an event.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` the accounting needs (clock ticks)."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int  # reaped children's user time (children that were waited for)
    cstime: int

    @property
    def ticks(self) -> int:
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str) -> Stat:
    """One ``/proc/<pid>/stat`` line. The command name (field 2) is in parentheses and may
    itself hold spaces and parentheses, so the fields are counted from its *last* ')'."""
    head, tail = text.rsplit(")", 1)
    pid = int(head.split("(", 1)[0])
    fields = tail.split()
    # After the name (proc(5), 1-based): 3 state, 4 ppid, 14 utime, 15 stime, 16 cutime, 17 cstime.
    return Stat(
        pid=pid,
        ppid=int(fields[1]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        cutime=int(fields[13]),
        cstime=int(fields[14]),
    )


def _stats(proc: Path) -> dict[int, Stat]:
    out: dict[int, Stat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not a process
            continue
        out[stat.pid] = stat
    return out


def tree_ticks(root: int, stats: dict[int, Stat]) -> int:
    """Ticks of ``root`` and all its descendants in ``stats`` (0 when ``root`` is absent)."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    total = 0
    todo = [root] if root in stats else []
    while todo:
        pid = todo.pop()
        total += stats[pid].ticks
        todo.extend(children.get(pid, ()))
    return total


def tree_cpu_s(pid: int, proc: Path = PROC) -> float:
    """CPU seconds of ``pid``'s process tree so far (see the module docstring)."""
    own = parse_stat((proc / str(pid) / "stat").read_text())
    stats = _stats(proc)
    stats[pid] = own  # read first: the root is there even if the scan raced its exit
    return tree_ticks(pid, stats) / CLK_TCK


def _rusage_s() -> float:
    """This process's and its reaped children's CPU seconds (microsecond resolution)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


_reading_cost_s = 0.0  # CPU the calls of own_cpu_s spent reading /proc so far, in this process


def own_cpu_s(proc: Path = PROC) -> float:
    """This process's tree (for a baseline measuring itself): itself and its reaped children
    from ``getrusage``, its live descendants from ``/proc``, *less* the CPU spent in these
    readings. A reading scans all of ``/proc`` for descendants, ~5 ms of CPU with 67 processes
    on the 2026-12-06 machine: counted, the later reading's scan fell inside the span two
    readings measure, and 3 ms of work read as 8.4. The harness's readings of Hito's workers
    (``tree_cpu_s``) cost the harness, not the workers, so no contender pays for its measuring.
    The cost is the calling thread's CPU (``thread_time``), not the process's: the Quix peer
    reads at every InfluxDB write while librdkafka's threads work, and their CPU is its work.
    """
    global _reading_cost_s
    before = _rusage_s()
    scan_started = time.thread_time()
    pid = os.getpid()
    me = parse_stat((proc / str(pid) / "stat").read_text())
    stats = _stats(proc)
    stats[pid] = me
    live_descendants = (tree_ticks(pid, stats) - me.ticks) / CLK_TCK
    reading = before - _reading_cost_s + live_descendants
    _reading_cost_s += time.thread_time() - scan_started
    return reading


def reading_cost_s() -> float:
    """What ``own_cpu_s`` has left out so far: its own readings' CPU in this process."""
    return _reading_cost_s


def us_per_event(cpu_s: float | None, events: int) -> float | None:
    """CPU µs per event, or None without a CPU figure or events."""
    if cpu_s is None or events <= 0:
        return None
    return 1e6 * cpu_s / events

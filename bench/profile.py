"""py-spy's raw (collapsed-stack) output -> where the worker's time goes.

Three views: the hottest functions by self samples (the leaf frame), by inclusive samples
(anywhere on the stack, once per stack), and samples by package, where a sample belongs to the
innermost frame that is not the standard library (a socket write under aiokafka's connection
is aiokafka's time; a frame in ``hito/`` is Hito's own code, and so is pure-Python standard
library code it calls). Samples whose leaf is a thread or the event loop waiting (``select``, a
condition wait) are counted as ``idle``. Hito's own samples are also given by file (the
innermost Hito frame): the per-event Python work a compiled inner loop could take over.

Paths: py-spy prints a frame's file relative to the target's ``sys.path`` (``hito/…`` for an
installed or strict-editable hito, ``aiokafka/…``); absolute paths are cut down to the same
form. Profiles from before the package layout (``streams/…``) read the same way.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_IDLE_LEAVES = ("select (selectors.py)", "wait (threading.py)", "poll (selectors.py)")
# The process's entry frames (hito/cli.py, hito/commands/…): on every stack, so not "hot".
_ENTRY = ("hito/cli.py", "hito/commands/", "streams/cli.py", "streams/commands/")
_PROJECT = ("hito", "streams", "schemas")
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _parse(frame: str) -> tuple[str, str]:
    """(display name, package) of one frame; py-spy prints paths relative to sys.path."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), "?"
    func, path = m["func"], m["file"]
    for marker in ("site-packages/", "/work/main/"):
        path = path.split(marker, 1)[-1]
    if path.startswith("/") and "/hito/" in path:  # a link tree or peer path: hito/…
        path = "hito/" + path.split("/hito/", 1)[1]
    top = path.split("/", 1)[0].removesuffix(".py")
    stdlib = top.startswith("<frozen") or top in sys.stdlib_module_names
    package = "stdlib" if stdlib else top
    return f"{func} ({path})", package


def summarise(raw: str, top: int = 15) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    project: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    project_files: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        n = int(m["count"])
        frames = [_parse(f) for f in m["stack"].split(";") if f]
        if not frames:
            continue
        total += n
        own[frames[-1][0]] += n
        for name in {f[0] for f in frames}:
            inclusive[name] += n
        for name in {f[0] for f in frames if f[1] in _PROJECT and not _entry(f[0])}:
            project[name] += n
        innermost = next((f for f in reversed(frames) if f[1] not in ("stdlib", "?")), None)
        owner = innermost[1] if innermost else "stdlib"
        if frames[-1][0].endswith(_IDLE_LEAVES):
            owner = "idle"
        elif innermost and owner in _PROJECT:
            project_files[innermost[0].rsplit(" (", 1)[1].rstrip(")")] += n
        packages[owner] += n

    def pct(counter: Counter[str], label: str = "function") -> list[dict[str, Any]]:
        return [
            {label: name, "samples": n, "percent": round(100 * n / total, 1)}
            for name, n in counter.most_common(top)
        ]

    return {
        "samples": total,
        "by_package": pct(packages, "package"),
        "self": pct(own),
        "inclusive_project": pct(project),
        "project_by_file": pct(project_files, "file"),
        "inclusive": pct(inclusive),
    }


def _entry(name: str) -> bool:
    return any(f"({e}" in name for e in _ENTRY)


def summarise_file(path: Path, top: int = 15) -> dict[str, Any]:
    return summarise(path.read_text(errors="replace"), top) if path.exists() else {}

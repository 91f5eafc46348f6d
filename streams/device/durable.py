"""Small files written so that a power cut leaves either the old or the new content.

POSIX promises durability only for what was fsync'd: a file's bytes after ``fsync`` of the
file, a name (creation, rename, unlink) after ``fsync`` of its directory. Everything the device
keeps (outbox segments, the acknowledged position, the ``seq`` floor, upload journals) goes
through these helpers, which always call ``os.fsync`` through the module (a test wraps it to
check where it is called, and to model a power cut).
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson


def fsync_dir(directory: Path) -> None:
    """Make the names in ``directory`` (files created, renamed or removed) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: Path) -> None:
    """``mkdir -p`` whose new entries survive a power cut (each parent fsync'd)."""
    missing: list[Path] = []
    d = directory
    while not d.exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700)
        fsync_dir(d.parent)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data``: after a power cut the file holds the old bytes or the new
    ones, never a mix (write a temporary file, fsync it, rename it over, fsync the folder)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path, value: object) -> None:
    write_atomic(path, orjson.dumps(value, option=orjson.OPT_SORT_KEYS) + b"\n")


def read_json(path: Path) -> object | None:
    """The JSON in ``path``, or None when there is no such file."""
    try:
        value: object = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    return value


def remove(path: Path) -> None:
    """Unlink ``path`` durably (a missing file is fine)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)

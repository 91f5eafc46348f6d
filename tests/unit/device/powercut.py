"""A model of a power cut: what a disk holds afterwards is what POSIX promised, nothing more.

A SIGKILL alone loses nothing the process wrote (the kernel still has it), so it cannot show a
missing fsync. :func:`install` (in the device's process) wraps ``os.fsync``/``os.fdatasync``
and ``os.open`` and records, outside the device's folder, what each call made durable: a
regular file's bytes when it is fsync'd, a folder's names (creations, renames, removals) when
the folder is fsync'd, and an empty file for a newly created one. After the process is killed,
:func:`power_cut` rebuilds the folder from that record alone, optionally with part of the bytes
written after a file's last fsync (a torn tail). Files the device never fsync'd, or names in a
folder it never fsync'd, are gone, as a strict reading of POSIX allows.

``HITO_POWERCUT_HANG_AT_SEG_FSYNC=N`` makes the Nth fsync of an outbox segment hang (after the
write, before the flush): the power goes during an append.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Any

import orjson

_real_fsync = os.fsync
_real_fdatasync = os.fdatasync
_real_open = os.open


class _Recorder:
    def __init__(self, root: Path, image: Path) -> None:
        self.root = root.resolve()
        self.image = image
        self.seg_fsyncs = 0
        self.hang_at = int(os.environ.get("HITO_POWERCUT_HANG_AT_SEG_FSYNC", "0"))
        (image / "files").mkdir(parents=True, exist_ok=True)
        (image / "dirs").mkdir(exist_ok=True)
        if not (image / "baseline").exists():
            self._baseline()

    def _baseline(self) -> None:
        """Whatever exists when recording starts is durable."""
        for folder, _dirs, files in os.walk(self.root):
            self._record_dir(Path(folder))
            for name in files:
                path = Path(folder) / name
                self._store(path.stat().st_ino, path.read_bytes())
        (self.image / "baseline").write_text("")

    def _rel(self, path: Path) -> str | None:
        try:
            rel = str(path.relative_to(self.root))
        except ValueError:
            return None
        return "" if rel == "." else rel

    def _store(self, ino: int, data: bytes) -> None:
        # Written without fsync: a SIGKILL of this process keeps it (only the model's disk
        # loses power).
        (self.image / "files" / str(ino)).write_bytes(data)

    def _record_dir(self, folder: Path) -> None:
        rel = self._rel(folder)
        assert rel is not None
        entries = {
            e.name: [e.inode(), "d" if e.is_dir(follow_symlinks=False) else "f"]
            for e in os.scandir(folder)
        }
        (self.image / "dirs" / _listing_name(rel)).write_bytes(orjson.dumps(entries))

    def fsync(self, fd: int, real: Any) -> None:
        target = Path(str(Path(f"/proc/self/fd/{fd}").readlink()).removesuffix(" (deleted)"))
        if self._rel(target) is None:
            real(fd)
            return
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            real(fd)
            self._record_dir(target)
            return
        if target.suffix == ".seg":
            self.seg_fsyncs += 1
            if self.seg_fsyncs == self.hang_at:
                sys.stdout.write("POWERCUT-HANG\n")  # the test waits for it
                sys.stdout.flush()
                time.sleep(3600)
        with open(f"/proc/self/fd/{fd}", "rb") as f:  # noqa: PTH123 - reopen by descriptor
            data = f.read()
        real(fd)
        self._store(st.st_ino, data)

    def opened(self, path: Any, flags: int, existed: bool, fd: int) -> None:
        if flags & os.O_CREAT and not existed and self._rel(Path(path).resolve()) is not None:
            self._store(os.fstat(fd).st_ino, b"")  # a new file holds nothing until fsync'd


def _listing_name(rel: str) -> str:
    return "root%" + rel.replace("/", "%")


def install(root: Path, image: Path) -> None:
    """Record what fsync makes durable under ``root`` (call in the device's process)."""
    recorder = _Recorder(root, image)

    def fsync(fd: Any) -> None:
        recorder.fsync(fd, _real_fsync)

    def fdatasync(fd: Any) -> None:
        recorder.fsync(fd, _real_fdatasync)

    def open_(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        existed = os.path.exists(path)  # noqa: PTH110
        fd = _real_open(path, flags, mode, dir_fd=dir_fd)
        recorder.opened(path, flags, existed, fd)
        return fd

    os.fsync = fsync
    os.fdatasync = fdatasync
    os.open = open_


def power_cut(root: Path, image: Path, torn_fraction: float = 0.0) -> None:
    """Replace ``root`` by what the modelled disk holds after the power went. With
    ``torn_fraction``, a file written past its last fsync keeps that share of the extra bytes
    (a torn append)."""
    live: dict[int, bytes] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            p = Path(folder) / name
            live[p.stat().st_ino] = p.read_bytes()
    shutil.rmtree(root)
    root.mkdir()

    def rebuild(rel: str, target: Path) -> None:
        listing = image / "dirs" / _listing_name(rel)
        entries = orjson.loads(listing.read_bytes()) if listing.exists() else {}
        for name, (ino, kind) in entries.items():
            child_rel = f"{rel}/{name}" if rel else name
            if kind == "d":
                (target / name).mkdir()
                rebuild(child_rel, target / name)
                continue
            stored = image / "files" / str(ino)
            data = stored.read_bytes() if stored.exists() else b""
            now = live.get(ino, b"")
            if torn_fraction and len(now) > len(data) and now.startswith(data):
                data += now[len(data) : len(data) + int((len(now) - len(data)) * torn_fraction)]
            (target / name).write_bytes(data)

    rebuild("", root)

"""Room kept back on the outbox's disk, given up when the disk is full so that the outbox can
free space again.

Every step that frees space writes a small file first: an acknowledgement (``acked.json``)
before its segments go, the ``seq`` floor before a segment's records are deleted. Each is a
new file (written, fsync'd, renamed: hito.device.durable), so each needs a free block. On a
disk the outbox had filled (the uplink down for days, a small partition), none could be
written: the sender re-sent the same batch every 30 s for ever, and the device never
recovered without an operator. Now the outbox holds a preallocated file of
``RESERVE_BYTES``; a state write that meets ENOSPC removes it and is made again, the
segments it lets go free their space, and the next acknowledgement allocates the reserve
anew.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

from hito.device import durable

RESERVE_BYTES = 64 * 1024  # a few small state files and their folder entries, many times over
log = logging.getLogger("hito.device.outbox")


class Reserve:
    def __init__(self, path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = path
        self.size = size

    def ensure(self) -> bool:
        """Allocate the reserve if it is missing (best effort: a full disk leaves it for a
        later call). True when it is in place."""
        try:
            if self.path.stat().st_size == self.size:
                return True
        except FileNotFoundError:
            pass
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # blocks, not a sparse file
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.replace(self.path)
            durable.fsync_dir(self.path.parent)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            durable.remove(tmp)
            return False
        return True

    def spending(self, write: Callable[[], None]) -> None:
        """Run ``write``; if the disk is full, give the reserve up and run it once more."""
        try:
            write()
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not self.path.exists():
                raise
            log.warning("outbox: the disk is full; its reserve of %d bytes given up", self.size)
            durable.remove(self.path)
            write()

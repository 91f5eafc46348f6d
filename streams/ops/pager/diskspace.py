"""Free space of the state directory: a start-up guard and the "disk full" test for OSErrors.

A service that writes to the state directory (the pager's page log) refuses to start when
the disk is nearly full: failing at start-up, with the directory and the free space in the
message, is clearer than failing on the first write hours later (for the pager: in the
middle of an incident, when a page arrives).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
DEFAULT_MIN_FREE_MB = 50

# EDQUOT (quota exceeded) is a full disk for the writer, as far as anything can tell.
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True)
class DiskSpace:
    """Free and total bytes of the filesystem holding ``path``."""

    path: Path
    free_bytes: int
    total_bytes: int

    @property
    def free_mb(self) -> float:
        return self.free_bytes / MB


class DiskNearlyFull(Exception):
    """Less free space than a service needs to start; ``str()`` is the operator's message."""

    def __init__(self, space: DiskSpace, min_free_bytes: int) -> None:
        self.space = space
        self.min_free_bytes = min_free_bytes
        super().__init__(
            f"state directory {space.path} is nearly full: {space.free_mb:.1f} MB free, "
            f"at least {min_free_bytes / MB:.1f} MB needed; free some space there "
            "(or point HITO_STATE_DIR at a bigger disk) and start again"
        )


def free_space(path: Path) -> DiskSpace:
    """The space of the filesystem ``path`` is (or will be created) on.

    A directory not created yet is measured at its nearest existing ancestor: that is where
    it will be created. Free bytes are those an unprivileged process may use (``f_bavail``),
    the smaller figure, so the guard does not count on root's reserved blocks.
    """
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    st = os.statvfs(probe)
    return DiskSpace(
        path=path, free_bytes=st.f_bavail * st.f_frsize, total_bytes=st.f_blocks * st.f_frsize
    )


def check_free_space(space: DiskSpace, min_free_bytes: int) -> DiskSpace:
    """``space`` itself when it has at least ``min_free_bytes`` free, else DiskNearlyFull."""
    if min_free_bytes < 0:
        raise ValueError(f"min_free_bytes must be >= 0, not {min_free_bytes}")
    if space.free_bytes < min_free_bytes:
        raise DiskNearlyFull(space, min_free_bytes)
    return space


def require_free_space(path: Path, min_free_mb: float = DEFAULT_MIN_FREE_MB) -> DiskSpace:
    """Measure ``path``'s filesystem and raise DiskNearlyFull below ``min_free_mb``."""
    return check_free_space(free_space(path), int(min_free_mb * MB))


def is_no_space(exc: OSError) -> bool:
    """Whether a failed write failed because the disk (or the writer's quota) is full."""
    return exc.errno in _NO_SPACE_ERRNOS

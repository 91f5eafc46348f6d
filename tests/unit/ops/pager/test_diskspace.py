"""Free space of the state directory: the start-up guard's decision and its message."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from hito.ops.pager.diskspace import (
    DEFAULT_MIN_FREE_MB,
    MB,
    DiskNearlyFull,
    DiskSpace,
    check_free_space,
    free_space,
    is_no_space,
    require_free_space,
)


def test_enough_space_passes_and_returns_the_measurement() -> None:
    space = DiskSpace(Path("/srv/hito"), free_bytes=50 * MB, total_bytes=100 * MB)
    assert check_free_space(space, 50 * MB) is space  # exactly the threshold is enough
    assert check_free_space(space, 0) is space


def test_too_little_space_names_the_directory_and_the_free_mb() -> None:
    space = DiskSpace(Path("/srv/hito/pager"), free_bytes=MB // 2, total_bytes=100 * MB)
    with pytest.raises(DiskNearlyFull) as raised:
        check_free_space(space, DEFAULT_MIN_FREE_MB * MB)
    assert str(raised.value) == (
        "state directory /srv/hito/pager is nearly full: 0.5 MB free, at least 50.0 MB needed; "
        "free some space there (or point HITO_STATE_DIR at a bigger disk) and start again"
    )
    assert (raised.value.space, raised.value.min_free_bytes) == (space, 50 * MB)


def test_one_byte_short_is_refused() -> None:
    space = DiskSpace(Path("/s"), free_bytes=MB - 1, total_bytes=10 * MB)
    with pytest.raises(DiskNearlyFull):
        check_free_space(space, MB)


def test_a_negative_threshold_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="min_free_bytes must be >= 0"):
        check_free_space(DiskSpace(Path("/s"), 0, 0), -1)


def test_free_space_is_what_statvfs_reports_to_unprivileged_writers(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    space = free_space(tmp_path)
    assert space.path == tmp_path
    assert space.total_bytes == st.f_blocks * st.f_frsize
    # Free space moves with other writers; f_bavail (not root's f_bfree) is what is reported.
    assert abs(space.free_bytes - st.f_bavail * st.f_frsize) < 64 * MB


def test_a_directory_not_created_yet_is_measured_where_it_will_be(tmp_path: Path) -> None:
    missing = tmp_path / "state" / "pager"
    space = free_space(missing)
    assert space.path == missing
    assert not missing.exists()  # measuring creates nothing
    assert space.total_bytes == free_space(tmp_path).total_bytes


def test_require_free_space_measures_then_decides(tmp_path: Path) -> None:
    assert require_free_space(tmp_path, 0).path == tmp_path
    too_much = free_space(tmp_path).total_bytes / MB + 1  # more than the whole disk
    with pytest.raises(DiskNearlyFull, match=f"state directory {tmp_path} is nearly full"):
        require_free_space(tmp_path, too_much)


@pytest.mark.parametrize(
    ("code", "expected"),
    [(errno.ENOSPC, True), (errno.EDQUOT, True), (errno.EIO, False), (errno.EFBIG, False)],
)
def test_is_no_space(code: int, expected: bool) -> None:
    assert is_no_space(OSError(code, os.strerror(code))) is expected
    assert is_no_space(OSError("no errno")) is False

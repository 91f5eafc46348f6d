"""A device's outbox on a disk it filled itself (the uplink down for days, a small partition):
once the broker is back, the acknowledgements must free the space. Each step that frees space
writes a small state file first (the acknowledged position, the seq floor), which needs a free
block: before the outbox kept a reserve (hito.device.reserve), every acknowledgement failed
with ENOSPC and the sender re-sent the same batch for ever.

A real, tiny filesystem (tmpfs) is the outbox's disk: needs root for `mount` (CI runs as
root); the test fails without it, it never skips.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from hito.device.outbox import Outbox, OutboxLimits
from hito.device.reserve import RESERVE_BYTES
from tests.integration.stack.test_disk_full import fill_leaving, free_bytes, tiny_tmpfs
from tests.unit.device.test_outbox import Clock, rec

DISK = 1024 * 1024


def test_a_full_disk_is_freed_by_the_acknowledgements(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "disk", size=DISK) as disk:
        box = Outbox(disk / "outbox", OutboxLimits(segment_bytes=16 * 1024), Clock())
        try:
            assert (disk / "outbox" / "reserve").stat().st_size == RESERVE_BYTES
            seq = 0
            with pytest.raises(OSError) as full:  # appends until the disk is full
                while True:
                    box.append([rec(seq, size=1000)])
                    seq += 1
            assert full.value.errno == errno.ENOSPC
            fill_leaving(disk, 0)  # and whatever an append could not use
            assert free_bytes(disk) == 0
            acknowledged = 0
            while batch := box.pending(max_records=100):
                box.ack(batch)  # raised ENOSPC before the reserve
                acknowledged += len(batch)
            assert acknowledged == seq > 500
            assert box.status().pending_events == 0
            # The segments went, the reserve is back, and the device goes on.
            assert len(list((disk / "outbox").glob("*.seg"))) == 1
            assert (disk / "outbox" / "reserve").stat().st_size == RESERVE_BYTES
            box.append([rec(seq, size=1000)])
            assert [p.record.seq for p in box.pending()] == [seq]
        finally:
            box.close()  # its lock file open would keep the disk from unmounting

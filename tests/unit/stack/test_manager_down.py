"""`hito down` stops what runs and keeps data unless asked to wipe it (no real services)."""

from __future__ import annotations

import sys
from pathlib import Path

from hito.settings import HitoSettings
from hito.stack import manager, process
from hito.stack.services import SERVICES


def test_down_keeps_data_and_wipe_deletes_it(tmp_path: Path) -> None:
    settings = HitoSettings(state_dir=tmp_path / "state")
    for svc in SERVICES:
        svc.data_dir(settings).mkdir(parents=True)
        (svc.data_dir(settings) / "data.bin").write_bytes(b"x")
    kafka = SERVICES[0]
    process.start(
        [sys.executable, "-c", "import time; time.sleep(60)"], kafka.files(settings), cwd=tmp_path
    )

    assert manager.down(settings) == ["kafka"]
    assert process.read_pid(kafka.files(settings)) is None
    assert all((svc.data_dir(settings) / "data.bin").exists() for svc in SERVICES)

    assert manager.down(settings, wipe=True) == []
    assert not any(svc.data_dir(settings).exists() for svc in SERVICES)


def test_down_only_stops_the_named_services(tmp_path: Path) -> None:
    settings = HitoSettings(state_dir=tmp_path / "state")
    kafka, influxdb = SERVICES[0], SERVICES[1]
    for svc in (kafka, influxdb):
        process.start(
            [sys.executable, "-c", "import time; time.sleep(60)"], svc.files(settings), cwd=tmp_path
        )
    assert manager.down(settings, only=["influxdb"]) == ["influxdb"]
    assert process.read_pid(kafka.files(settings)) is not None
    assert manager.down(settings) == ["kafka"]

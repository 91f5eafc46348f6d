"""The demo goes on from its last run: the same worker app and each device's next seq,
remembered for the same stack only; the fleet continues its sequence numbers; the plan's
outage and the minutes its held events can fall in."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from hito.demo import continuity
from hito.demo.revised import Outage
from hito.demo.run import DemoPlan
from hito.device.simulate.fleet import Fleet, FleetPlan
from hito.devices import DeviceRegistry
from hito.settings import HitoSettings

NOW = datetime(2026, 12, 3, 22, 30, 0, tzinfo=UTC)


def test_a_remembered_app_and_seqs_come_back_for_the_same_stack_only(
    settings: HitoSettings, tmp_path: Path
) -> None:
    path = tmp_path / continuity.MEMORY_FILE
    first = continuity.recall(path, settings)
    assert first.new and first.next_seq == {} and first.app_id.startswith("hito-demo-")
    continuity.remember(path, settings, first.app_id, {"cl-chacalluta-ckpt-01": 812})
    again = continuity.recall(path, settings)
    assert again == continuity.FleetMemory(first.app_id, {"cl-chacalluta-ckpt-01": 812}, new=False)
    other_bucket = settings.model_copy(
        update={"influxdb": settings.influxdb.model_copy(update={"bucket": "elsewhere"})}
    )
    elsewhere = continuity.recall(path, other_bucket)
    assert elsewhere.new and elsewhere.app_id != first.app_id and elsewhere.next_seq == {}
    path.write_text("{not json")
    assert continuity.recall(path, settings).new


def test_the_fleet_goes_on_from_the_remembered_seqs(registry: DeviceRegistry) -> None:
    plan = FleetPlan(count=400, seed=3, daily_rhythm=False)
    first = Fleet(registry, plan, NOW)
    seqs = [orjson.loads(m.value)["seq"] for m in first.messages()]
    next_seq = first.next_seqs()
    assert sum(next_seq.values()) == len(seqs) == 400
    again = Fleet(
        registry, FleetPlan(count=400, seed=3, daily_rhythm=False, first_seq=next_seq), NOW
    )
    by_device: dict[str, list[int]] = {}
    for m in again.messages():
        by_device.setdefault(m.device_id, []).append(orjson.loads(m.value)["seq"])
    for device, numbers in by_device.items():
        # Each device's numbers go on exactly where the first run stopped, without a gap.
        assert numbers == list(range(next_seq[device], next_seq[device] + len(numbers)))
    assert again.next_seqs() == dict(
        Counter(next_seq) + Counter({d: len(n) for d, n in by_device.items()})
    )


def test_the_plans_outage_and_where_its_held_events_can_fall(registry: DeviceRegistry) -> None:
    plan = DemoPlan()
    assert plan.outage(registry) == Outage(
        "pe-santarosa-ckpt-02", "santa-rosa", 30.0, 120.0, 3600.0
    )
    # Back at 150 s: its events fall in the hour before, from 21:32:30; two minutes' margin.
    assert plan.revisable_from(NOW) == datetime(2026, 12, 3, 21, 30, tzinfo=UTC)
    # Offline to the end of a 40 s run: it reconnects when the run ends.
    short = DemoPlan(normal_s=40.0, surge_s=0.0, after_s=0.0)
    assert short.revisable_from(NOW) == datetime(2026, 12, 3, 21, 28, tzinfo=UTC)
    assert short.outage(registry) == Outage(
        "pe-santarosa-ckpt-02", "santa-rosa", 30.0, 10.0, 3600.0
    )
    assert DemoPlan(offline_device=None).outage(registry) is None
    with pytest.raises(ValueError, match="not an active checkpoint terminal"):
        DemoPlan(offline_device="sensor-concordia-01").outage(registry)

"""State written through the batch lane comes back from the changelogs, exactly.

The lane agents write their tables the batch way (``hito.pipeline.state.changelog``): the store
at once, the changelog record serialised by our code and produced with the batch. A fresh
worker of the same app must rebuild every table from those records, through Faust's own
recovery, to exactly the state the first worker had: same keys, same values.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from typer.testing import CliRunner

from hito.cli import app
from hito.credentials import client_config
from hito.device.simulate.fleet import Fleet, FleetPlan
from hito.device.simulate.runner import send_messages
from hito.ops.compacted import read_latest
from hito.pipeline.stages.dedup import SeqState
from hito.pipeline.worker import Worker
from hito.runtime import Runtime
from tests.integration.pipeline.conftest import running_worker, wait_until
from tests.integration.pipeline.test_aggregation import expected_from, expected_totals, totals

RECOVERY_TIMEOUT_S = 90


def stores(worker: Worker) -> dict[str, dict[str, Any]]:
    """Every table the lane agents write, as plain dicts of what the store holds."""
    tables = {
        "dedup-seq": worker.seq_table,
        "agg-windows": worker.windows,
        "pipeline-counts": worker.counts_table,
        "person-state": worker.repeat_table,
    }
    return {name: dict(table.data.items()) for name, table in tables.items()}


def test_a_fresh_worker_recovers_the_lane_tables_exactly(isolated_runtime: Runtime) -> None:
    settings = isolated_runtime.settings
    plan = FleetPlan(
        count=3000,
        seed=41,
        bad_fraction=0.05,
        duplicate_fraction=0.05,
        out_of_order_fraction=0.03,
        raw_topics=dict(settings.pipeline.raw_topics),
        daily_rhythm=False,
        travellers=40,  # people who come back: repeat_crossings keeps per-person state
    )
    messages = list(Fleet(isolated_runtime.registry, plan, datetime.now(UTC)).messages())
    exp = expected_from(messages, settings.pipeline.window_s)
    app_id = f"hito-changelog-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], float]:
        async with running_worker(isolated_runtime, app_id=app_id) as first:
            await asyncio.to_thread(
                send_messages,
                messages,
                producer_config=client_config(settings.kafka, "device"),
                total=len(messages),
            )
            await wait_until(
                lambda: first.metrics.total_events() >= len(messages), 120, "ingest to drain"
            )
            await wait_until(
                lambda: totals(settings) == expected_totals(exp), 60, "every event aggregated"
            )
            # Let the publisher flush and a batch or two of counts settle, then take the
            # snapshot the clean stop leaves behind (nothing is fed any more).
            await asyncio.sleep(2)
            before = stores(first)
        async with running_worker(isolated_runtime, app_id=app_id) as fresh:
            tables: Any = fresh.app.tables  # Faust's TableManager
            recovery = tables.recovery
            await asyncio.wait_for(recovery.completed.wait(), RECOVERY_TIMEOUT_S)
            # Read as soon as recovery says it is done. The first worker committed everything
            # it handled (its clean stop), so the fresh one has nothing to handle: what its
            # tables hold came from the changelogs alone (handled_after shows it).
            after = stores(fresh)
            handled_after = fresh.metrics.total_events()
        return before, after, handled_after

    before, after, handled_after = asyncio.run(scenario())
    for name, state in before.items():
        assert state, f"{name}: the first worker wrote nothing; the test proves nothing"
    assert handled_after == 0
    for name in before:
        missing = before[name].keys() - after[name].keys()
        extra = after[name].keys() - before[name].keys()
        common = before[name].keys() & after[name].keys()
        changed = {k for k in common if before[name][k] != after[name][k]}
        assert not (missing or extra or changed), (
            f"{name}: {len(missing)} keys not recovered (e.g. {sorted(missing)[:3]}), "
            f"{len(extra)} keys too many (e.g. {sorted(extra)[:3]}), "
            f"{len(changed)} values differ (e.g. {sorted(changed)[:3]})"
        )
    assert after == before
    # `hito devices seq` reads the dedup states back from the same changelog, as the admin.
    dedup = before["dedup-seq"]
    topic = f"{app_id}-dedup-seq-changelog"
    found = read_latest(settings, topic, [*dedup, "no-such-device"], role="admin")
    assert {f.key: f.value for f in found} == {**dedup, "no-such-device": None}
    device_id, value = sorted(dedup.items())[0]
    shown = CliRunner().invoke(app, ["devices", "seq", device_id, "--app-id", app_id])
    assert shown.exit_code == 0, shown.output
    assert f"{device_id}: min_seq {SeqState.from_json(value).high + 1} " in shown.output
    absent = CliRunner().invoke(app, ["devices", "seq", device_id, "--app-id", "hito-none"])
    assert absent.exit_code == 1 and "no topic hito-none-dedup-seq-changelog" in absent.output

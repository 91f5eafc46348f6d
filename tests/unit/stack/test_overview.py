"""`hito status`'s operator view says what it could not read instead of failing."""

from __future__ import annotations

from hito.settings import HitoSettings
from hito.settings.sections import AlertmanagerSettings, InfluxSettings, PrometheusSettings
from hito.stack import overview


def test_unreachable_services_are_reported_not_raised() -> None:
    # Port 9 (discard) on loopback: nothing listens there. InfluxDB too, so the result does
    # not depend on whether a local stack happens to be up (it failed with the stack down).
    settings = HitoSettings(
        prometheus=PrometheusSettings(port=9),
        alertmanager=AlertmanagerSettings(port=9),
        influxdb=InfluxSettings(port=9),
    )
    view = overview.collect(settings, timeout_s=0.5)
    assert view.pipeline == {} and view.alerts == [] and view.revisions == []
    assert [p.split(":", 1)[0] for p in view.problems] == [
        "Prometheus",
        "Alertmanager",
        "InfluxDB revisions",
    ]


def test_alert_rows_keep_what_an_operator_needs() -> None:
    row = overview._alert_row(
        {
            "labels": {
                "alertname": "CheckpointSurge",
                "severity": "critical",
                "site": "chacalluta",
            },
            "annotations": {"summary": "s", "runbook_url": "docs/runbooks/CheckpointSurge.md"},
            "startsAt": "2026-11-28T04:01:05.123Z",
        }
    )
    assert row == {
        "alertname": "CheckpointSurge",
        "severity": "critical",
        "site": "chacalluta",
        "since": "2026-11-28 04:01:05",
        "summary": "s",
        "runbook": "docs/runbooks/CheckpointSurge.md",
    }

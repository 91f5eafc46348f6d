"""paged_and_resolved: what the demo and the alert tests wait for before a surge is over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from hito.ops.pager.pages import Page, paged_and_resolved

T0 = datetime(2026, 12, 5, 12, 52, 12, tzinfo=UTC)


def _surge(
    direction: str, status: Literal["firing", "resolved"], after_s: float, fingerprint: bool = True
) -> Page:
    return Page(
        received_at=T0 + timedelta(seconds=after_s),
        urgency="critical",
        receiver="pager-critical",
        status=status,
        alertname="CheckpointSurge",
        severity="critical",
        site="chacalluta",
        summary="",
        runbook_url="",
        labels={"alertname": "CheckpointSurge", "site": "chacalluta", "direction": direction},
        starts_at=T0.isoformat(),
        ends_at="",
        fingerprint=f"fp-{direction}" if fingerprint else "",
    )


def test_one_direction_resolved_is_not_the_surge_over() -> None:
    """CI of 2026-12-05: exit resolved, entry three minutes later."""
    fired = [_surge("entry", "firing", 0), _surge("exit", "firing", 0)]
    exit_resolved = [*fired, _surge("exit", "resolved", 120)]
    assert not paged_and_resolved(exit_resolved, "CheckpointSurge")
    assert paged_and_resolved([*exit_resolved, _surge("entry", "resolved", 300)], "CheckpointSurge")


def test_the_last_page_counts_and_the_log_order_is_not_trusted() -> None:
    refired = [
        _surge("entry", "firing", 0),
        _surge("entry", "resolved", 60),
        _surge("entry", "firing", 90),
    ]
    assert not paged_and_resolved(refired, "CheckpointSurge")
    # By time, not by position: the resolution listed first is still the later page.
    listed_late = [_surge("entry", "resolved", 60), _surge("entry", "firing", 0)]
    assert paged_and_resolved(listed_late, "CheckpointSurge")


def test_nothing_paged_or_only_a_resolution_is_not_a_surge_over() -> None:
    assert not paged_and_resolved([], "CheckpointSurge")
    # An earlier run's alert resolving: no firing page among these.
    assert not paged_and_resolved([_surge("entry", "resolved", 0)], "CheckpointSurge")
    assert not paged_and_resolved([_surge("entry", "firing", 0)], "SinkFailing")


def test_without_fingerprints_the_labels_tell_the_alerts_apart() -> None:
    pages = [
        _surge("entry", "firing", 0, fingerprint=False),
        _surge("exit", "firing", 0, fingerprint=False),
        _surge("exit", "resolved", 60, fingerprint=False),
    ]
    assert not paged_and_resolved(pages, "CheckpointSurge")

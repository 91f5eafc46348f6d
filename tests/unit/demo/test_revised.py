"""The demo's revised hour: what this run revised (from cumulative `revisions` points), the
summary's exactness check against what the fleet sent, its text, and its mark on the picture."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import dates
from matplotlib.patches import Rectangle

from hito.demo.revised import (
    Outage,
    Revision,
    added_by_run,
    mark_revised,
    revised_hour,
    revised_lines,
)
from hito.pipeline.stages.windows import WindowRules

T0 = datetime(2026, 12, 3, 21, 30, tzinfo=UTC)  # the first minute of the held hour
STARTED = datetime(2026, 12, 3, 22, 30, 5, 400_000, tzinfo=UTC)  # the run began
REVISED_AT = datetime(2026, 12, 3, 22, 32, 41, tzinfo=UTC)
OUTAGE = Outage("pe-santarosa-ckpt-02", "santa-rosa", 30.0, 120.0, 3600.0)


def minute(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def rev(i: int, events: int, at: datetime = REVISED_AT, site: str = "santa-rosa") -> Revision:
    return Revision(site, "checkpoint", minute(i), events, at)


def test_only_this_runs_revisions_count_and_only_the_events_it_added() -> None:
    earlier = datetime(2026, 12, 3, 22, 5, 0, tzinfo=UTC)
    before = [rev(0, 3, earlier), rev(1, 2, earlier), rev(7, 9, earlier)]
    after = [
        rev(0, 7),  # revised before (3) and again now: this run added 4
        rev(1, 2, earlier),  # not revised by this run
        rev(2, 5),  # new
        rev(7, 9, earlier),
        Revision("sector-concordia", "drone", minute(3), 6, REVISED_AT),
        rev(4, 1, datetime(2026, 12, 3, 22, 30, 5, tzinfo=UTC)),  # the run's first second
    ]
    got = added_by_run(before, after, STARTED)
    assert [(r.site, r.source, r.minute, r.events) for r in got] == [
        ("santa-rosa", "checkpoint", minute(0), 4),
        ("santa-rosa", "checkpoint", minute(2), 5),
        ("sector-concordia", "drone", minute(3), 6),
        ("santa-rosa", "checkpoint", minute(4), 1),
    ]


RULES = WindowRules(window_s=60, allowed_lateness_s=300, backfill_horizon_s=7 * 86400)
RECONNECTED = datetime(2026, 12, 3, 22, 32, 40, 250_000, tzinfo=UTC)
# The upload: three minutes an hour back, 22:26 (closed 340 s before the terminal reconnected:
# beyond the 300 s lateness) and 22:27 (closed 280 s before: still live).
HELD = {minute(0): 4, minute(1): 5, minute(2): 3, minute(56): 2, minute(57): 6}


def _hour(
    revisions: list[Revision],
    *,
    after: dict[datetime, int] | None = None,
    backfilled: int = 14,
    held: dict[datetime, int] = HELD,
) -> dict[str, Any]:
    # The site's live crossings are in minutes the upload has nothing for (22:30 on).
    sent = {**held, minute(60): 41, minute(61): 38}
    return revised_hour(
        OUTAGE,
        revisions,
        rules=RULES,
        reconnected_at=RECONNECTED,
        held=held,
        sent=sent,
        crossings_before={minute(0): 11},  # an earlier demo's crossings in that minute
        crossings_after=after if after is not None else {**sent, minute(0): 15},
        backfilled=backfilled,
    )


def _exact_hour() -> dict[str, Any]:
    later = REVISED_AT + timedelta(seconds=2)
    return _hour([rev(0, 4), rev(1, 5, later), rev(2, 3), rev(56, 2)])


def test_an_exact_revised_hour_names_the_terminal_minutes_events_and_times() -> None:
    got = _exact_hour()
    assert got["exact"] is True
    assert got["mismatched_minutes"] == []
    assert (got["device"], got["site"], got["source"]) == (
        "pe-santarosa-ckpt-02",
        "santa-rosa",
        "checkpoint",
    )
    assert got["uploaded"] == {
        "crossings": 20,
        "first_minute": "2026-12-03T21:30:00+00:00",
        "last_minute": "2026-12-03T22:27:00+00:00",
    }
    assert (got["minutes"], got["events"], got["backfilled_by_worker"]) == (4, 14, 14)
    assert got["counted_live"] == 6  # 22:27, within the lateness when it reconnected
    assert (got["first_minute"], got["last_minute"]) == (
        "2026-12-03T21:30:00+00:00",
        "2026-12-03T22:26:00+00:00",
    )
    assert (got["revised_from"], got["revised_to"]) == (
        "2026-12-03T22:32:41+00:00",
        "2026-12-03T22:32:43+00:00",
    )
    assert got["per_minute"][0] == {
        "minute": "2026-12-03T21:30:00+00:00",
        "held": 4,
        "added": 4,
        "before": 11,
        "sent": 4,
        "influxdb": 15,
    }
    assert [row["minute"][11:16] for row in got["per_minute"]] == [
        "21:30",
        "21:31",
        "21:32",
        "22:26",
    ]
    assert got["offline"] == {"from_s": 30.0, "for_s": 120.0, "span_s": 3600.0}
    assert got["elsewhere"] == []


def test_the_minute_at_the_lateness_may_be_revised_if_the_worker_read_it_after_it_closed() -> None:
    got = _hour([rev(0, 4), rev(1, 5), rev(2, 3), rev(56, 2), rev(57, 6)], backfilled=20)
    assert (got["exact"], got["minutes"], got["events"], got["counted_live"]) == (True, 5, 20, 0)


def test_a_minute_influxdb_holds_wrongly_one_not_revised_or_a_counter_that_differs() -> None:
    revisions = [rev(0, 4), rev(1, 5), rev(2, 3), rev(56, 2)]
    wrong = _hour(revisions, after={minute(0): 4, minute(1): 5, minute(2): 3, minute(56): 2})
    assert wrong["exact"] is False
    # The earlier demo's 11 crossings of 21:30 were lost.
    assert wrong["mismatched_minutes"] == [
        {
            "minute": minute(0).isoformat(),
            "held": 4,
            "added": 4,
            "before": 11,
            "sent": 4,
            "influxdb": 4,
        }
    ]
    # 21:31 had closed long before the terminal reconnected: it must have been revised.
    missing = _hour([rev(0, 4), rev(2, 3), rev(56, 2)], backfilled=9)
    assert missing["exact"] is False
    assert [(r["minute"][11:16], r["held"], r["added"]) for r in missing["mismatched_minutes"]] == [
        ("21:31", 5, 0)
    ]
    # Revised by more than the upload brought to that minute.
    more = _hour([rev(0, 4), rev(1, 7), rev(2, 3), rev(56, 2)], backfilled=16)
    assert [r["minute"][11:16] for r in more["mismatched_minutes"]] == ["21:31"]
    counted_more = _hour(revisions, backfilled=16)  # 2 revisions InfluxDB does not show
    assert counted_more["exact"] is False and counted_more["mismatched_minutes"] == []
    nothing = revised_hour(
        OUTAGE,
        [Revision("sector-concordia", "drone", minute(3), 6, REVISED_AT)],
        rules=RULES,
        reconnected_at=None,
        held={},
        sent={},
        crossings_before={},
        crossings_after={},
        backfilled=0,
    )
    assert (nothing["exact"], nothing["minutes"], nothing["first_minute"]) == (False, 0, None)
    assert nothing["uploaded"] == {"crossings": 0, "first_minute": None, "last_minute": None}
    assert nothing["elsewhere"] == [{"site": "sector-concordia", "source": "drone", "minutes": 1}]


def test_the_summary_text_of_the_revised_hour() -> None:
    assert revised_lines(_exact_hour()) == [
        ("terminal", "pe-santarosa-ckpt-02 (santa-rosa)"),
        (
            "uplink down",
            "from 30 s for 120 s; its events spread over the 3600 s before it reconnected",
        ),
        ("reconnected at", "22:32:40 UTC"),
        ("uploaded late", "20 crossings (21:30-22:27 UTC)"),
        ("minutes revised", "4 (21:30-22:26 UTC)"),
        ("events backfilled", "14 (the worker's hito_backfill_events_total: 14)"),
        ("counted live", "6 (minutes still within the allowed lateness)"),
        ("revised at", "22:32:41-22:32:43 UTC"),
        (
            "crossings in those minutes",
            "exact in all 4 minutes: InfluxDB = before the demo + what the fleet sent, "
            "added = uploaded",
        ),
    ]
    wrong = {**_exact_hour(), "exact": False, "mismatched_minutes": [{"minute": "x"}]}
    assert revised_lines(wrong)[-1] == (
        "crossings in those minutes",
        "NOT exact in 1 of 4 minutes (summary.json: mismatched_minutes)",
    )


def test_the_picture_shades_the_revised_minutes_and_draws_what_the_upload_added() -> None:
    held = {minute(0): 4, minute(1): 5, minute(2): 3}
    later = REVISED_AT + timedelta(seconds=2)
    revised = _hour([rev(0, 4), rev(1, 5, later), rev(2, 3)], backfilled=12, held=held)
    crossings = {minute(i): n for i, n in [(-5, 99), (-1, 2), (0, 15), (1, 5), (2, 3), (3, 4)]}
    fig, ax = plt.subplots()
    try:
        mark_revised(ax, revised, crossings)
        first, end = dates.date2num(minute(0)), dates.date2num(minute(3))
        rects = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(rects) == len(ax.patches) == 4
        span = [p for p in rects if str(p.get_label()).startswith("revised")]
        assert [p.get_label() for p in span] == ["revised by a late upload: 12 events"]
        assert (span[0].get_x(), span[0].get_x() + span[0].get_width()) == (first, end)
        bars = [p for p in rects if p not in span]
        assert [round(b.get_height()) for b in bars] == [4, 5, 3]
        assert [b.get_x() for b in bars] == [dates.date2num(minute(i)) for i in range(3)]
        (line,) = ax.get_lines()
        # Every minute within two of the span, 0 where InfluxDB has no point (the one 5
        # minutes before is not shown).
        assert np.asarray(line.get_ydata()).tolist() == [0, 2, 15, 5, 3, 4, 0, 0]
        assert ax.get_xlim() == (dates.date2num(minute(-2)), dates.date2num(minute(5)))
        assert ax.get_ylim() == (0, 15 * 1.35)  # room for the legend above the highest
        assert ax.get_title() == (
            "The revised hour: 3 minutes of santa-rosa, revised when pe-santarosa-ckpt-02 "
            "reconnected at 22:32:40 UTC"
        )
        legend = ax.get_legend()
        assert legend is not None
        assert [t.get_text() for t in legend.get_texts()] == [
            "santa-rosa crossings per minute (InfluxDB)",
            "revised by a late upload: 12 events",
            "events the late upload added",
        ]
    finally:
        plt.close(fig)

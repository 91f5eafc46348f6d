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


def _exact_hour() -> dict[str, Any]:
    revisions = [rev(0, 4), rev(1, 5, REVISED_AT + timedelta(seconds=2)), rev(2, 3)]
    return revised_hour(
        OUTAGE,
        revisions,
        reconnected_at=datetime(2026, 12, 3, 22, 32, 40, 250_000, tzinfo=UTC),
        crossings_before={minute(0): 11},  # an earlier demo's crossings in that minute
        crossings_after={minute(0): 15, minute(1): 5, minute(2): 3, minute(3): 4},
        sent={minute(0): 4, minute(1): 5, minute(2): 3, minute(3): 4},
        backfilled=12,
    )


def test_an_exact_revised_hour_names_the_terminal_minutes_events_and_times() -> None:
    got = _exact_hour()
    assert got["exact"] is True
    assert got["mismatched_minutes"] == []
    assert (got["device"], got["site"], got["source"]) == (
        "pe-santarosa-ckpt-02",
        "santa-rosa",
        "checkpoint",
    )
    assert (got["minutes"], got["events"], got["backfilled_by_worker"]) == (3, 12, 12)
    assert (got["first_minute"], got["last_minute"]) == (
        "2026-12-03T21:30:00+00:00",
        "2026-12-03T21:32:00+00:00",
    )
    assert (got["revised_from"], got["revised_to"]) == (
        "2026-12-03T22:32:41+00:00",
        "2026-12-03T22:32:43+00:00",
    )
    assert got["per_minute"][0] == {
        "minute": "2026-12-03T21:30:00+00:00",
        "events": 4,
        "sent": 4,
        "before": 11,
        "influxdb": 15,
    }
    assert got["offline"] == {"from_s": 30.0, "for_s": 120.0, "span_s": 3600.0}
    assert got["elsewhere"] == []


def test_a_minute_influxdb_holds_wrongly_or_a_backfill_count_that_differs_is_not_exact() -> None:
    wrong = revised_hour(
        OUTAGE,
        [rev(0, 4), rev(1, 5)],
        reconnected_at=None,
        crossings_before={minute(0): 11},
        crossings_after={minute(0): 4, minute(1): 5},  # the earlier 11 lost
        sent={minute(0): 4, minute(1): 5},
        backfilled=9,
    )
    assert wrong["exact"] is False
    assert wrong["mismatched_minutes"] == [
        {"minute": minute(0).isoformat(), "events": 4, "sent": 4, "before": 11, "influxdb": 4}
    ]
    counted_more = revised_hour(
        OUTAGE,
        [rev(0, 4)],
        reconnected_at=None,
        crossings_before={},
        crossings_after={minute(0): 4},
        sent={minute(0): 4},
        backfilled=6,  # the worker counted 2 revisions InfluxDB does not show
    )
    assert counted_more["exact"] is False and counted_more["mismatched_minutes"] == []
    nothing = revised_hour(
        OUTAGE,
        [Revision("sector-concordia", "drone", minute(3), 6, REVISED_AT)],
        reconnected_at=None,
        crossings_before={},
        crossings_after={},
        sent={},
        backfilled=0,
    )
    assert (nothing["exact"], nothing["minutes"], nothing["first_minute"]) == (False, 0, None)
    assert nothing["elsewhere"] == [{"site": "sector-concordia", "source": "drone", "minutes": 1}]


def test_the_summary_text_of_the_revised_hour() -> None:
    assert revised_lines(_exact_hour()) == [
        ("terminal", "pe-santarosa-ckpt-02 (santa-rosa)"),
        (
            "uplink down",
            "from 30 s for 120 s; its events spread over the 3600 s before it reconnected",
        ),
        ("reconnected at", "22:32:40 UTC"),
        ("minutes revised", "3 (21:30-21:32 UTC)"),
        ("events added", "12 (the worker's backfill counter: 12)"),
        ("revised at", "22:32:41-22:32:43 UTC"),
        (
            "crossings in those minutes",
            "exact in all 3 minutes: InfluxDB = before the demo + what the fleet sent",
        ),
    ]
    wrong = {**_exact_hour(), "exact": False, "mismatched_minutes": [{"minute": "x"}]}
    assert revised_lines(wrong)[-1] == (
        "crossings in those minutes",
        "NOT exact in 1 of 3 minutes (summary.json: mismatched_minutes)",
    )


def test_the_picture_shades_the_revised_minutes_and_draws_what_the_upload_added() -> None:
    revised = _exact_hour()
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
        # The minutes within two of the span (the one 5 minutes before is not shown).
        assert np.asarray(line.get_ydata()).tolist() == [2, 15, 5, 3, 4, 4]
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

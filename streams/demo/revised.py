"""The demo's revised hour: a checkpoint terminal's uplink is down for a while, its events
(spread over the hour before it reconnects: a compressed outage) arrive late, and the pipeline
revises those minutes (docs/aggregation.md, "Backfill"). The upload's newest minutes, closed
less than the allowed lateness before, are counted live instead: not revisions.

What the summary says comes from InfluxDB's ``revisions`` measurement (read with the
dashboards token, as ``hito status`` does) and is checked against what the fleet sent:
:func:`revised_hour` builds it from given data, :func:`mark_revised` draws it. Both are pure.

A ``revisions`` point is cumulative per window (every revision of that minute so far), so the
events *this run* added are the difference from the points read before it began
(:func:`added_by_run`): a minute revised by an earlier demo too counts only this run's events.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hito.pipeline.stages.windows import Timeliness, WindowRules

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Revision:
    """One point of the ``revisions`` measurement: ``events`` late events added to the
    ``minute`` of ``site`` from ``source``, the last at ``revised_at``."""

    site: str
    source: str
    minute: datetime
    events: int
    revised_at: datetime


@dataclass(frozen=True)
class Outage:
    """The demo's offline terminal: down from ``after_s`` into the run for ``for_s``, its held
    events spread over the ``span_s`` before it reconnected."""

    device: str
    site: str
    after_s: float
    for_s: float
    span_s: float


def added_by_run(before: list[Revision], after: list[Revision], since: datetime) -> list[Revision]:
    """The revisions made since ``since``, each with the events added since (``after`` minus
    what ``before`` had for the same point), oldest minute first."""
    earlier = {(r.site, r.source, r.minute): r.events for r in before}
    cutoff = since.replace(microsecond=0)  # revised_at has whole seconds
    out = []
    for r in after:
        added = r.events - earlier.get((r.site, r.source, r.minute), 0)
        if r.revised_at >= cutoff and added > 0:
            out.append(replace(r, events=added))
    return sorted(out, key=lambda r: (r.minute, r.site, r.source))


def revised_hour(
    outage: Outage,
    revisions: list[Revision],
    *,
    rules: WindowRules,
    reconnected_at: datetime | None,
    held: dict[datetime, int],
    sent: dict[datetime, int],
    crossings_before: dict[datetime, int],
    crossings_after: dict[datetime, int],
    backfilled: int,
) -> dict[str, Any]:
    """The summary of the outage: which minutes of the terminal's site the run revised, by how
    many events, when, and whether that is ``exact``:

    - every minute of the upload (``held``: the terminal's crossings per minute, as the fleet
      re-timed them) that had closed beyond the allowed lateness when it reconnected is
      revised (the worker counted it after that, so by its clock too), and no minute the
      upload had nothing for;
    - in each revised minute, the events added (``revisions``) are the upload's crossings of
      that minute, and InfluxDB's crossings are what it had before the run plus what the fleet
      sent (``sent``: all the site's valid crossings per minute);
    - the events added are what the worker counted as backfilled (``backfilled``: its
      ``hito_backfill_events_total`` for the site's checkpoints).

    The upload's newest minutes, still within the allowed lateness, are counted live (not
    revisions): ``counted_live``. One of them may have closed beyond it by the time the worker
    read it; it is then revised, and checked as the others."""

    def of_outage(r: Revision) -> bool:
        return r.site == outage.site and r.source == "checkpoint"

    mine = {r.minute: r for r in revisions if of_outage(r)}
    elsewhere = Counter((r.site, r.source) for r in revisions if not of_outage(r))
    due = {
        m
        for m in held
        if reconnected_at is not None and rules.timeliness(m, reconnected_at) is Timeliness.BACKFILL
    }
    per_minute: list[dict[str, Any]] = [
        {
            "minute": m.isoformat(),
            "held": held.get(m, 0),
            "added": mine[m].events if m in mine else 0,
            "before": crossings_before.get(m, 0),
            "sent": sent.get(m, 0),
            "influxdb": crossings_after.get(m, 0),
        }
        for m in sorted(due | set(mine))
    ]
    mismatched = [
        row
        for row in per_minute
        if row["added"] != row["held"] or row["influxdb"] != row["before"] + row["sent"]
    ]
    revised = sorted(mine.values(), key=lambda r: r.minute)
    events = sum(r.events for r in revised)
    return {
        "device": outage.device,
        "site": outage.site,
        "source": "checkpoint",
        "offline": {"from_s": outage.after_s, "for_s": outage.for_s, "span_s": outage.span_s},
        "reconnected_at": reconnected_at.isoformat() if reconnected_at else None,
        "uploaded": {
            "crossings": sum(held.values()),
            "first_minute": min(held).isoformat() if held else None,
            "last_minute": max(held).isoformat() if held else None,
        },
        "minutes": len(revised),
        "first_minute": revised[0].minute.isoformat() if revised else None,
        "last_minute": revised[-1].minute.isoformat() if revised else None,
        "events": events,
        "backfilled_by_worker": backfilled,
        "counted_live": sum(n for m, n in held.items() if m not in mine),
        "revised_from": min(r.revised_at for r in revised).isoformat() if revised else None,
        "revised_to": max(r.revised_at for r in revised).isoformat() if revised else None,
        "exact": bool(revised) and not mismatched and events == backfilled,
        "mismatched_minutes": mismatched,
        "elsewhere": [
            {"site": site, "source": source, "minutes": n}
            for (site, source), n in sorted(elsewhere.items())
        ],
        "per_minute": per_minute,
    }


def _hm(iso: str | None, seconds: bool = False) -> str:
    if iso is None:
        return "-"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%H:%M:%S" if seconds else "%H:%M")


def revised_lines(revised: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary's rows about the revised hour (label, text)."""
    off = revised["offline"]
    up = revised["uploaded"]
    n = revised["minutes"]
    rows = [
        ("terminal", f"{revised['device']} ({revised['site']})"),
        (
            "uplink down",
            f"from {off['from_s']:.0f} s for {off['for_s']:.0f} s; its events spread over the "
            f"{off['span_s']:.0f} s before it reconnected",
        ),
        ("reconnected at", f"{_hm(revised['reconnected_at'], seconds=True)} UTC"),
        (
            "uploaded late",
            f"{up['crossings']} crossings ({_hm(up['first_minute'])}-{_hm(up['last_minute'])} UTC)",
        ),
        (
            "minutes revised",
            f"{n} ({_hm(revised['first_minute'])}-{_hm(revised['last_minute'])} UTC)" if n else "0",
        ),
        (
            "events backfilled",
            f"{revised['events']} (the worker's hito_backfill_events_total: "
            f"{revised['backfilled_by_worker']})",
        ),
        ("counted live", f"{revised['counted_live']} (minutes still within the allowed lateness)"),
        (
            "revised at",
            f"{_hm(revised['revised_from'], True)}-{_hm(revised['revised_to'], True)} UTC",
        ),
    ]
    wrong = len(revised["mismatched_minutes"])
    if revised["exact"]:
        verdict = (
            f"exact in all {n} minutes: InfluxDB = before the demo + what the fleet sent, "
            "added = uploaded"
        )
    elif wrong:
        verdict = (
            f"NOT exact in {wrong} of {len(revised['per_minute'])} minutes "
            "(summary.json: mismatched_minutes)"
        )
    elif not n:
        verdict = "nothing revised"
    else:
        verdict = "NOT exact: the events added differ from the worker's backfill counter"
    rows.append(("crossings in those minutes", verdict))
    for other in revised["elsewhere"]:
        rows.append(("also revised", f"{other['site']} {other['source']}: {other['minutes']} min"))
    return rows


def mark_revised(ax: Axes, revised: dict[str, Any], crossings: dict[datetime, int]) -> None:
    """On ``ax``: the site's crossings per minute (InfluxDB, ``crossings``) around the revised
    minutes, the events the late upload added to each (bars) and the revised span shaded."""
    from matplotlib import dates

    def x(when: datetime) -> float:
        return float(dates.date2num(when))  # type: ignore[no-untyped-call]

    first = datetime.fromisoformat(revised["first_minute"])
    end = datetime.fromisoformat(revised["last_minute"]) + MINUTE
    # Every minute of the span and two either side: a minute InfluxDB has no point for had
    # no crossing (a line drawn only through the points would bridge it).
    shown = [first - 2 * MINUTE + i * MINUTE for i in range((end - first) // MINUTE + 4)]
    counts = [crossings.get(m, 0) for m in shown]
    # A point is stamped with its minute's start: draw it across that minute.
    ax.step(
        [x(m) for m in [*shown, shown[-1] + MINUTE]],
        [*counts, counts[-1]],
        where="post",
        color="black",
        label=f"{revised['site']} crossings per minute (InfluxDB)",
    )
    ax.bar(
        [x(datetime.fromisoformat(m["minute"])) for m in revised["per_minute"]],
        [m["added"] for m in revised["per_minute"]],
        width=x(first + MINUTE) - x(first),
        align="edge",
        color="tab:purple",
        alpha=0.6,
        label="events the late upload added",
    )
    ax.axvspan(
        x(first),
        x(end),
        color="tab:purple",
        alpha=0.12,
        label=f"revised by a late upload: {revised['events']} events",
    )
    ax.set_xlim(x(first - 2 * MINUTE), x(end + 2 * MINUTE))
    # The x values are plain numbers (date2num): ticks on round minutes need the date locator.
    ax.xaxis.set_major_locator(dates.AutoDateLocator(tz=UTC))  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(dates.DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    # Room above the highest minute for the legend.
    highest = max([*counts, *(m["added"] for m in revised["per_minute"]), 1])
    ax.set_ylim(0, highest * 1.35)
    reconnected = _hm(revised["reconnected_at"], seconds=True)
    ax.set_title(
        f"The revised hour: {revised['minutes']} minutes of {revised['site']}, revised when "
        f"{revised['device']} reconnected at {reconnected} UTC"
    )
    ax.set_ylabel("crossings / minute")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)

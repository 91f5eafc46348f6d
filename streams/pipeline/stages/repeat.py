"""Stage ``repeat``: people who crossed more than once in a day, per site and direction.

The ``repeat_crossings`` purpose's pseudonym of a document number is the same for one person
within one epoch of the purpose's horizon (a UTC day) and never across epochs. Per site, day
and pseudonym the state is the set of that person's crossings, each ``"<direction>|<device
id>|<seq>"``: recording a crossing twice (a replay, a redelivery after a crash) changes
nothing, so the state is exact by itself, whatever the minute windows' state says.

A cell (site, direction, day) is the number of people with at least two crossings in that
direction at that site that day. It is an aggregate over people: a cell under ``k`` is not
published at all (no ``other``: no other measurement publishes repeat crossers, so there is no
total to subtract from, and an absent cell means "0 to k-1"). A day is published once, when it
is closed (``hito.pipeline.pseudonyms.epoch_closed_at``), never while it fills, so its growth
does not time individual crossings; its per-person state is deleted right after.

Pure: no Faust, no clock (``closed`` takes ``now``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from hito.pipeline.pseudonyms import epoch_closed_at, epoch_start
from hito.schemas.clean import CleanEvent

STAGE = "repeat"
MEASUREMENT = "repeat_crossings"
FIELD = "document_number"
Crossings = list[str]  # sorted "<direction>|<device id>|<seq>"


@dataclass(frozen=True)
class RepeatRules:
    purpose: str  # the policy's purpose that feeds the repeat_crossings output
    epoch_s: int  # its linkability horizon: the "day"
    grace_s: int  # how long after its end a day still takes late events
    k: int  # small-count threshold

    def closed(self, epoch: int, now: datetime) -> bool:
        return now >= epoch_closed_at(epoch, self.epoch_s, self.grace_s)

    def begun(self, epoch: int, now: datetime) -> bool:
        """Whether ``epoch`` has begun by ``now`` or begins next (an event a device's clock
        puts minutes ahead is of the next epoch near midnight). A later one is no event's:
        a clean event from anything but ingest may name any epoch up to 999,999,999, whose
        day has no start in the calendar (ValueError in :meth:`closed`, for every batch of
        its partition) or would never close (its person-day state kept for ever)."""
        return epoch <= int(now.timestamp()) // self.epoch_s + 1

    def day_start(self, epoch: int) -> datetime:
        return epoch_start(epoch, self.epoch_s)


@dataclass(frozen=True)
class Sighting:
    """One crossing of one (pseudonymous) person: where its state lives and what it adds."""

    site: str
    epoch: int
    person: str  # the pseudonym
    crossing: str  # "<direction>|<device id>|<seq>"

    @property
    def name(self) -> str:
        """The person-day's name in the state table: ``<site>|<pseudonym>`` (the pseudonym
        names its epoch)."""
        return f"{self.site}|{self.person}"


def sighting(event: CleanEvent, rules: RepeatRules) -> Sighting | None:
    """The crossing a clean checkpoint event adds, or None when it has no pseudonym for the
    purpose (no document number, or its epoch key was already destroyed)."""
    if event.source != "checkpoint":
        return None
    person = event.pseudonyms.get(rules.purpose, {}).get(FIELD)
    if person is None:
        return None
    crossing = f"{event.payload['direction']}|{event.device_id}|{event.seq}"
    return Sighting(event.site, epoch_of_pseudonym(person), person, crossing)


def epoch_of_pseudonym(person: str) -> int:
    """``"e<epoch>:<hex>"``: the epoch a pseudonym links within."""
    return int(person[person.index("e") + 1 : person.index(":")])


def day_of(name: str) -> tuple[str, int]:
    """(site, epoch) of a person-day's name."""
    site, person = name.split("|", 1)
    return site, epoch_of_pseudonym(person)


def marker_name(site: str, epoch: int) -> str:
    """The name of a day's deletion marker: ``<site>|#e<epoch>`` (a pseudonym starts "e")."""
    return f"{site}|#e{epoch}:"


def is_marker(name: str) -> bool:
    return name.split("|", 1)[1].startswith("#")


def record(crossings: Crossings | None, crossing: str) -> Crossings | None:
    """The person's crossings with ``crossing`` added; None when it is there already."""
    known = crossings or []
    if crossing in known:
        return None
    return sorted([*known, crossing])


def day_cells(people: Iterable[Crossings]) -> dict[str, int]:
    """direction -> people with at least two crossings in that direction (cells of 0 absent)."""
    cells: dict[str, int] = {}
    for crossings in people:
        by_direction: dict[str, int] = {}
        for crossing in crossings:
            direction = crossing.split("|", 1)[0]
            by_direction[direction] = by_direction.get(direction, 0) + 1
        for direction, n in by_direction.items():
            if n >= 2:
                cells[direction] = cells.get(direction, 0) + 1
    return cells


def publishable(cells: dict[str, int], k: int) -> dict[str, int]:
    """The cells that may be published: those counting at least ``k`` people."""
    return {direction: n for direction, n in cells.items() if n >= k}

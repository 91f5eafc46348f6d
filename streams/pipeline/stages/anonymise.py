"""Stage ``anonymise``: a validated raw event -> a clean event, by the privacy policy.

Pure and deterministic for a given policy and key lookup: pseudonyms depend on the event's own
time (the epoch of its ``event_time``), not the wall clock, so a replay gives the same output
while the epoch's key lives. Nothing it returns holds a raw identifier or a field no purpose
needs: kept values are numbers or bounded vocabularies (the policy loader refuses anything
else), pseudonymised fields become per-purpose, per-epoch HMACs, generalised ones lose
precision, dropped ones are gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pygeohash

from hito.pipeline.pseudonyms import KeyLookup, epoch_at, pseudonym
from hito.schemas.clean import CleanEvent, CleanValue
from hito.schemas.envelope import Event
from hito.schemas.privacy.policy import OTHER, Policy
from hito.schemas.registry import REGISTRY, Source

STAGE = "anonymise"


@dataclass(frozen=True, slots=True)
class Anonymised:
    """A clean event as the JSON-ready document that is published (``encode``), and the
    purposes whose pseudonym could not be made (the epoch's key is destroyed: the event is
    older than its purpose's horizon plus the grace for late events)."""

    doc: dict[str, Any]
    withheld: tuple[str, ...] = ()

    @property
    def source(self) -> Source:
        source: Source = self.doc["source"]
        return source

    @property
    def site(self) -> str:
        return str(self.doc["site"])

    @property
    def clean(self) -> CleanEvent:
        """The document as the contract's model (for tools and tests; the worker publishes
        ``doc`` as it is)."""
        d = self.doc
        return CleanEvent.model_construct(
            schema_=d["schema"],
            source=d["source"],
            policy=d["policy"],
            device_id=d["device_id"],
            site=d["site"],
            seq=d["seq"],
            event_time=d["event_time"],
            payload=d["payload"],
            pseudonyms=d.get("pseudonyms", {}),
        )


@dataclass(frozen=True, slots=True)
class _FieldRule:
    """One payload field's rule, resolved once per policy and schema (the stage runs for every
    event: no rule lookups, no string compares of rule kinds per field)."""

    name: str
    kind: str
    param: int | None
    vocabulary: frozenset[str]
    purposes: tuple[Any, ...]  # for pseudonymise: the purposes that link this field


_COMPILED: dict[tuple[int, str], tuple[Policy, Source, dict[str, _FieldRule]]] = {}


def _compiled(policy: Policy, schema: str) -> tuple[Source, dict[str, _FieldRule]]:
    """(source, field -> rule) of ``schema`` under ``policy``, made once per policy object (a
    loaded policy is never changed; a reloaded one is a new object)."""
    cached = _COMPILED.get((id(policy), schema))
    if cached is not None and cached[0] is policy:
        return cached[1], cached[2]
    linking = policy.pseudonym_purposes(schema)
    rules = {
        name: _FieldRule(
            name,
            rule.kind,
            rule.param,
            rule.vocabulary,
            tuple(linking.get(name, ())),
        )
        for name, rule in policy.rules[schema].items()
    }
    if len(_COMPILED) > 64:
        _COMPILED.clear()
    _COMPILED[(id(policy), schema)] = (policy, REGISTRY[schema].source, rules)
    return REGISTRY[schema].source, rules


def anonymise(
    event: Event, policy: Policy, keys: KeyLookup, *, timestamp: float | None = None
) -> Anonymised:
    """``timestamp``: ``event.event_time.timestamp()``, when the caller has it already."""
    schema = event.schema_
    source, rules = _compiled(policy, schema)
    raw = event.payload.__dict__  # the validated fields (strict models: no extras), no copy
    # The event's instant, once: the epochs and the floored time come from it (an aware
    # time's timestamp() is its instant in any zone; 1.5 µs of astimezone/timestamp a
    # pseudonymised event saved).
    if timestamp is None:
        timestamp = event.event_time.timestamp()
    out: dict[str, CleanValue] = {}
    pseudonyms: dict[str, dict[str, str]] = {}
    withheld: list[str] = []
    for name, value in raw.items():
        rule = rules[name]
        kind = rule.kind
        if kind == "keep":
            out[name] = value
        elif kind == "drop":
            continue
        elif kind == "vocabulary":
            out[name] = None if value is None else value if value in rule.vocabulary else OTHER
        elif kind == "pseudonymise":
            if value is None:
                continue  # an optional identifier not given: nothing to link
            for purpose in rule.purposes:
                epoch = epoch_at(timestamp, purpose.epoch_s)
                key = keys(purpose.name, epoch)
                if key is None:
                    _without_key(purpose.name, withheld)
                    continue
                pseudonyms.setdefault(purpose.name, {})[name] = pseudonym(
                    key, purpose.name, name, str(value), epoch
                )
        elif kind == "year_band":
            assert rule.param is not None
            start = (int(value) // rule.param) * rule.param
            out[name] = f"{start}-{start + rule.param - 1}"
        elif kind == "geohash" and name == "lat":
            assert rule.param is not None
            out["geohash"] = pygeohash.encode(
                float(raw["lat"]), float(raw["lon"]), precision=rule.param
            )
    # Built without re-validation: every value comes from a validated event or from a rule of
    # a checked policy (tests/unit/pipeline/stages/test_anonymise.py proves the output
    # validates), and the aggregator checks every clean event it reads anyway.
    doc: dict[str, Any] = {
        "schema": schema,
        "source": source,
        "policy": policy.version,
        "device_id": event.device_id,
        "site": event.site,
        "seq": event.seq,
        "event_time": _floor(timestamp, policy.event_time_resolution_s),
        "payload": out,
    }
    if pseudonyms:
        doc["pseudonyms"] = pseudonyms
    return Anonymised(doc, tuple(withheld))


def _without_key(purpose: str, withheld: list[str]) -> None:
    """What becomes of an event a purpose cannot pseudonymise because the epoch's key is
    destroyed: the one place this is decided (the late path may change).

    Now the pseudonym is withheld and the clean event goes on without it: every other purpose
    still gets its data (whether it counts an event that late is its own rule; the minute
    windows refuse it as ``late_beyond_window``), and the purpose that needed the key cannot
    recognise the person, which is what destroying the key is for. The ingest agent counts
    the event as ``pseudonym_withheld`` (``hito_pseudonyms_withheld_total{purpose}``)."""
    withheld.append(purpose)


def encode(made: Anonymised | CleanEvent) -> bytes:
    """The clean event as JSON for ``hito.clean.<source>`` (what ``model_dump_json`` gives,
    by alias, in a fraction of its time; ``event_time`` with a ``+00:00`` offset;
    ``pseudonyms`` only when there are some)."""
    if isinstance(made, Anonymised):
        return orjson.dumps(made.doc)
    doc: dict[str, Any] = {
        "schema": made.schema_,
        "source": made.source,
        "policy": made.policy,
        "device_id": made.device_id,
        "site": made.site,
        "seq": made.seq,
        "event_time": made.event_time,
        "payload": made.payload,
    }
    if made.pseudonyms:
        doc["pseudonyms"] = made.pseudonyms
    return orjson.dumps(doc)


# The last floored time made: (its timestamp, it), replaced whole (one reference).
_last_floor: list[tuple[float, datetime]] = []


def _floor(timestamp: float, resolution_s: int) -> datetime:
    """The UTC time of ``timestamp`` floored to ``resolution_s``. Events of a batch mostly
    fall in one minute: the last one made is given again when it is the same (a datetime is
    immutable; 0.4 µs an event)."""
    start = timestamp - timestamp % resolution_s
    if _last_floor:
        last_start, last = _last_floor[0]
        if last_start == start:
            return last
    floored = datetime.fromtimestamp(start, tz=UTC)
    _last_floor[:] = [(start, floored)]
    return floored

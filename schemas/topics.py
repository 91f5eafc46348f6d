"""Kafka topic names (SPEC.md, "Kafka topics"): the defaults, and every name derived in one place.

Devices need the raw topics' names (the SDK's defaults), the pipeline and the tools every name;
a deployment may rename them (settings), so code asks a :class:`TopicNames` instead of
formatting a name itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hito.schemas.registry import SOURCES, Source

DEFAULT_RAW_TOPICS: Mapping[Source, str] = MappingProxyType(
    {"checkpoint": "hito.raw.checkpoint", "sensor": "hito.raw.sensor", "drone": "hito.raw.drone"}
)
DEFAULT_DLQ_TOPIC = "hito.dlq"
# The rejected bytes themselves: raw-zone data (pipeline and admins only, raw retention).
DEFAULT_DLQ_ORIGINALS_TOPIC = "hito.dlq.originals"
DEFAULT_CLEAN_PREFIX = "hito.clean."


@dataclass(frozen=True)
class TopicNames:
    """The raw topics by source, the DLQ (operators' records and, apart, the rejected bytes),
    and the clean topics (``<prefix><source>``)."""

    raw: Mapping[Source, str] = field(default_factory=lambda: dict(DEFAULT_RAW_TOPICS))
    dlq: str = DEFAULT_DLQ_TOPIC
    clean_prefix: str = DEFAULT_CLEAN_PREFIX
    dlq_originals: str = DEFAULT_DLQ_ORIGINALS_TOPIC

    def clean(self, source: Source) -> str:
        return f"{self.clean_prefix}{source}"

    @property
    def clean_by_source(self) -> dict[Source, str]:
        return {source: self.clean(source) for source in SOURCES if source in self.raw}

    @property
    def source_of_raw(self) -> dict[str, Source]:
        """raw topic -> the source it carries."""
        return {topic: source for source, topic in self.raw.items()}

    @property
    def inputs(self) -> tuple[str, ...]:
        """The topics the pipeline consumes: raw, then clean (plain logs without holes)."""
        return (*self.raw.values(), *self.clean_by_source.values())

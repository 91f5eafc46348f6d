"""A lane's unit of work and its bookkeeping: what a handler reads of a record (``Record``),
the records of one partition a lane carries (``LaneBatch``), and the per-partition marks that
only ever move over batches handled in order (``Watermarks``), which the commit reads
(``hito.pipeline.faust.lane``, "Invariants")."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka.structs import ConsumerRecord
from faust.types import TP


@dataclass
class RefusedBatch(ConsumerRecord[bytes, bytes]):  # type: ignore[misc]  # aiokafka: untyped
    """A fetched batch refused unread (hito.pipeline.faust.fetched_records), as one record at
    its last offset: offsets ``first_offset`` to ``offset``; no key, no value. Made only by the
    fetch reader, for input topics, whose records reach the handlers through the lanes (the
    worker gives each input topic one): a device cannot send one. Ingest dead-letters it as
    ``oversized``; on a clean topic (only a worker writes there) the aggregator would take it
    for a schema violation."""

    first_offset: int = 0
    why: str = ""


class Record(Protocol):
    """What a handler reads of a fetched record (Faust's ConsumerMessage has all of it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any


@dataclass(slots=True)
class LaneBatch:
    """Records of one partition, in order, consecutive but for offsets the consumer passed as
    a gap (deleted by retention, or a refused batch's: ``Watermarks.gone``)."""

    tp: TP
    records: Sequence[Record]
    generation: int
    epoch: int = 0  # the partition's re-reads when it was fetched (Lanes.epoch)

    @property
    def first(self) -> int:
        return self.records[0].offset

    @property
    def end(self) -> int:
        """The offset after the last record (what a commit after this batch says)."""
        return self.records[-1].offset + 1


@dataclass
class Watermarks:
    """Per input partition: the next offset after everything handled, in order.

    ``reset(positions)`` sets where the partitions read from (their committed offsets, or the
    log start), ``handled(batch)`` moves one on when the batch covers it: starts at or before
    it (a batch read again after a seek back overlaps what was handled) and ends after it. A
    batch that starts past it (records skipped by a seek, a stale batch) leaves it where it
    is: the commit only ever covers records handled without a hole before them. (A batch is
    a run of consecutive offsets but for gaps passed with ``gone``: the consumer's check at
    delivery admits nothing else.)
    """

    _next: dict[TP, int] = field(default_factory=dict)
    _gone: dict[TP, list[tuple[int, int]]] = field(default_factory=dict)  # tp -> [begin, end)s

    def reset(self, positions: dict[TP, int]) -> None:
        """Exactly these partitions, from these offsets (what a seek says; none: no commit)."""
        self._next = dict(positions)
        self._gone.clear()

    def forget(self, tp: TP) -> None:
        self._next.pop(tp, None)
        self._gone.pop(tp, None)

    def handled(self, batch: LaneBatch) -> bool:
        expected = self._next.get(batch.tp)
        if expected is None or not batch.first <= expected < batch.end:
            return False
        self._next[batch.tp] = batch.end
        self._past_gone(batch.tp)
        return True

    def rewind(self, tp: TP, offset: int) -> None:
        """Back to ``offset`` if it is past it (a failed batch is read again from there)."""
        if (expected := self._next.get(tp)) is not None and offset < expected:
            self._next[tp] = offset

    def gone(self, tp: TP, begin: int, end: int) -> None:
        """Records ``begin``..``end - 1`` will never come (retention deleted them unread, or
        the fetch refused their batch unread): the mark passes them once it reaches them."""
        self._gone.setdefault(tp, []).append((begin, end))
        self._past_gone(tp)

    def _past_gone(self, tp: TP) -> None:
        ranges, mark = self._gone.get(tp, []), self._next.get(tp)
        while mark is not None and (passed := [r for r in ranges if r[0] <= mark < r[1]]):
            mark = self._next[tp] = max(end for _, end in passed)
            ranges = [r for r in ranges if r[1] > mark]
        if ranges:
            self._gone[tp] = ranges
        else:
            self._gone.pop(tp, None)

    def get(self, tp: TP) -> int | None:
        return self._next.get(tp)

    def __iter__(self) -> Iterator[TP]:
        return iter(list(self._next))

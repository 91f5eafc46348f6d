"""The interleavings the lane state machine (test_lane.py) found, replayed step by step.

Each ended with a partition whose commit could never move again (or, for the last one, with a
commit past a record nobody handled) before the fixes in ``hito.pipeline.faust.consumer`` and
``.lane``. ``drain`` runs the machine fairly and fails if any partition stays behind.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faust.types import TP

from tests.unit.pipeline.faust.test_lane import LaneMachine

RAW0, CLEAN0 = TP("raw", 0), TP("clean", 0)
NONE = [0, 0, 0]


@pytest.fixture
def machine() -> Iterator[LaneMachine]:
    m = LaneMachine()
    yield m
    m.close()


def handle_first_two(m: LaneMachine) -> None:
    """raw-0: records 0 and 1 handled and committed."""
    m.start(assigned={RAW0})
    m.produce(tp=RAW0, n=2)
    m.fetch(sizes=[2, 0, 0], changelog_at=None, blocks=False)
    m.deliver()
    m.agent_takes(pick=0)
    m.agent_finishes(pick=0, ok=True)
    m.commit()
    assert m.committed[RAW0] == 2


def test_a_delivery_spanning_the_seek_does_not_admit_records_it_then_drops(
    machine: LaneMachine,
) -> None:
    """A delivery waits on a changelog record while the seek to committed offsets ends; the
    rest of its batch used to be admitted against the new position (the expected offset moved
    past 2..4) and then dropped as stale: 2..4 never came again."""
    handle_first_two(machine)
    machine.produce(tp=RAW0, n=3)
    machine.rebalance(assigned={RAW0}, recovery=True)
    machine.release("join")
    machine.release("recovered")  # the seek to committed offsets is under way
    machine.fetch(sizes=[3, 0, 0], changelog_at=0, blocks=True)
    machine.deliver()  # waits on the changelog record
    machine.release("seek")
    machine.release("changelog")
    assert machine.consumer._next_offset[RAW0] == 2
    machine.drain()  # every partition reaches its log end


def test_a_batch_queued_before_faust_resumes_flow_is_read_again(machine: LaneMachine) -> None:
    """Faust resumes flow a loop turn after the seek and clears the lanes' queues as it does:
    a batch queued in that turn used to vanish while the consumer expected the records after
    it."""
    handle_first_two(machine)
    machine.produce(tp=RAW0, n=3)
    machine.rebalance(assigned={RAW0}, recovery=True)
    for gate in ("join", "recovered", "seek"):
        machine.release(gate)
    machine.fetch(sizes=[3, 0, 0], changelog_at=None, blocks=False)
    machine.deliver()
    assert machine.queues["ingest"].qsize() == 1
    machine.release("resume-window")  # FlowControlEvent.resume: the queue is cleared
    assert machine.queues["ingest"].qsize() == 0
    assert machine.consumer._next_offset[RAW0] == 2  # read again from the watermark
    machine.drain()  # every partition reaches its log end


def test_a_batch_cleared_while_the_one_before_is_in_hand_is_read_again(
    machine: LaneMachine,
) -> None:
    """As above, with the batch before it still in an agent's hands: the partition is read
    again from the watermark, so the first batch read again overlaps what that agent handles
    meanwhile; it must still move the watermark (records 2..3 handled twice, none lost)."""
    handle_first_two(machine)
    machine.produce(tp=RAW0, n=4)
    machine.rebalance(assigned={RAW0}, recovery=True)
    for gate in ("join", "recovered", "seek"):
        machine.release(gate)
    machine.fetch(sizes=[2, 0, 0], changelog_at=None, blocks=False, deliver=True)  # 2..3
    machine.fetch(sizes=[2, 0, 0], changelog_at=None, blocks=False, deliver=True)  # 4..5
    machine.agent_takes(pick=0, then="hold")  # 2..3 in hand
    machine.release("resume-window")  # 4..5 cleared
    machine.agent_finishes(pick=0, ok=True)
    assert machine.lanes.watermarks.get(RAW0) == 4
    assert machine.consumer._next_offset[RAW0] == 2  # read again from the watermark it had
    machine.drain()  # every partition reaches its log end


def test_records_skipped_during_the_seek_at_the_end_of_a_log_are_read_again(
    machine: LaneMachine,
) -> None:
    """Without a committed offset aiokafka does not move the position at the seek: a record
    fetched (and skipped) while it ran was noticed missing only when a later one came."""
    machine.start(assigned=set())
    machine.rebalance(assigned={RAW0}, recovery=False)
    machine.release("join")
    machine.produce(tp=RAW0, n=1)
    machine.fetch(sizes=[1, 0, 0], changelog_at=None, blocks=False)
    machine.deliver()
    machine.release("seek")
    machine.release("resume-window")
    machine.drain()  # every partition reaches its log end


def test_records_faust_dropped_while_flow_stopped_at_the_end_of_a_log_are_read_again(
    machine: LaneMachine,
) -> None:
    """aiokafka returned a record after flow stopped; Faust's getmany dropped it and sought
    to committed offsets, which moves nothing without a committed offset."""
    machine.start(assigned={RAW0})
    machine.produce(tp=RAW0, n=1)
    machine.rebalance(assigned={RAW0}, recovery=False)
    machine.release("join")  # assigned again; the seek to committed offsets is under way
    machine.getmany_after_flow_stopped(sizes=[1, 0, 0])
    machine.drain()  # every partition reaches its log end


def test_no_watermark_survives_for_a_partition_that_went_elsewhere(machine: LaneMachine) -> None:
    """A batch fetched before a rebalance, delivered after a seek made by Faust's getmany
    while the group re-formed, left a read offset, hence a watermark, for clean-0 after it went
    elsewhere; when clean-0 came back, the commit timer committed that watermark (1) before the
    seek: past record 0, which nobody had handled."""
    machine.start(assigned={CLEAN0})
    machine.produce(tp=CLEAN0, n=2)
    machine.fetch(sizes=[0, 0, 2], changelog_at=None, blocks=False)
    machine.rebalance(assigned={RAW0}, recovery=False)
    machine.getmany_after_flow_stopped(sizes=NONE)
    machine.release("seek")
    machine.deliver()
    for gate in ("join", "seek", "resume-window"):
        machine.release(gate)
    marked = list(machine.lanes.watermarks)
    machine.rebalance(assigned={RAW0, CLEAN0}, recovery=False)
    machine.release("join")  # clean-0 is ours again; its seek has not run yet
    machine.commit()
    machine.commit_never_passes_an_unhandled_record()
    assert machine.committed[CLEAN0] is None
    assert marked == [RAW0]  # (the seek gave watermarks to the assigned partitions only)
    machine.drain()  # every partition reaches its log end

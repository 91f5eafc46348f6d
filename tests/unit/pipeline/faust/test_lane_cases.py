"""The interleavings the lane state machine (test_lane.py) found, replayed step by step.

Each ended with a partition whose commit could never move again (or, for the last one, with a
commit past a record nobody handled) before the fixes in ``hito.pipeline.faust.consumer``,
``.offsets`` and ``.lane``. ``drain`` runs the machine fairly and fails if any partition stays
behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import cast

import pytest
from faust.types import TP

from hito.pipeline.faust.batches import LaneBatch, Record, Watermarks
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
    m.fetch(sizes=[2, 0, 0], changelog=False, blocks=False)
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
    machine.fetch(sizes=[3, 0, 0], changelog=True, blocks=True)
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
    machine.fetch(sizes=[3, 0, 0], changelog=False, blocks=False)
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
    machine.fetch(sizes=[2, 0, 0], changelog=False, blocks=False, deliver=True)  # 2..3
    machine.fetch(sizes=[2, 0, 0], changelog=False, blocks=False, deliver=True)  # 4..5
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
    machine.fetch(sizes=[1, 0, 0], changelog=False, blocks=False)
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
    machine.fetch(sizes=[0, 0, 2], changelog=False, blocks=False)
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


RAW1 = TP("raw", 1)


def test_a_failed_batch_is_read_again_before_the_next_one_is_handled(
    machine: LaneMachine,
) -> None:
    """The agent holds batch 0 while batch 1 is fetched; batch 0 fails. Batch 1 used to be
    handled next (the failed one came again only at the next rebalance, behind it: the
    aggregator then took its events for replays). Now batch 1 is dropped, raw-1's fetching
    pauses for the back-off, and the partition is read again from 0, without a rebalance."""
    machine.start(assigned={RAW1})
    machine.produce(tp=RAW1, n=1)
    machine.fetch(sizes=[0, 1, 0], changelog=False, blocks=False, deliver=True)
    machine.agent_takes(pick=0, then="hold")
    machine.produce(tp=RAW1, n=1)
    machine.fetch(sizes=[0, 1, 0], changelog=False, blocks=False, deliver=True)
    machine.agent_finishes(pick=0, ok=False)
    assert machine.lanes.pending_rereads() == {RAW1: (0, 1.0)}  # from 0, in 1 s
    assert RAW1 not in machine.consumer._get_active_partitions()  # not fetched meanwhile
    machine.agent_takes(pick=0, then="ok")  # batch 1: dropped, not handled
    assert machine.handled[RAW1] == set()
    machine.batches_are_handled_in_order()
    machine.time_passes(seconds=1.0)
    machine.fetch(sizes=[0, 2, 0], changelog=False, blocks=False, deliver=True)
    assert machine.consumer._get_active_partitions() >= {RAW1}
    machine.agent_takes(pick=0, then="ok")
    machine.commit()
    assert machine.handled[RAW1] == {0, 1}
    assert machine.committed[RAW1] == 2
    assert machine.lanes.failing(machine.lanes.lanes[0]) == 0


def test_a_batch_that_keeps_failing_backs_off_longer_each_time(machine: LaneMachine) -> None:
    machine.start(assigned={RAW1})
    machine.produce(tp=RAW1, n=3)
    backoffs = []
    for _ in range(8):
        machine.fetch(sizes=[0, 3, 0], changelog=False, blocks=False, deliver=True)
        machine.agent_takes(pick=0, then="fail")
        ((start, due),) = machine.lanes.pending_rereads().values()
        assert start == 0
        backoffs.append(due - machine.now)
        assert machine.lanes.failing(machine.lanes.lanes[0]) == 1
        machine.time_passes(seconds=due - machine.now)
    assert backoffs == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert machine.handled[RAW1] == set() and not machine.committed[RAW1]
    machine.drain()  # and once it is handled, everything is committed


def test_a_batch_whose_handler_meets_a_cancelled_future_is_a_failure_not_a_stop(
    machine: LaneMachine,
) -> None:
    """The handler awaits a future a client cancels (not the agent's task being stopped).
    This used to be taken for a stop: the agent ended (Faust's supervisor would restart it)
    and the partition was read again at once, without back-off or count; the partition then
    stood still here, its agent gone."""
    machine.start(assigned={RAW1})
    machine.produce(tp=RAW1, n=2)
    machine.fetch(sizes=[0, 2, 0], changelog=False, blocks=False, deliver=True)
    machine.agent_takes(pick=0, then="hold")
    machine.handling_cancelled(pick=0)
    assert machine.lanes.pending_rereads() == {RAW1: (0, 1.0)}  # backed off, from 0
    assert machine.lanes.failing(machine.lanes.lanes[0]) == 1
    assert not machine.tasks["agent ingest"].done()  # the agent lives on
    machine.drain()
    assert machine.handled[RAW1] == {0, 1} and machine.committed[RAW1] == 2
    assert machine.lanes.failing(machine.lanes.lanes[0]) == 0


def test_a_failing_partition_that_goes_elsewhere_is_no_longer_reported(
    machine: LaneMachine,
) -> None:
    machine.start(assigned={RAW0, RAW1})
    for tp in (RAW0, RAW1):
        machine.produce(tp=tp, n=2)
    machine.fetch(sizes=[2, 2, 0], changelog=False, blocks=False, deliver=True)
    machine.agent_takes(pick=0, then="fail")
    machine.agent_takes(pick=0, then="fail")
    ingest = machine.lanes.lanes[0]
    assert machine.lanes.failing(ingest) == 2
    machine.run_rebalance({RAW1})  # raw-0 goes to the other worker
    assert machine.lanes.failing(ingest) == 1
    assert machine.lanes.pending_rereads() == {}  # raw-1 reads from its commit at once
    machine.drain()
    assert machine.lanes.failing(ingest) == 0


def test_records_gone_to_retention_do_not_hold_the_commit(machine: LaneMachine) -> None:
    """Retention deleted 2..4 before they were read: the consumer seeks back once, finds the
    log starting at 5 and goes on there. The lane's watermark used to stay at 2 for good (no
    batch starts there again), and with the taking order it would read 2 again forever; both
    now pass the records that are gone."""
    handle_first_two(machine)
    machine.produce(tp=RAW0, n=6)
    machine.log_start[RAW0] = 5
    machine.handled[RAW0].update({2, 3, 4})  # gone: the commit may pass them
    machine.processed[RAW0].update({2, 3, 4})
    for _ in range(2):  # the hole, a seek back to make sure, the skip
        machine.fetch(sizes=[6, 0, 0], changelog=False, blocks=False, deliver=True)
        while machine.can_take():
            machine.agent_takes(pick=0, then="ok")
    machine.commit()
    assert machine.committed[RAW0] == 8
    assert machine.handled[RAW0] == set(range(8))
    assert machine.lanes.pending_rereads() == {}


def test_two_gone_ranges_before_the_watermark_reaches_either() -> None:
    """Retention skips at 2..4 and 7..8 both found while 0..1 are still in hand: the mark
    passes both once it gets there (it used to keep only the last range, and stick at 2)."""
    marks = Watermarks()
    marks.reset({RAW0: 0})
    marks.gone(RAW0, 2, 5)
    marks.gone(RAW0, 7, 9)
    assert marks.get(RAW0) == 0
    assert marks.handled(LaneBatch(RAW0, [_record(0), _record(1)], generation=0))
    assert marks.get(RAW0) == 5
    assert marks.handled(LaneBatch(RAW0, [_record(5), _record(6)], generation=0))
    assert marks.get(RAW0) == 9


def _record(offset: int) -> Record:
    return cast(Record, SimpleNamespace(topic=RAW0.topic, partition=0, offset=offset))


def test_a_fetched_run_with_a_hole_is_taken_record_by_record(machine: LaneMachine) -> None:
    """A lane partition's run is admitted whole only when its offsets are consecutive from the
    next one expected; a run with a hole inside (never on our input topics: a broken fetch)
    goes record by record: what precedes the hole reaches the lane, the consumer seeks back
    to the hole, and nothing past it is admitted before the hole is read."""
    handle_first_two(machine)
    machine.produce(tp=RAW0, n=4)  # 2..5
    machine.fetch(sizes=[4, 0, 0], changelog=False, blocks=False)
    assert machine.fetched is not None
    _, runs = machine.fetched
    runs[RAW0] = [r for r in runs[RAW0] if r.offset != 3]
    machine.deliver()
    assert machine.consumer._next_offset[RAW0] == 3
    assert machine.position[RAW0] == 3  # sought back to the hole
    queued = machine.queues["ingest"].get_nowait()
    assert [r.offset for r in queued.value.records] == [2]
    machine.queues["ingest"].put_nowait(queued)
    machine.drain()
    assert machine.handled[RAW0] == set(range(6))

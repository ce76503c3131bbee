"""WriteConcernWaits: writes waiting for w > 1 or a wtimeout complete from one watcher thread,
with the replies the blocking path gave (a stand-in for the Raft node's replication state)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from node.commands.member import WriteConcern
from node.commands.write_modes import tag_rule
from node.engine.errors import MongoError
from node.server.write_wait import WriteConcernWaits


class FakeRaft:
    """Voters holding every entry (``held``), with the wait/wake of RaftNode.wait_for."""

    def __init__(self) -> None:
        self.held = 0
        self.leader = True
        self.cv = threading.Condition()

    def leading(self) -> bool:
        return self.leader

    def step_down(self) -> None:
        with self.cv:
            self.leader = False
            self.cv.notify_all()

    def holders(self, index: int) -> frozenset[int]:
        return frozenset(range(1, self.held + 1))

    def wait_for(self, pred: Callable[[], bool], timeout: float) -> bool:
        with self.cv:
            return self.cv.wait_for(pred, timeout)

    def wake(self) -> None:
        with self.cv:
            self.cv.notify_all()

    def set_held(self, n: int) -> None:
        with self.cv:
            self.held = n
            self.cv.notify_all()


@pytest.fixture
def raft() -> FakeRaft:
    return FakeRaft()


@pytest.fixture
def waits(raft: FakeRaft) -> Iterator[WriteConcernWaits]:
    w = WriteConcernWaits(raft.holders, raft.wait_for, raft.wake, leading=raft.leading)
    yield w
    w.stop()


def test_w3_completes_when_three_members_hold_the_entry(raft: FakeRaft,
                                                        waits: WriteConcernWaits) -> None:
    raft.set_held(2)
    wait = waits.add(WriteConcern(w=3), time.monotonic())
    waits.applied(wait, {"n": 1}, 7)
    with pytest.raises(TimeoutError):
        wait.out.result(0.3)
    raft.set_held(3)
    assert wait.out.result(5) == ({"n": 1}, None)


def test_wtimeout_before_the_entry_applies(waits: WriteConcernWaits) -> None:
    wait = waits.add(WriteConcern(w="majority", wtimeout_ms=100), time.monotonic())
    result, wce = wait.out.result(5)
    assert result == {"n": 0}
    assert wce is not None and wce["code"] == 64 and wce["errInfo"]["wtimeout"] is True
    waits.applied(wait, {"n": 1}, 3)  # applying later changes nothing already answered
    assert wait.out.result(0) == (result, wce)


def test_wtimeout_after_applying_short_of_w_copies(raft: FakeRaft,
                                                   waits: WriteConcernWaits) -> None:
    raft.set_held(2)
    wait = waits.add(WriteConcern(w=3, wtimeout_ms=150), time.monotonic())
    waits.applied(wait, {"n": 1, "nModified": 1}, 42)
    result, wce = wait.out.result(5)
    assert result == {"n": 1, "nModified": 1}
    assert wce is not None and wce["code"] == 64 and "w=3 not reached for index 42" in wce["errmsg"]


def test_applied_within_wtimeout_needs_no_more(waits: WriteConcernWaits) -> None:
    wait = waits.add(WriteConcern(w=1, wtimeout_ms=60_000), time.monotonic())
    waits.applied(wait, {"n": 1}, 1)
    assert wait.out.result(0) == ({"n": 1}, None)


def test_a_failed_proposal_fails_the_write_once(waits: WriteConcernWaits) -> None:
    wait = waits.add(WriteConcern(w=2), time.monotonic())
    waits.failed(wait, MongoError(11602, "interrupted"))
    with pytest.raises(MongoError):
        wait.out.result(0)
    waits.failed(wait, MongoError(1, "second"))  # ignored
    assert wait.out.exception(0).code == 11602  # type: ignore[union-attr]


def test_many_waiting_writes_hold_no_thread_each(raft: FakeRaft,
                                                 waits: WriteConcernWaits) -> None:
    """The regression a thread pool had: writes behind long waits must not queue."""
    raft.set_held(2)
    before = threading.active_count()
    stuck = [waits.add(WriteConcern(w=3), time.monotonic()) for _ in range(500)]
    for i, wait in enumerate(stuck):
        waits.applied(wait, {"n": 1}, i + 1)
    quick = waits.add(WriteConcern(w="majority", wtimeout_ms=5000), time.monotonic())
    waits.applied(quick, {"n": 1}, 501)
    assert quick.out.result(2) == ({"n": 1}, None)
    assert threading.active_count() <= before + 1
    assert not any(w.out.done() for w in stuck)
    raft.set_held(3)
    assert all(w.out.result(5) == ({"n": 1}, None) for w in stuck)


def test_stop_ends_the_watcher(raft: FakeRaft) -> None:
    w = WriteConcernWaits(raft.holders, raft.wait_for, raft.wake, leading=raft.leading)
    w.add(WriteConcern(w=3), time.monotonic())
    w.stop()
    assert not w._thread.is_alive()


def test_max_time_ms_before_the_entry_applies_is_max_time_ms_expired(
        waits: WriteConcernWaits) -> None:
    wait = waits.add(WriteConcern(w="majority", max_time_ms=100), time.monotonic())
    with pytest.raises(MongoError) as err:
        wait.out.result(5)
    assert err.value.code == 50 and err.value.code_name == "MaxTimeMSExpired"


def test_max_time_ms_after_applying_short_of_w_copies(raft: FakeRaft,
                                                      waits: WriteConcernWaits) -> None:
    raft.set_held(2)
    wait = waits.add(WriteConcern(w=3, wtimeout_ms=60_000, max_time_ms=150), time.monotonic())
    waits.applied(wait, {"n": 1}, 9)
    result, wce = wait.out.result(5)
    assert result == {"n": 1}
    assert wce is not None and wce["code"] == 50 and wce["codeName"] == "MaxTimeMSExpired"


def test_the_earlier_of_wtimeout_and_max_time_ms_decides(waits: WriteConcernWaits) -> None:
    wait = waits.add(WriteConcern(w="majority", wtimeout_ms=100, max_time_ms=60_000),
                     time.monotonic())
    result, wce = wait.out.result(5)
    assert result == {"n": 0} and wce is not None and wce["code"] == 64


def test_w3_wait_ends_when_leadership_is_lost(raft: FakeRaft, waits: WriteConcernWaits) -> None:
    """Applied here, short of w copies, no wtimeout: once this member is no longer leader the
    copies can no longer be counted here, so the write is answered at once with MongoDB's
    PrimarySteppedDown writeConcernError (retryable) instead of waiting forever."""
    raft.set_held(2)
    wait = waits.add(WriteConcern(w=3), time.monotonic())
    waits.applied(wait, {"n": 1}, 9)
    with pytest.raises(TimeoutError):
        wait.out.result(0.2)
    started = time.monotonic()
    raft.step_down()
    result, wce = wait.out.result(5)
    assert time.monotonic() - started < 0.5
    assert result == {"n": 1}
    assert wce is not None and wce["code"] == 189 and wce["codeName"] == "PrimarySteppedDown"
    late = waits.add(WriteConcern(w=3), time.monotonic())  # applied after the step-down
    waits.applied(late, {"n": 1}, 10)
    assert late.out.result(5)[1]["code"] == 189


def test_a_tagged_write_waits_for_holders_that_cover_its_tags(
        raft: FakeRaft, waits: WriteConcernWaits) -> None:
    """Holders 1 and 2 are both ``east``: a two-dc rule waits until member 3 (``west``)
    holds the entry too, not merely until two members do."""
    config = {"members": [{"_id": 1, "tags": {"dc": "east"}}, {"_id": 2, "tags": {"dc": "east"}},
                          {"_id": 3, "tags": {"dc": "west"}}]}
    wc = WriteConcern(w={"dc": 2}, rule=tag_rule({"dc": 2}, config))
    wait = waits.add(wc, time.monotonic())
    two = waits.add(WriteConcern(w=2), time.monotonic())
    raft.set_held(2)
    waits.applied(wait, {"n": 1}, 7)
    waits.applied(two, {"n": 1}, 7)
    assert two.out.result(timeout=5) == ({"n": 1}, None)  # the watcher saw 2 holders...
    assert not wait.out.done()  # ...and left the two-dc write waiting
    raft.set_held(3)
    assert wait.out.result(timeout=5) == ({"n": 1}, None)

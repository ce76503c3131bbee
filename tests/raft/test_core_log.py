"""Unit tests for the log (unstable tail, conflicts), storage, quorum and flow control."""

from __future__ import annotations

import pytest

from raft import quorum
from raft.log import RaftLog
from raft.memory_storage import MemoryStorage
from raft.progress import Inflights, Progress, ProgressState
from raft.types import ConfState, Entry, RaftError, StorageCompacted


def ents(*pairs: tuple[int, int]) -> list[Entry]:
    return [Entry(t, i, data=b"%d.%d" % (t, i)) for t, i in pairs]


def test_maybe_append_truncates_conflict_and_keeps_matching_prefix() -> None:
    log = RaftLog(MemoryStorage())
    log.append(ents((1, 1), (1, 2), (1, 3)))
    assert log.maybe_append(1, 1, 0, ents((1, 2), (2, 3), (2, 4))) == 4
    assert [log.term(i) for i in (1, 2, 3, 4)] == [1, 1, 2, 2]
    assert log.maybe_append(4, 9, 0, ents((9, 5))) is None  # previous term mismatch
    with pytest.raises(RaftError):
        log.commit_to(4)
        log.maybe_append(0, 0, 0, ents((5, 1)))  # conflict below commit


def test_stable_to_ignores_entries_replaced_since_their_ready() -> None:
    log = RaftLog(MemoryStorage())
    log.append(ents((1, 1), (1, 2), (1, 3)))
    first = log.unstable.next_entries()
    log.unstable.accept_in_progress()
    log.append(ents((2, 2), (2, 3)))  # conflict arrives while the first Ready is in flight
    second = log.unstable.next_entries()
    assert [e.index for e in second] == [2, 3]
    log.unstable.stable_to(first[-1].index, first[-1].term)  # (3, 1): replaced, ignored
    assert log.unstable.offset == 1
    log.unstable.accept_in_progress()
    log.unstable.stable_to(3, 2)
    assert log.unstable.entries == [] and log.unstable.offset == 4


def test_find_conflict_by_term_skips_whole_terms() -> None:
    log = RaftLog(MemoryStorage())
    log.append(ents((1, 1), (2, 2), (2, 3), (2, 4), (4, 5), (4, 6)))
    assert log.find_conflict_by_term(6, 3) == (4, 2)
    assert log.find_conflict_by_term(6, 4) == (6, 4)
    assert log.find_conflict_by_term(3, 1) == (1, 1)


def test_memory_storage_compaction_and_snapshot() -> None:
    st = MemoryStorage(ConfState(voters=frozenset({1})))
    st.append(ents((1, 1), (1, 2), (2, 3), (2, 4)))
    st.create_snapshot(3, ConfState(voters=frozenset({1})), b"img")
    st.compact(3)
    assert st.first_index() == 4 and st.last_index() == 4 and st.term(3) == 2
    with pytest.raises(StorageCompacted):
        st.entries(2, 4)
    st.append(ents((3, 4), (3, 5)))  # overwrite the tail
    assert [e.term for e in st.entries(4, 6)] == [3, 3]
    big = [Entry(3, 6, data=b"x" * 100), Entry(3, 7, data=b"y" * 100)]
    st.append(big)
    assert len(st.entries(6, 8, max_bytes=150)) == 1
    assert len(st.entries(6, 8, max_bytes=1)) == 1  # always at least one


def test_quorum_majority_and_joint() -> None:
    match = {1: 10, 2: 7, 3: 5, 4: 3, 5: 1}.get
    assert quorum.majority_committed([1, 2, 3], lambda v: match(v)) == 7
    assert quorum.majority_committed([1, 2, 3, 4, 5], lambda v: match(v)) == 5
    joint = ConfState(voters=frozenset({1, 2, 3}), voters_outgoing=frozenset({3, 4, 5}))
    assert quorum.joint_committed(joint, lambda v: match(v)) == 3
    votes = {1: True, 2: True, 3: False}
    assert quorum.joint_vote(joint, votes) == quorum.VoteResult.PENDING
    assert quorum.joint_vote(joint, {**votes, 4: False, 5: False}) == quorum.VoteResult.LOST
    assert quorum.joint_vote(joint, {**votes, 3: True, 4: True}) == quorum.VoteResult.WON


def test_inflights_and_progress_states() -> None:
    inf = Inflights(3)
    for i in (5, 7, 9):
        inf.add(i, 10)
    assert inf.full()
    inf.free_le(7)
    assert inf.count() == 1 and not inf.full()
    pr = Progress(next_index=11, max_inflight=2)
    assert pr.state == ProgressState.PROBE and not pr.is_paused()
    pr.sent_entries(12, 0)
    assert pr.is_paused()  # probe: one message at a time
    assert pr.maybe_update(12)
    pr.become_replicate()
    pr.sent_entries(14, 0)
    pr.sent_entries(16, 0)
    assert pr.next == 17 and pr.is_paused()  # window of 2 full
    assert pr.maybe_decr_to(14, 13)
    assert pr.next == 13  # replicate rejection falls back to match + 1

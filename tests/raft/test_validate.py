"""raft.validate.check_message: what a received message must look like to reach the core.
(That honest traffic always passes is asserted on every message the simulator and the scripted
cluster deliver.)"""

from __future__ import annotations

import pytest

from raft.types import ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMeta
from raft.validate import NETWORK_TYPES, check_message

MT = MessageType
CS = ConfState(voters=frozenset({1, 2, 3}))


def _append(*entries: Entry, index: int = 4, log_term: int = 2, term: int = 3) -> Message:
    return Message(MT.APPEND, to=2, frm=1, term=term, index=index, log_term=log_term,
                   entries=list(entries), commit=4)


def _snap(meta: SnapshotMeta, **kw: object) -> Message:
    fields: dict = dict(to=2, frm=1, term=3, index=meta.index, log_term=meta.term,
                        snapshot=Snapshot(meta, b"chunk"), offset=0, done=True)
    fields.update(kw)
    return Message(MT.SNAPSHOT, **fields)


def test_good_messages_pass() -> None:
    assert check_message(_append()) is None
    assert check_message(_append(Entry(2, 5), Entry(3, 6), Entry(3, 7))) is None
    assert check_message(_snap(SnapshotMeta(10, 3, CS))) is None
    for t in NETWORK_TYPES - {MT.SNAPSHOT}:
        assert check_message(Message(t, to=2, frm=1, term=1)) is None, t


@pytest.mark.parametrize("t", [MT.HUP, MT.PROPOSE, MT.CHECK_QUORUM])
def test_local_only_types_are_refused(t: MessageType) -> None:
    assert "local-only" in (check_message(Message(t, to=2, frm=1, term=5)) or "")


def test_term_zero_and_missing_ids_are_refused() -> None:
    assert "term 0" in check_message(Message(MT.READ_INDEX, to=2, frm=1))  # type: ignore
    assert "sender" in check_message(Message(MT.HEARTBEAT, to=2, term=1))  # type: ignore
    assert "sender" in check_message(Message(MT.HEARTBEAT, frm=1, term=1))  # type: ignore


@pytest.mark.parametrize("msg, why", [
    (_append(Entry(3, 6)), "contiguous"),                       # gap right after index
    (_append(Entry(3, 5), Entry(3, 7)), "contiguous"),          # gap inside
    (_append(Entry(3, 5), Entry(3, 5)), "contiguous"),          # repeated index
    (_append(Entry(3, 6), Entry(3, 5)), "contiguous"),          # backwards
    (_append(Entry(1, 5)), "term"),                             # below the previous entry's
    (_append(Entry(3, 5), Entry(2, 6)), "term"),                # terms going down
    (_append(Entry(4, 5)), "term"),                             # beyond the leader's term
])
def test_bad_entries_are_refused(msg: Message, why: str) -> None:
    assert why in (check_message(msg) or "")


def test_entries_and_snapshots_only_where_they_belong() -> None:
    assert "carries entries" in check_message(  # type: ignore
        Message(MT.HEARTBEAT, to=2, frm=1, term=3, entries=[Entry(3, 1)]))
    assert "carries a snapshot" in check_message(  # type: ignore
        Message(MT.HEARTBEAT, to=2, frm=1, term=3,
                snapshot=Snapshot(SnapshotMeta(1, 1, CS), b"")))
    assert "without a snapshot" in check_message(  # type: ignore
        Message(MT.SNAPSHOT, to=2, frm=1, term=3, index=5, log_term=3))


@pytest.mark.parametrize("msg", [
    _snap(SnapshotMeta(0, 3, CS), index=0),                         # zero index
    _snap(SnapshotMeta(10, 0, CS), log_term=0),                     # zero term
    _snap(SnapshotMeta(10, 4, CS)),                                 # term beyond the message's
    _snap(SnapshotMeta(10, 3, CS), index=11),                       # header != metadata
    _snap(SnapshotMeta(10, 3, ConfState())),                        # no voters
    _snap(SnapshotMeta(10, 3, ConfState(voters=frozenset({0, 1})))),  # member 0
    _snap(SnapshotMeta(10, 3, ConfState(voters=frozenset({1, 2}), learners=frozenset({2})))),
    _snap(SnapshotMeta(10, 3, CS), offset=1 << 41),                 # absurd chunk offset
])
def test_bad_snapshot_metadata_is_refused(msg: Message) -> None:
    assert check_message(msg) is not None


BIG = 1 << 62


@pytest.mark.parametrize("field", ["term", "log_term", "index", "commit", "reject_hint"])
def test_numbers_of_2_62_or_more_are_refused(field: str) -> None:
    """A follower that adopted a term of 2^64 - 1 (proto's uint64 allows it) could never
    campaign again: term + 1 fits neither the wire format nor the WAL, so the driver died
    on its first election. No honest cluster gets anywhere near 2^62."""
    fields: dict = dict(to=2, frm=1, term=3)
    fields[field] = BIG
    assert "2^62" in (check_message(Message(MT.HEARTBEAT_RESP, **fields)) or "")
    fields[field] = BIG - 1
    assert check_message(Message(MT.HEARTBEAT_RESP, **fields)) is None


def test_entry_and_snapshot_numbers_of_2_62_or_more_are_refused() -> None:
    assert check_message(_append(Entry(3, BIG), index=BIG - 1)) is not None
    assert check_message(_snap(SnapshotMeta(BIG, 3, CS))) is not None
    assert check_message(_snap(SnapshotMeta(10, 3, ConfState(voters=frozenset({1, BIG}))))
                         ) is not None
    assert check_message(_append(Entry(3, BIG - 1), index=BIG - 2)) is None


@pytest.mark.parametrize("data", [
    b"", b"garbage", b"\xff\xfe", b"[]", b"{}", b'{"c":[[9,2]],"t":0,"x":""}',
    b'{"c":[[0,0]],"t":0,"x":""}', b'{"c":[[0,-3]],"t":0,"x":""}',
    b'{"c":[[0,4611686018427387904]],"t":0,"x":""}', b'{"c":[[0,2]],"t":7,"x":""}',
    b'{"c":[[0,2]],"t":0,"x":"zz"}', b'{"c":[[0,true]],"t":0,"x":""}',
    b'{"c":[[0,2.5]],"t":0,"x":""}', b'{"c":"ab","t":0,"x":""}',
])
def test_conf_change_entries_that_do_not_decode_are_refused(data: bytes) -> None:
    """Such an entry, once committed, made every member crash applying it."""
    why = check_message(_append(Entry(3, 5, EntryType.CONF_CHANGE, data)))
    assert "configuration change" in (why or ""), why


def test_good_conf_change_entries_pass() -> None:
    from raft import confchange
    from raft.types import ConfChange, ConfChangeSingle, ConfChangeType

    cc = ConfChange((ConfChangeSingle(ConfChangeType.ADD_NODE, 4),), context=b"h:1")
    for data in (confchange.encode(cc), confchange.encode(ConfChange())):
        assert check_message(_append(Entry(3, 5, EntryType.CONF_CHANGE, data))) is None

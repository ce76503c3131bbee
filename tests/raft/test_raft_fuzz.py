"""Fuzzing the pure Raft core the way raft/node.py drives it, with forged messages that pass
``raft.validate.check_message`` (what an authenticated but wrong peer could still send).

Every run interleaves honest work (ticks, proposals, deliveries, lost messages, partitions)
with forgeries. Checked after every step, on every node: nothing raises except RaftError; the
log stays continuous (indexes contiguous, terms never going down); commit and term never go
back; everything a Ready asks to persist or send still fits the WAL (``<QQB`` entries, ``<QQQ``
hard state) and the wire format (the protobuf conversion). For the forgeries the core defends
against (acknowledgements of entries the leader does not hold, heartbeats with a commit index
beyond what the follower shares), also safety (every node applies the same entries at the
same indexes) and liveness once the forger stops (a new proposal is applied everywhere).
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raft import confchange
from raft.transport import message_to_proto
from raft.types import (
    NUMBER_LIMIT,
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    RaftError,
    Ready,
    Snapshot,
    SnapshotMeta,
)
from raft.validate import NETWORK_TYPES, check_message
from tests.fuzzing import fuzz_settings
from tests.raft.cluster import Cluster

MT = MessageType
IDS = (1, 2, 3)
_ENTRY = struct.Struct("<QQB")
_HARD = struct.Struct("<QQQ")


class CheckedCluster(Cluster):
    """The scripted cluster, checking every Ready it persists and sends."""

    def process(self, nid: int) -> bool:
        node = self.nodes[nid]
        did = False
        while node.has_ready():
            rd = node.ready()
            _check_ready(rd)
            # what Cluster.process does, from the Ready already taken
            did = True
            st_ = self.storage[nid]
            self.queue.extend(rd.messages)
            if rd.snapshot is not None:
                st_.apply_snapshot(rd.snapshot)
            st_.append(rd.entries)
            if rd.hard_state is not None:
                st_.set_hard_state(rd.hard_state)
            self.queue.extend(rd.persisted_messages)
            self.applied[nid].extend(rd.committed_entries)
            self.read_states[nid].extend(rd.read_states)
            node.advance(rd)
        return did


def _check_ready(rd: Ready) -> None:
    for e in rd.entries:
        _ENTRY.pack(e.term, e.index, int(e.type))
    if rd.hard_state is not None:
        hs = rd.hard_state
        _HARD.pack(hs.term, hs.vote, hs.commit)
    for m in [*rd.messages, *rd.persisted_messages]:
        if m.to != m.frm:
            message_to_proto(m).SerializeToString()


def _check_node_state(c: Cluster, before: dict[int, tuple[int, int]]) -> None:
    for nid, node in c.nodes.items():
        term, committed = node.term, node.committed
        old_term, old_commit = before.get(nid, (0, 0))
        assert term >= old_term, (nid, term, old_term)
        assert committed >= old_commit, (nid, committed, old_commit)
        before[nid] = (term, committed)
        log = node.log
        first, last = log.first_index(), log.last_index()
        assert committed <= last
        if last >= first:
            ents = log.slice(first, last + 1)
            assert [e.index for e in ents] == list(range(first, last + 1))
            terms = [e.term for e in ents]
            assert terms == sorted(terms), terms


numbers = st.one_of(st.integers(0, 12), st.sampled_from([NUMBER_LIMIT - 1, NUMBER_LIMIT - 2,
                                                         2**40]))


@st.composite
def forged(draw: st.DrawFn, to: int) -> Message:
    """A message from another member to ``to`` that passes validation (or a heartbeat)."""
    mtype = draw(st.sampled_from(sorted(NETWORK_TYPES)))
    frm = draw(st.sampled_from([i for i in IDS if i != to]))
    term = draw(numbers.filter(lambda t: t > 0))
    index = draw(numbers)
    log_term = draw(numbers)
    fields: dict[str, Any] = dict(to=to, frm=frm, term=term, index=index, log_term=log_term,
                                  commit=draw(numbers), reject=draw(st.booleans()),
                                  reject_hint=draw(numbers), context=draw(st.binary(max_size=4)))
    if mtype == MT.APPEND:
        n = draw(st.integers(0, 3))
        ents = []
        prev = min(log_term, term)
        fields["log_term"] = prev
        for i in range(n):
            t = draw(st.integers(prev, term))
            kind = draw(st.sampled_from([EntryType.NORMAL, EntryType.NORMAL,
                                         EntryType.CONF_CHANGE]))
            data = draw(st.binary(max_size=6))
            if kind == EntryType.CONF_CHANGE:
                data = confchange.encode(draw(st.sampled_from([
                    ConfChange(), ConfChange((ConfChangeSingle(ConfChangeType.REMOVE_NODE,
                                                               draw(st.integers(1, 4))),)),
                    ConfChange((ConfChangeSingle(ConfChangeType.ADD_NODE, 4),),
                               context=b"h:1")])))
            ents.append(Entry(t, index + 1 + i, kind, data))
            prev = t
        fields["entries"] = ents
    if mtype == MT.SNAPSHOT:
        meta_term = draw(st.integers(1, term))
        meta_index = max(1, index)
        fields.update(index=meta_index, log_term=meta_term, offset=draw(st.integers(0, 64)),
                      done=draw(st.booleans()),
                      snapshot=Snapshot(SnapshotMeta(meta_index, meta_term,
                                                     ConfState(voters=frozenset(IDS))),
                                        draw(st.binary(max_size=16))))
    return Message(mtype, **fields)


@st.composite
def actions(draw: st.DrawFn, forge: st.SearchStrategy[Any] | None) -> tuple[Any, ...]:
    kinds = ["tick", "tick", "propose", "deliver", "deliver", "deliver", "drop", "cut", "heal"]
    if forge is not None:
        kinds += ["forge", "forge"]
    kind = draw(st.sampled_from(kinds))
    nid = draw(st.sampled_from(IDS))
    if kind == "forge":
        return (kind, nid, draw(forge(nid)))  # type: ignore[misc, operator]
    return (kind, nid, draw(st.sampled_from(IDS)))


def _run(c: Cluster, steps: list[tuple[Any, ...]], proposals: list[bytes],
         before: dict[int, tuple[int, int]] | None = None) -> None:
    before = {} if before is None else before
    for i, (kind, nid, arg) in enumerate(steps):
        try:
            if kind == "tick":
                c.nodes[nid].tick()
            elif kind == "propose":
                data = b"p%d" % i
                c.nodes[nid].propose(data)
                proposals.append(data)
            elif kind == "deliver":
                for _ in range(3):
                    _deliver_one(c)
            elif kind == "drop" and c.queue:
                c.queue.pop(0)
            elif kind == "cut" and arg != nid:
                c.cut.update({(nid, arg), (arg, nid)})
            elif kind == "heal":
                c.cut.clear()
            elif kind == "forge" and check_message(arg) is None:  # else the transport drops it
                c.nodes[nid].step(arg)
        except RaftError:
            pass
        for n in c.nodes:
            c.process(n)
        _check_node_state(c, before)


def _deliver_one(c: Cluster) -> None:
    """Cluster.deliver_one without its check that every message is honest (a node that
    stepped a forged message may answer with numbers no honest cluster reaches)."""
    if not c.queue:
        return
    m = c.queue.pop(0)
    if (m.frm, m.to) in c.cut or m.to not in c.nodes:
        return
    with contextlib.suppress(RaftError):
        c.nodes[m.to].step(m)
    c.process(m.to)


@fuzz_settings(20)
@given(steps=st.lists(actions(forged), min_size=10, max_size=60), seed=st.integers(0, 3))
def test_core_survives_validated_forgeries(steps: list[tuple[Any, ...]], seed: int) -> None:
    c = CheckedCluster(IDS, seed=seed, pre_vote=bool(seed % 2), check_quorum=seed >= 2)
    _run(c, steps, [])


@st.composite
def defended(draw: st.DrawFn, to: int) -> Message:
    """Forgeries the core defends against: an acknowledgement of any index, to whoever leads;
    a heartbeat with any commit index, as if from the current leader."""
    frm = draw(st.sampled_from([i for i in IDS if i != to]))
    if draw(st.booleans()):
        return Message(MT.APPEND_RESP, to=to, frm=frm, term=draw(st.integers(1, 6)),
                       index=draw(numbers), reject=draw(st.booleans()),
                       reject_hint=draw(numbers))
    return Message(MT.HEARTBEAT, to=to, frm=frm, term=draw(st.integers(1, 6)),
                   commit=draw(numbers))


def _defended_forge(to: int) -> st.SearchStrategy[Message]:
    return defended(to)


def _same_applied(c: Cluster) -> None:
    by_index: dict[int, tuple[int, bytes]] = {}
    for nid in c.nodes:
        for e in c.applied[nid]:
            seen = by_index.setdefault(e.index, (e.term, e.data))
            assert seen == (e.term, e.data), f"node {nid} applied a different entry {e.index}"


@fuzz_settings(20)
@given(steps=st.lists(actions(_defended_forge), min_size=10, max_size=60),
       seed=st.integers(0, 3))
def test_defended_forgeries_keep_safety_and_liveness(steps: list[tuple[Any, ...]],
                                                     seed: int) -> None:
    c = CheckedCluster(IDS, seed=seed, pre_vote=True, check_quorum=seed >= 2)
    # a forged heartbeat claims to come from whoever leads at that moment, in its term
    fixed = []
    before: dict[int, tuple[int, int]] = {}
    for kind, nid, arg in steps:
        if kind == "forge" and arg.type == MT.HEARTBEAT:
            leader = c.leader()
            if leader is None or leader == nid:
                continue
            arg = Message(MT.HEARTBEAT, to=nid, frm=leader, term=c.nodes[leader].term,
                          commit=arg.commit)
        fixed.append((kind, nid, arg))
        _run(c, [fixed[-1]], [], before)
        _same_applied(c)
    # the forger stops, the network heals: a new proposal is applied everywhere
    c.cut.clear()
    for _ in range(60):
        c.tick()
        if c.leader() is not None:
            break
    leader = c.leader()
    assert leader is not None
    c.tick(n=3)
    leader = c.leader()
    assert leader is not None
    c.propose(leader, b"after-the-forger")
    c.tick(n=3)
    for nid in c.nodes:
        assert b"after-the-forger" in c.data_applied(nid), nid
    _same_applied(c)


@pytest.mark.slow
@fuzz_settings(300)
@given(steps=st.lists(actions(forged), min_size=40, max_size=120), seed=st.integers(0, 3))
def test_core_forgeries_long(steps: list[tuple[Any, ...]], seed: int) -> None:
    test_core_survives_validated_forgeries.hypothesis.inner_test(steps, seed)


@pytest.mark.slow
@fuzz_settings(500)
@given(steps=st.lists(actions(_defended_forge), min_size=10, max_size=80),
       seed=st.integers(0, 3))
def test_defended_forgeries_long(steps: list[tuple[Any, ...]], seed: int) -> None:
    test_defended_forgeries_keep_safety_and_liveness.hypothesis.inner_test(steps, seed)

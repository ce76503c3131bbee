"""A synchronous in-process cluster for scripted Raft scenarios (test helper).

Owns the simplest possible driver: every Ready is persisted at once into a MemoryStorage,
messages are queued and delivered in order by ``stabilize()`` unless a link is cut or a
filter drops them, and applied entries are recorded per node. Scenario tests read like
stories: elect, propose, cut a link, tick, stabilize, assert.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from raft import confchange
from raft.core import Config, RawNode
from raft.memory_storage import MemoryStorage
from raft.types import ConfState, Entry, EntryType, Message, MessageType, ReadState, StateRole
from raft.validate import check_message


class Cluster:
    def __init__(self, ids: Iterable[int] = (1, 2, 3), *, learners: Iterable[int] = (),
                 seed: int = 0, **cfg: object) -> None:
        ids = list(ids)
        self.conf = ConfState(voters=frozenset(ids), learners=frozenset(learners))
        self.cfg = cfg
        self.seed = seed
        self.storage: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RawNode] = {}
        self.applied: dict[int, list[Entry]] = {}
        self.read_states: dict[int, list[ReadState]] = {}
        self.queue: list[Message] = []
        self.cut: set[tuple[int, int]] = set()
        self.drop: Callable[[Message], bool] | None = None
        self.sent: list[Message] = []
        for nid in [*ids, *learners]:
            self.add_node(nid, bootstrap=True)
        self.stabilize()  # apply the bootstrap configuration entry

    def add_node(self, nid: int, bootstrap: bool = False) -> RawNode:
        """A founding member (bootstrap) or a new, empty node that may later join."""
        st = MemoryStorage()
        if bootstrap:
            hs, ents = confchange.bootstrap_entries(self.conf)
            st.append(ents)
            st.set_hard_state(hs)
        self.storage[nid] = st
        self.applied[nid] = []
        self.read_states[nid] = []
        return self._boot(nid)

    def _boot(self, nid: int) -> RawNode:
        cfg = dict(election_tick=10, heartbeat_tick=1)
        cfg.update(self.cfg)
        st = self.storage[nid]
        node = RawNode(Config(nid, rng=random.Random(self.seed * 100 + nid),
                              applied=st.snapshot().meta.index, **cfg), st)  # type: ignore
        self.nodes[nid] = node
        return node

    def restart(self, nid: int) -> RawNode:
        """Rebuild node ``nid`` from its storage (everything not persisted is gone)."""
        self.applied[nid] = [e for e in self.applied[nid]
                             if e.index <= self.storage[nid].snapshot().meta.index]
        node = self._boot(nid)
        self.process(nid)  # re-apply committed entries (incl. configuration) at once
        return node

    # -- driving
    def process(self, nid: int) -> bool:
        node = self.nodes[nid]
        st = self.storage[nid]
        did = False
        while node.has_ready():
            did = True
            rd = node.ready()
            self.queue.extend(rd.messages)
            if rd.snapshot is not None:
                st.apply_snapshot(rd.snapshot)
            st.append(rd.entries)
            if rd.hard_state is not None:
                st.set_hard_state(rd.hard_state)
            self.queue.extend(rd.persisted_messages)
            self.applied[nid].extend(rd.committed_entries)
            self.read_states[nid].extend(rd.read_states)
            node.advance(rd)
        return did

    def deliver_one(self) -> bool:
        if not self.queue:
            return False
        m = self.queue.pop(0)
        self.sent.append(m)
        if m.to != m.frm:  # the transport's checks must pass every honest message
            why = check_message(m)
            assert why is None, f"validation refuses an honest message: {why}: {m}"
        if (m.frm, m.to) in self.cut or m.to not in self.nodes:
            return True
        if self.drop is not None and self.drop(m):
            return True
        self.nodes[m.to].step(m)
        self.process(m.to)
        return True

    def stabilize(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            busy = False
            for nid in list(self.nodes):
                busy |= self.process(nid)
            busy |= self.deliver_one()
            if not busy:
                return
        raise AssertionError("cluster did not stabilize")

    def tick(self, nid: int | None = None, n: int = 1) -> None:
        targets = [nid] if nid is not None else list(self.nodes)
        for _ in range(n):
            for t in targets:
                self.nodes[t].tick()
            self.stabilize()

    def elect(self, nid: int) -> RawNode:
        self.nodes[nid].campaign()
        self.stabilize()
        assert self.nodes[nid].role == StateRole.LEADER, self.nodes[nid].status()
        return self.nodes[nid]

    def propose(self, nid: int, data: bytes) -> int:
        idx = self.nodes[nid].propose(data)
        self.stabilize()
        return idx

    # -- faults
    def isolate(self, nid: int) -> None:
        for other in self.nodes:
            if other != nid:
                self.cut.add((nid, other))
                self.cut.add((other, nid))

    def heal(self) -> None:
        self.cut.clear()
        self.drop = None

    # -- views
    def data_applied(self, nid: int) -> list[bytes]:
        return [e.data for e in self.applied[nid] if e.type == EntryType.NORMAL and e.data]

    def leader(self) -> int | None:
        leaders = [n for n, r in self.nodes.items() if r.role == StateRole.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda n: self.nodes[n].term)

    def sent_of(self, mtype: MessageType) -> list[Message]:
        return [m for m in self.sent if m.type == mtype]

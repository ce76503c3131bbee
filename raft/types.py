"""Data types shared by the Raft core, its storage and its drivers.

Owns: log entries, persistent state (HardState, ConfState, snapshots), membership change
requests, the Message exchanged between peers, the Ready batch the core hands to its driver,
the LogStorage protocol the core reads the durable log through, and Raft's exceptions.

Driver contract (how a driver such as ``raft/node.py`` or the test simulator runs the core)
------------------------------------------------------------------------------------------
The core (``raft.core.RawNode``) never does I/O. The driver loops:

1. Feed inputs: ``tick()`` on its clock, ``step(msg)`` for every received message,
   ``propose(data)`` / ``propose_conf_change(cc)`` / ``read_index(ctx)`` /
   ``transfer_leader(to)`` for local requests.
2. ``if node.has_ready(): rd = node.ready()``.
3. Send ``rd.messages`` **at once**: a leader's heartbeats and appends, pre-votes, heartbeat
   and ReadIndex responses never wait behind the disk (a slow fsync must not cause elections).
4. Persist, in this order and with ONE fsync: ``rd.snapshot`` (if any; install it into the
   state machine too), ``rd.entries`` (appending entry *i* truncates the durable log from *i*
   on: this is how conflicts are cut), then ``rd.hard_state`` (if not None). After the fsync
   the entries must be readable through the LogStorage the core was built with.
5. Send ``rd.persisted_messages``: vote grants and append acknowledgements (they promise
   that the state above is durable) and a candidate's vote requests (its new term and
   self-vote must be durable first, or a restarted leader could lead one term twice).
6. Apply ``rd.committed_entries`` to the state machine, in order. Entries of type
   CONF_CHANGE carry an encoded ``ConfChange`` (``raft.confchange.decode``); the core itself
   applies them to its configuration in ``advance``. Hand ``rd.read_states`` to waiting
   readers once the applied index reaches ``ReadState.index``.
7. ``node.advance(rd)``.

Readies may be pipelined: a driver with a slow disk may call ``ready()`` again (and send the
new ``messages`` at once) before the previous Ready's fsync finished, as long as it persists
and advances Readies strictly in the order they were produced. That is what keeps heartbeats
flowing while an fsync stalls. A driver that does not pipeline simply runs steps 2-7 in order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

NONE = 0

NUMBER_LIMIT = 1 << 62
"""Terms, indexes, commit indexes and member ids stay below this. No honest cluster gets near
it (a term a second for 10^11 years), and whatever is below it leaves room for the ``+ 1``s
of campaigns and appends inside the wire format (uint64) and the WAL (``<Q``); received
messages with a larger number are refused by ``raft.validate``."""
"""Node id meaning "nobody" (no vote, no known leader). Real node ids are positive ints."""


class RaftError(Exception):
    """Base class of errors raised by the Raft core and its storage."""


class ProposalDropped(RaftError):
    """The proposal was not appended (not leader, transfer in progress, pending conf change)."""


class StorageCompacted(RaftError):
    """The requested index lies before the first index still held by the storage."""


class SnapshotTemporarilyUnavailable(RaftError):
    """The storage cannot produce a snapshot right now; the core retries later."""


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class Entry(NamedTuple):
    """One log entry. Immutable and cheap (a tuple), so batches are shared, never copied."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


ENTRY_OVERHEAD = 24
"""Bytes charged per entry, besides its data, when batching against max_size_per_msg."""


def entry_size(e: Entry) -> int:
    return ENTRY_OVERHEAD + len(e.data)


@dataclass(slots=True)
class HardState:
    """State that must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: int = NONE
    commit: int = 0

    def copy(self) -> HardState:
        return HardState(self.term, self.vote, self.commit)


@dataclass(slots=True, frozen=True)
class ConfState:
    """A membership configuration. ``voters_outgoing`` is non-empty only in a joint config."""

    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()
    voters_outgoing: frozenset[int] = frozenset()
    learners_next: frozenset[int] = frozenset()
    """Learners to add when leaving the joint config (voters demoted in the joint step)."""
    auto_leave: bool = False

    @property
    def joint(self) -> bool:
        return bool(self.voters_outgoing)

    def members(self) -> frozenset[int]:
        return self.voters | self.learners | self.voters_outgoing | self.learners_next


@dataclass(slots=True, frozen=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(slots=True, frozen=True)
class Snapshot:
    """State machine image at ``meta.index``; ``data`` is opaque to Raft."""

    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""

    @property
    def empty(self) -> bool:
        return self.meta.index == 0


class ConfChangeType(enum.IntEnum):
    ADD_NODE = 0
    """Add a voter (or promote a learner)."""
    REMOVE_NODE = 1
    ADD_LEARNER = 2
    """Add a learner (or demote a voter)."""


class ConfChangeTransition(enum.IntEnum):
    AUTO = 0
    """Simple change if possible (one voter changed), else joint with automatic leave."""
    JOINT_IMPLICIT = 1
    """Always joint; the leader proposes leaving the joint config automatically."""
    JOINT_EXPLICIT = 2
    """Always joint; the application proposes an empty ConfChange to leave it."""


class ConfChangeSingle(NamedTuple):
    type: ConfChangeType
    node_id: int


@dataclass(slots=True, frozen=True)
class ConfChange:
    """A membership change request. No ``changes`` means "leave the joint configuration"."""

    changes: tuple[ConfChangeSingle, ...] = ()
    transition: ConfChangeTransition = ConfChangeTransition.AUTO
    context: bytes = b""

    def leave_joint(self) -> bool:
        return not self.changes


class MessageType(enum.IntEnum):
    HUP = 0  # local: start an election (campaign)
    PROPOSE = 1  # local or forwarded proposal
    APPEND = 2
    APPEND_RESP = 3
    VOTE = 4
    VOTE_RESP = 5
    PRE_VOTE = 6
    PRE_VOTE_RESP = 7
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    SNAPSHOT = 10  # one chunk of InstallSnapshot (offset, done)
    SNAPSHOT_RESP = 11  # chunk acknowledgement: reject_hint = next offset wanted
    TIMEOUT_NOW = 12  # leader transfer: campaign now, ignoring leases
    TRANSFER_LEADER = 13  # local or forwarded request to transfer leadership
    READ_INDEX = 14
    READ_INDEX_RESP = 15
    CHECK_QUORUM = 16  # local


@dataclass(slots=True)
class Message:
    """A Raft message. ``frm`` is the sender (``from`` is a Python keyword)."""

    type: MessageType
    to: int = NONE
    frm: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] | list[Entry] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    snapshot: Snapshot | None = None
    """For SNAPSHOT: meta plus THIS chunk's bytes in ``snapshot.data``."""
    offset: int = 0
    done: bool = False


class StateRole(enum.IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(slots=True, frozen=True)
class SoftState:
    """Volatile state the application may want to observe; not persisted."""

    leader: int = NONE
    role: StateRole = StateRole.FOLLOWER


@dataclass(slots=True, frozen=True)
class ReadState:
    """A ReadIndex answer: once applied >= ``index``, a read for ``context`` is linearizable."""

    index: int
    context: bytes


@dataclass(slots=True)
class Ready:
    """Everything the driver must do for one turn (see the module docstring for the order)."""

    soft_state: SoftState | None = None
    """New soft state if it changed since the last Ready, else None."""
    hard_state: HardState | None = None
    """HardState to persist, or None if unchanged."""
    entries: list[Entry] = field(default_factory=list)
    """Entries to append durably (may overwrite a conflicting tail)."""
    snapshot: Snapshot | None = None
    """Snapshot to persist and install, or None."""
    messages: list[Message] = field(default_factory=list)
    """Send right away, before or while persisting."""
    persisted_messages: list[Message] = field(default_factory=list)
    """Send only after this Ready's snapshot, entries and hard state are durable."""
    committed_entries: list[Entry] = field(default_factory=list)
    """Apply to the state machine after persisting."""
    read_states: list[ReadState] = field(default_factory=list)
    self_messages: list[Message] = field(default_factory=list)
    """Internal: the node's own acknowledgements (its vote, its log), stepped by advance()
    because they count only once durable. Drivers ignore this field."""
    seq: int = 0
    """Sequence number: Readies are persisted and advanced in this order."""
    must_sync: bool = False
    """True when hard state votes/terms or entries changed: fsync is required."""

    def empty(self) -> bool:
        return not (
            self.soft_state or self.hard_state or self.entries or self.snapshot or self.messages
            or self.persisted_messages or self.committed_entries or self.read_states
        )


class LogStorage(Protocol):
    """The durable log as the core reads it. Implemented by MemoryStorage and the WAL.

    Index conventions: the storage holds a snapshot (possibly empty, index 0) and the entries
    ``first_index() .. last_index()``; ``first_index() == snapshot index + 1``. ``term(i)`` is
    defined for ``first_index() - 1 <= i <= last_index()``.
    """

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The durable HardState and the ConfState as of the latest snapshot."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``[lo, hi)``, at least one if ``lo < hi``, cut once ``max_bytes`` is passed.

        Raises StorageCompacted if ``lo < first_index()``.
        """
        ...

    def term(self, i: int) -> int:
        """Term of entry i. Raises StorageCompacted if ``i < first_index() - 1``."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot:
        """The latest snapshot (for sending to a follower). May raise
        SnapshotTemporarilyUnavailable."""
        ...

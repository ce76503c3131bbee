"""Shape checks for Raft messages received from the network, before they reach the core.

Owns :func:`check_message`: a message that passed authentication is still refused unless it is
one a correct peer could have sent: a type peers exchange (never a local-only one: HUP, PROPOSE,
CHECK_QUORUM), a real term (term 0 means "local" to the core), entries only on appends and
contiguous after ``index`` with terms that never go down nor pass the message's term, and a
snapshot only on SNAPSHOT messages, with metadata that describes a real snapshot; no term,
index, commit or member id of 2^62 or more (``raft.types.NUMBER_LIMIT``: the core's ``+ 1``
must still fit the wire and the WAL), and configuration-change entries that decode. What a check
here cannot know (the receiver's own log) the core handles: it clamps commit indexes to what
the follower's log is known to share with the leader.
"""

from __future__ import annotations

from raft import confchange
from raft.types import NONE, NUMBER_LIMIT, EntryType, Message, MessageType

__all__ = ["MAX_SNAPSHOT_OFFSET", "NETWORK_TYPES", "check_message"]

MT = MessageType

NETWORK_TYPES = frozenset({
    MT.APPEND, MT.APPEND_RESP, MT.VOTE, MT.VOTE_RESP, MT.PRE_VOTE, MT.PRE_VOTE_RESP,
    MT.HEARTBEAT, MT.HEARTBEAT_RESP, MT.SNAPSHOT, MT.SNAPSHOT_RESP, MT.TIMEOUT_NOW,
    MT.TRANSFER_LEADER, MT.READ_INDEX, MT.READ_INDEX_RESP,
})
"""Message types peers send each other; the others only ever come from the node itself."""

MAX_SNAPSHOT_OFFSET = 1 << 40
"""No snapshot chunk starts beyond 1 TiB."""


def check_message(m: Message) -> str | None:
    """Why ``m`` must not reach the core, or None when it may."""
    if m.type not in NETWORK_TYPES:
        return f"message type {m.type.name} is local-only"
    if m.term == 0:
        return f"{m.type.name} with term 0"
    if m.frm == NONE or m.to == NONE:
        return f"{m.type.name} without sender or receiver id"
    for name in ("term", "log_term", "index", "commit", "reject_hint", "frm", "to"):
        if getattr(m, name) >= NUMBER_LIMIT:
            return f"{m.type.name} with {name} {getattr(m, name)} (2^62 or more)"
    if m.entries:
        if m.type != MT.APPEND:
            return f"{m.type.name} carries entries"
        why = _check_entries(m)
        if why:
            return why
    if m.type == MT.SNAPSHOT:
        return _check_snapshot(m)
    if m.snapshot is not None:
        return f"{m.type.name} carries a snapshot"
    return None


def _check_entries(m: Message) -> str | None:
    index = m.index
    prev_term = m.log_term
    for e in m.entries:
        index += 1
        if e.index != index:
            return f"APPEND entries not contiguous: expected index {index}, got {e.index}"
        if e.term < prev_term or e.term > m.term:
            return (f"APPEND entry {e.index} has term {e.term} (previous {prev_term}, "
                    f"message term {m.term})")
        prev_term = e.term
        if e.index >= NUMBER_LIMIT:  # terms are bounded by the message's
            return f"APPEND entry index {e.index} (2^62 or more)"
        if e.type == EntryType.CONF_CHANGE:
            try:
                confchange.decode(e.data)
            except confchange.ConfChangeError as exc:
                return f"APPEND entry {e.index}: bad configuration change: {exc}"
    return None


def _check_snapshot(m: Message) -> str | None:
    s = m.snapshot
    if s is None:
        return "SNAPSHOT without a snapshot"
    meta = s.meta
    if meta.index <= 0 or meta.term <= 0:
        return "SNAPSHOT with a zero index or term"
    if meta.term > m.term:
        return f"SNAPSHOT term {meta.term} beyond the message term {m.term}"
    if m.index != meta.index or m.log_term != meta.term:
        return "SNAPSHOT index/term differ from its metadata"
    if meta.index >= NUMBER_LIMIT:
        return f"SNAPSHOT index {meta.index} (2^62 or more)"
    cs = meta.conf_state
    if any(n >= NUMBER_LIMIT for n in cs.members()):
        return "SNAPSHOT configuration names a member id of 2^62 or more"
    if not cs.voters:
        return "SNAPSHOT configuration has no voters"
    if NONE in cs.members():
        return "SNAPSHOT configuration names member 0"
    if cs.voters & cs.learners:
        return "SNAPSHOT configuration has a member that is both voter and learner"
    if m.offset > MAX_SNAPSHOT_OFFSET:
        return f"SNAPSHOT chunk offset {m.offset} is implausible"
    return None

"""Membership changes: encoding ConfChange requests and computing the next ConfState.

Owns the transition rules. A *simple* change alters at most one voter and is applied directly;
anything larger enters a *joint* configuration (old voters = ``voters_outgoing``, new voters =
``voters``) in which every decision needs a majority of both, and a later empty ConfChange
leaves it. Learners never vote; a voter demoted to learner while joint waits in
``learners_next`` until the joint config is left.
"""

from __future__ import annotations

import json

from raft.types import (
    NUMBER_LIMIT,
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    RaftError,
)


class ConfChangeError(RaftError):
    """The change is not valid against the current configuration."""


class UnknownConfiguration(ConfChangeError):
    """A change arrived at a node whose configuration is empty (a joiner without snapshot)."""


BOOTSTRAP = b"bootstrap"
"""Context of the ConfChange in log entry 1 written by ``bootstrap_entries``."""


def encode(cc: ConfChange) -> bytes:
    return json.dumps({
        "c": [[int(c.type), c.node_id] for c in cc.changes],
        "t": int(cc.transition),
        "x": cc.context.hex(),
    }, separators=(",", ":")).encode()


def decode(data: bytes) -> ConfChange:
    """The change ``encode`` wrote; ConfChangeError for anything else (malformed JSON, unknown
    fields, change or transition types, member ids outside ``1 .. NUMBER_LIMIT - 1``)."""
    try:
        d = json.loads(data)
        if not isinstance(d, dict) or set(d) != {"c", "t", "x"}:
            raise ValueError("not a {c, t, x} object")
        if not isinstance(d["c"], list) or not isinstance(d["x"], str):
            raise ValueError("changes must be a list and the context a hex string")
        changes = []
        for ch in d["c"]:
            if (not isinstance(ch, list) or len(ch) != 2
                    or not all(type(v) is int for v in ch)):
                raise ValueError(f"change {ch!r} is not [type, member id]")
            if not 0 < ch[1] < NUMBER_LIMIT:
                raise ValueError(f"member id {ch[1]} out of range")
            changes.append(ConfChangeSingle(ConfChangeType(ch[0]), ch[1]))
        if type(d["t"]) is not int:
            raise ValueError("transition must be an integer")
        return ConfChange(tuple(changes), ConfChangeTransition(d["t"]), bytes.fromhex(d["x"]))
    except (ValueError, TypeError, RecursionError) as exc:  # JSON and Unicode errors included
        raise ConfChangeError(f"not an encoded configuration change: {exc}") from None


def _apply_changes(cs: ConfState, cc: ConfChange) -> tuple[set[int], set[int], set[int]]:
    voters, learners, nxt = set(cs.voters), set(cs.learners), set(cs.learners_next)
    outgoing = cs.voters_outgoing
    for ch in cc.changes:
        nid = ch.node_id
        if nid <= 0:
            raise ConfChangeError(f"invalid node id {nid}")
        if ch.type == ConfChangeType.ADD_NODE:
            voters.add(nid)
            learners.discard(nid)
            nxt.discard(nid)
        elif ch.type == ConfChangeType.ADD_LEARNER:
            voters.discard(nid)
            if nid in outgoing:
                nxt.add(nid)
            else:
                learners.add(nid)
        elif ch.type == ConfChangeType.REMOVE_NODE:
            voters.discard(nid)
            learners.discard(nid)
            nxt.discard(nid)
        else:  # pragma: no cover - enum is closed
            raise ConfChangeError(f"unknown change type {ch.type}")
    if not voters:
        raise ConfChangeError("removed all voters")
    return voters, learners, nxt


def is_simple(cs: ConfState, cc: ConfChange) -> bool:
    """True if ``cc`` may be applied without a joint configuration."""
    if cc.transition != ConfChangeTransition.AUTO or not cc.changes:
        return False
    voters, _, _ = _apply_changes(ConfState(cs.voters, cs.learners), cc)
    return len(voters ^ set(cs.voters)) <= 1


def apply(cs: ConfState, cc: ConfChange) -> ConfState:
    """The configuration after ``cc``; raises ConfChangeError if it is not allowed."""
    if cc.leave_joint():
        if not cs.joint:
            raise ConfChangeError("not in a joint configuration")
        return ConfState(
            voters=cs.voters, learners=cs.learners | cs.learners_next,
        )
    if cs.joint:
        raise ConfChangeError("configuration is joint; leave it first")
    if not cs.voters:
        if cc.context != BOOTSTRAP:
            raise UnknownConfiguration(
                "configuration unknown on this node (it joined with empty storage and has "
                "not received a snapshot); only the bootstrap change applies to it")
        voters, learners, _ = _apply_changes(cs, cc)
        return ConfState(frozenset(voters), frozenset(learners))
    if is_simple(cs, cc):
        voters, learners, _ = _apply_changes(cs, cc)
        return ConfState(frozenset(voters), frozenset(learners))
    # enter joint: outgoing = current voters
    joint = ConfState(cs.voters, cs.learners, voters_outgoing=cs.voters)
    voters, learners, nxt = _apply_changes(joint, cc)
    return ConfState(
        voters=frozenset(voters), learners=frozenset(learners), voters_outgoing=cs.voters,
        learners_next=frozenset(nxt),
        auto_leave=cc.transition != ConfChangeTransition.JOINT_EXPLICIT,
    )


def bootstrap_entries(conf: ConfState) -> tuple[HardState, list[Entry]]:
    """What a brand-new cluster member persists before its first start.

    The initial configuration becomes log entry 1 (term 1, committed), so that a node that
    joins later with an empty log learns the whole membership history from the leader.
    Only the founding members bootstrap; a joining node starts from empty storage.
    """
    changes = tuple(ConfChangeSingle(ConfChangeType.ADD_NODE, n) for n in sorted(conf.voters))
    changes += tuple(ConfChangeSingle(ConfChangeType.ADD_LEARNER, n)
                     for n in sorted(conf.learners))
    entry = Entry(1, 1, EntryType.CONF_CHANGE,
                  encode(ConfChange(changes, context=BOOTSTRAP)))
    return HardState(term=1, vote=0, commit=1), [entry]

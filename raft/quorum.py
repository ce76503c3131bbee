"""Quorum arithmetic as pure functions: majority and joint configurations.

Owns the two questions Raft asks of a configuration: which log index is committed given each
voter's match index, and whether an election is won, lost or still pending given the votes.
A joint configuration (incoming + outgoing voters) needs a majority in both halves; an empty
half imposes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping

from raft.types import ConfState


class VoteResult(enum.IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def majority_committed(voters: Iterable[int], match: Callable[[int], int]) -> int:
    """Largest index acknowledged by a majority of ``voters``; huge for an empty set."""
    idx = [match(v) for v in voters]
    n = len(idx)
    if n == 0:
        return 1 << 62  # an empty config commits everything (it never limits the joint min)
    idx.sort(reverse=True)
    return idx[n // 2]


def joint_committed(conf: ConfState, match: Callable[[int], int]) -> int:
    c = majority_committed(conf.voters, match)
    if conf.voters_outgoing:
        c = min(c, majority_committed(conf.voters_outgoing, match))
    return c


def majority_vote(voters: Iterable[int], votes: Mapping[int, bool]) -> VoteResult:
    voters = list(voters)
    if not voters:
        return VoteResult.WON
    granted = rejected = missing = 0
    for v in voters:
        got = votes.get(v)
        if got is None:
            missing += 1
        elif got:
            granted += 1
        else:
            rejected += 1
    q = len(voters) // 2 + 1
    if granted >= q:
        return VoteResult.WON
    if granted + missing >= q:
        return VoteResult.PENDING
    return VoteResult.LOST


def joint_vote(conf: ConfState, votes: Mapping[int, bool]) -> VoteResult:
    r1 = majority_vote(conf.voters, votes)
    r2 = majority_vote(conf.voters_outgoing, votes)
    if r1 == r2:
        return r1
    if VoteResult.LOST in (r1, r2):
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(conf: ConfState, alive: Callable[[int], bool]) -> bool:
    """True if the voters for which ``alive`` holds form a quorum (check-quorum)."""
    votes = {v: alive(v) for v in conf.voters | conf.voters_outgoing}
    return joint_vote(conf, votes) == VoteResult.WON

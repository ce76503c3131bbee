"""``readConcern: snapshot`` through the router, as far as shards that only read "now" allow.

MongoDB's mongos picks one cluster time and every shard reads at it: one point in time for the
whole cluster. Helogale's shards each have their own cluster time (their own Raft log, see
:mod:`node.commands.read_concern`) and cannot read in the past beyond the few snapshots they
keep, so the router cannot choose a time. What it does instead:

* each targeted shard gets ``{level: "snapshot"}`` and pins its own snapshot: every batch of
  that shard's cursor (and its ``$lookup``) reads one point in time of that shard;
* the router answers with an ``atClusterTime`` of its own, a *token* (``Timestamp(seconds,
  random)``) standing for the shards' snapshot times it saw (:class:`RouterSnapshot`);
* a read with ``atClusterTime`` set to a token this router issued sends each shard the time of
  its snapshot under that token (shards serve it from their kept snapshots, or answer
  SnapshotTooOld); a shard the token has not read yet pins its current snapshot, which then
  belongs to the token. A token this router did not issue, or one older than
  :data:`~node.commands.read_concern.HISTORY_S`, is SnapshotTooOld (239).

So a snapshot session through one router re-reads the same state of every shard, but the
shards' states are not one point in time of the cluster: a write spanning two shards may be
seen on one and not the other. ``afterClusterTime`` is not forwarded: shards' times are not
comparable, and the router returns no ``operationTime`` for a causal session to send back.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from bson import Timestamp

from node.commands.read_concern import HISTORY_S
from node.engine.errors import SNAPSHOT_TOO_OLD, MongoError

TOKENS_MAX = 4096
"""Tokens one router remembers at most (the oldest go first)."""

_ACTIVE: contextvars.ContextVar[RouterSnapshot | None] = contextvars.ContextVar(
    "helogale_router_snapshot", default=None)


class RouterSnapshot:
    """One router ``atClusterTime`` token: the snapshot time each shard read under it."""

    def __init__(self, token: Timestamp) -> None:
        self.time = token
        self._shards: dict[str, Timestamp] = {}
        self._lock = threading.Lock()

    def read_concern(self, shard: str) -> dict[str, Any]:
        """The ``readConcern`` ``shard`` gets under this token."""
        with self._lock:
            at = self._shards.get(shard)
        return {"level": "snapshot", **({"atClusterTime": at} if at is not None else {})}

    def record(self, shard: str, reply: Mapping[str, Any]) -> None:
        """Remember the snapshot time ``shard`` answered with (the first one stays)."""
        cursor = reply.get("cursor")
        at = (cursor if isinstance(cursor, Mapping) else reply).get("atClusterTime")
        if isinstance(at, Timestamp):
            with self._lock:
                self._shards.setdefault(shard, at)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Shard commands built in the body (:func:`for_shard`) read under this token."""
        token = _ACTIVE.set(self)
        try:
            yield
        finally:
            _ACTIVE.reset(token)


def for_shard(cmd: Mapping[str, Any], shard: str) -> dict[str, Any]:
    """``cmd`` with the ``readConcern`` of ``shard`` under the active token, if any."""
    snap = _ACTIVE.get()
    if snap is None or "readConcern" not in cmd:
        return dict(cmd)
    return {**cmd, "readConcern": snap.read_concern(shard)}


def record(shards: list[str], replies: list[dict[str, Any]]) -> None:
    """The shards' snapshot times under the active token (no token: nothing to do)."""
    snap = _ACTIVE.get()
    if snap is not None:
        for shard, reply in zip(shards, replies, strict=False):
            snap.record(shard, reply)


def current() -> RouterSnapshot | None:
    return _ACTIVE.get()


class RouterSnapshots:
    """The tokens this router issued, for :data:`HISTORY_S` (and :data:`TOKENS_MAX`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 history_s: float = HISTORY_S) -> None:
        self._clock = clock
        self.history_s = history_s
        self._lock = threading.Lock()
        self._tokens: dict[Timestamp, tuple[RouterSnapshot, float]] = {}
        self._random = random.SystemRandom()

    def begin(self, cmd: Mapping[str, Any]) -> RouterSnapshot | None:
        """The token a ``readConcern: snapshot`` read runs under (None for other levels): a
        new one, or the one its ``atClusterTime`` names (SnapshotTooOld if unknown here)."""
        rc = cmd.get("readConcern")
        if not isinstance(rc, Mapping) or rc.get("level") != "snapshot":
            return None
        now = self._clock()
        at = rc.get("atClusterTime")
        with self._lock:
            for old in [t for t, (_, made) in self._tokens.items()
                        if now - made > self.history_s]:
                del self._tokens[old]
            if at is not None:
                known = self._tokens.get(at)
                if known is None:
                    raise MongoError(SNAPSHOT_TOO_OLD, f"Read timestamp {at} is older than the "
                                     "oldest available timestamp: this router issued no "
                                     "snapshot at that time, or it expired")
                return known[0]
            snap = RouterSnapshot(Timestamp(int(time.time()), self._random.randrange(1, 2**32)))
            self._tokens[snap.time] = (snap, now)
            while len(self._tokens) > TOKENS_MAX:
                del self._tokens[next(iter(self._tokens))]
            return snap

"""What a member does for a read's ``readConcern`` beyond checking it (the check is
:func:`node.commands.generic_args.check_read_concern`): cluster-time waits and snapshot reads.

Cluster time is the state machine's ``Timestamp(seconds, log index)``
(:mod:`node.server.statemachine`); a member compares times by their index (``inc``), which
orders exactly as the log does, whatever the seconds say.

* ``afterClusterTime`` (any level that takes it; drivers' causally consistent sessions send
  their last ``operationTime``): the read waits until this member has applied that index,
  bounded by ``maxTimeMS`` (MaxTimeMSExpired, 50) and ``killOp``. Every applied entry is
  majority-committed (Raft applies nothing else), so ``majority`` waits for the same point. A
  time this set has not issued is refused as MongoDB refuses a time past its cluster time
  (InvalidOptions, 72): at once on the primary (it holds every committed entry); a secondary
  first gives its log a moment to receive it (``Member.follower_grace_s``: it may lag).
* ``snapshot`` (``find``, ``aggregate``, ``distinct``): the command and every later batch of
  its cursor read ONE store snapshot (a pinned read transaction, see
  :func:`node.engine.storage.pinned`), whose cluster time is returned as ``atClusterTime``
  (``cursor.atClusterTime``; top level for ``distinct``). On a secondary that point is its
  last applied entry, which is majority-committed. ``atClusterTime`` given by the client waits
  for that time like ``afterClusterTime``, then reads it if it is still the newest state, or a
  snapshot still pinned at exactly that time (:class:`Snapshots` keeps each snapshot read's
  transaction for :data:`HISTORY_S` seconds, :data:`HISTORY_MAX` at most); anything older is
  SnapshotTooOld (239). MongoDB keeps a window of history (300 s by default) instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bson import Timestamp

from node.commands.deadline import TimeBudget
from node.engine.errors import INVALID_OPTIONS, SNAPSHOT_TOO_OLD, MongoError
from node.engine.storage import pinned
from node.server.statemachine import read_cluster_time

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices

HISTORY_S = 60.0
"""How long a snapshot read's transaction stays pinned for later ``atClusterTime`` reads."""
HISTORY_MAX = 8
"""Snapshots kept for ``atClusterTime`` at most (each holds a store reader slot)."""
_WAIT_CHUNK_S = 0.5


@dataclass(frozen=True)
class ReadConcern:
    """The parts of a (checked) ``readConcern`` a read acts on."""

    level: str | None = None
    after: Timestamp | None = None
    at: Timestamp | None = None

    @property
    def snapshot(self) -> bool:
        return self.level == "snapshot"


def parse(cmd: Mapping[str, Any]) -> ReadConcern:
    spec = cmd.get("readConcern")
    if not isinstance(spec, Mapping):
        return ReadConcern()
    after, at = spec.get("afterClusterTime"), spec.get("atClusterTime")
    return ReadConcern(spec.get("level"), after if isinstance(after, Timestamp) else None,
                       at if isinstance(at, Timestamp) else None)


def wait_for_cluster_time(member: Any, target: Timestamp, name: str,
                          budget: TimeBudget) -> None:
    """Return once ``member`` has applied ``target`` (see the module docstring); raises
    InvalidOptions (72) for a time never issued, MaxTimeMSExpired (50) past ``maxTimeMS``."""
    index = target.inc
    if member.applied_index() >= index:
        return
    with budget.running():
        if member.log_index() < index:
            grace = min(member.follower_grace_s(), budget.remaining_s())
            if grace <= 0 or not member.wait_for(lambda: member.log_index() >= index, grace):
                budget.check()
                raise MongoError(
                    INVALID_OPTIONS, f"readConcern {name} value must not be greater than the "
                    f"current clusterTime. Requested clusterTime: {_show(target)}; current "
                    f"clusterTime: {_show(member.cluster_time())}")
        while member.applied_index() < index:
            budget.check()
            member.wait_for(lambda: member.applied_index() >= index,
                            max(0.0, min(_WAIT_CHUNK_S, budget.remaining_s())))
        budget.check()


def _show(ts: Timestamp) -> str:
    return f"{{ ts: Timestamp({ts.time}, {ts.inc}) }}"


def wait_for_read_concern(node: NodeServices, cmd: Mapping[str, Any],
                          budget: TimeBudget) -> ReadConcern:
    """The read's concern, once ``afterClusterTime``/``atClusterTime`` are satisfied here."""
    rc = parse(cmd)
    if rc.after is not None:
        wait_for_cluster_time(node.member, rc.after, "afterClusterTime", budget)
    if rc.at is not None:
        wait_for_cluster_time(node.member, rc.at, "atClusterTime", budget)
    return rc


class Pin:
    """One open store snapshot and its cluster time; shared by the reads using it and
    ended when the last lets go."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._cm: AbstractContextManager[Any] = store.read()
        self.txn = self._cm.__enter__()
        self.time = read_cluster_time(self.txn)
        self._users = 1
        self._lock = threading.Lock()

    def acquire(self) -> Pin:
        with self._lock:
            self._users += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self._cm.__exit__(None, None, None)

    def active(self) -> AbstractContextManager[None]:
        """Every ``store.read()`` of this context reads this snapshot (for the body)."""
        return pinned(self.store, self.txn)


class PinnedSource(Iterator[dict[str, Any]]):
    """A cursor's documents read inside its snapshot; closing it lets the snapshot go."""

    def __init__(self, pin: Pin, source: Iterator[dict[str, Any]]) -> None:
        self._pin = pin
        self._source = source
        self._closed = False

    def __next__(self) -> dict[str, Any]:
        with self._pin.active():
            return next(self._source)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._source, "close", None)
            if callable(close):
                with self._pin.active():
                    close()
        finally:
            self._pin.release()


class Snapshots:
    """Snapshot reads of one member: opens their pins, and keeps the newest few (by cluster
    time) for :data:`HISTORY_S` so an ``atClusterTime`` read can find its snapshot again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 history_s: float = HISTORY_S, history_max: int = HISTORY_MAX) -> None:
        self._clock = clock
        self.history_s = history_s
        self.history_max = history_max
        self._lock = threading.Lock()
        self._kept: dict[int, tuple[Pin, float]] = {}

    def open(self, store: Any, at: Timestamp | None) -> Pin:
        """A pin at the newest state (kept for later), or at ``at``: the newest state if it is
        exactly that time, a kept snapshot of that time, else SnapshotTooOld (239)."""
        self.expire()
        pin = Pin(store)
        if at is None or pin.time.inc == at.inc:
            self._keep(pin)
            return pin
        with self._lock:
            kept = self._kept.get(at.inc)
            found = kept[0].acquire() if kept is not None and kept[0].store is store else None
        newest = pin.time
        pin.release()
        if found is not None:
            return found
        raise MongoError(SNAPSHOT_TOO_OLD, f"Read timestamp {_show(at)} is older than the "
                         f"oldest available timestamp: this member keeps no snapshot at that "
                         f"time (its newest is {_show(newest)})")

    def _keep(self, pin: Pin) -> None:
        if self.history_max <= 0 or self.history_s <= 0:
            return
        drop: list[Pin] = []
        with self._lock:
            if pin.time.inc in self._kept:
                return
            self._kept[pin.time.inc] = (pin.acquire(), self._clock())
            while len(self._kept) > self.history_max:
                drop.append(self._kept.pop(min(self._kept))[0])
        for old in drop:
            old.release()

    def expire(self) -> None:
        """Let go of kept snapshots older than :data:`HISTORY_S` (also run by a timer)."""
        now = self._clock()
        with self._lock:
            old = [i for i, (_, kept_at) in self._kept.items() if now - kept_at > self.history_s]
            drop = [self._kept.pop(i)[0] for i in old]
        for pin in drop:
            pin.release()

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

    def close(self) -> None:
        with self._lock:
            drop = [pin for pin, _ in self._kept.values()]
            self._kept.clear()
        for pin in drop:
            pin.release()

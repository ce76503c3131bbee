"""Running commands on shards: with the routing version they were routed by, in parallel
where several shards are asked, and again after a StaleConfig answer.

A shard's answer reaches the router's handlers as the reply document the shard gave; only
what no shard answered becomes an error here (a shard with no reachable primary is
HostUnreachable, a code drivers retry). StaleConfig never reaches a client: :meth:`Shards.
routed` marks the collection stale, re-reads its routing table and runs the attempt again
(after a short pause when the shard is inside a migration's critical section).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from helogale.channel import Address
from helogale.errors import PyMongoError
from helogale.read_preferences import ReadPreference, ServerMode
from node.engine.errors import HOST_UNREACHABLE, MongoError
from node.ops import current as ops_current
from node.ops.counters import COUNTERS
from node.sharding.chunks import UNSHARDED, ChunkVersion
from node.sharding.remote import Retry
from router.catalog import CatalogCache, Route
from router.snapshots import for_shard

log = logging.getLogger("helogale.router")

T = TypeVar("T")
STALE_CONFIG = 13388
STALE_RETRY_S = 30.0
"""How long a router keeps re-routing one operation (a migration's critical section lasts
far less)."""
FIRST_PAUSE_S = 0.01
MAX_PAUSE_S = 0.5


class StaleRetries:
    """The re-routing of one operation: at once the first time, then pausing longer and
    longer (a shard inside a critical section, or still catching up), for at most
    ``STALE_RETRY_S``."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.deadline = time.monotonic() + STALE_RETRY_S
        self.pause = 0.0
        self.last: StaleRouting | None = None

    def again(self, exc: StaleRouting) -> None:
        """After ``exc``: wait before the next try, or raise when out of time."""
        self.last = exc
        log.info("routed with a stale version: %s", exc)
        if time.monotonic() >= self.deadline:
            raise MongoError(STALE_CONFIG, f"routing of {self.ns} kept changing: {exc}",
                             code_name="StaleConfig")
        if self.pause:
            time.sleep(self.pause)
        self.pause = min(max(self.pause * 2, FIRST_PAUSE_S), MAX_PAUSE_S)


class StaleRouting(Exception):
    """A shard answered StaleConfig: nothing of that command applied; refresh and retry."""

    def __init__(self, ns: str, reply: Mapping[str, Any]) -> None:
        super().__init__(str(reply.get("errmsg")))
        self.ns = ns
        self.reply = dict(reply)

    @property
    def critical_section(self) -> bool:
        return bool(self.reply.get("criticalSection"))


def is_stale(reply: Mapping[str, Any]) -> bool:
    return reply.get("ok") != 1.0 and reply.get("code") == STALE_CONFIG


def shard_version(route: Route, shard: str) -> ChunkVersion:
    """The version to send ``shard`` for ``route``'s collection."""
    return route.table.shard_version(shard) if route.table is not None else UNSHARDED


class Shards:
    """The router's calls to shards (see module docstring)."""

    def __init__(self, catalog: CatalogCache, workers: int = 64) -> None:
        self.catalog = catalog
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="router-shard")
        self.stale_retries = 0

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def call(self, shard: str, db: str, cmd: Mapping[str, Any], *, retry: Retry = "safe",
             read_preference: ServerMode = ReadPreference.PRIMARY) -> dict[str, Any]:
        """The shard's reply to ``cmd`` (a failure to reach it is an error reply)."""
        return self.call_member(shard, db, cmd, retry=retry, read_preference=read_preference)[0]

    def call_member(self, shard: str, db: str, cmd: Mapping[str, Any], *,
                    retry: Retry = "safe",
                    read_preference: ServerMode = ReadPreference.PRIMARY,
                    address: Address | None = None) -> tuple[dict[str, Any], Address | None]:
        """:meth:`call`, also saying which member answered (``address``: only that one).
        A killed router operation (``killOp``) stops here, before asking a shard again."""
        try:
            ops_current.check_killed()
            return self.catalog.shard(shard).run(db, cmd, retry=retry,
                                                 read_preference=read_preference,
                                                 address=address)
        except MongoError as exc:
            return exc.to_reply(), None
        except PyMongoError as exc:
            return MongoError(HOST_UNREACHABLE, f"shard {shard}: {exc}",
                              code_name="HostUnreachable").to_reply(), None

    def call_many(self, calls: Sequence[tuple[str, str, Mapping[str, Any]]], *,
                  retry: Retry = "safe", read_preference: ServerMode = ReadPreference.PRIMARY
                  ) -> list[dict[str, Any]]:
        """``call`` for several ``(shard, db, cmd)`` at once; replies in the same order."""
        ops_current.check_killed()
        if len(calls) == 1:
            shard, db, cmd = calls[0]
            return [self.call(shard, db, cmd, retry=retry, read_preference=read_preference)]
        futures = [self.pool.submit(contextvars.copy_context().run, self.call, shard, db, cmd,
                                    retry=retry, read_preference=read_preference)
                   for shard, db, cmd in calls]  # (the context: whom the calls act for)
        return [f.result() for f in futures]

    def routed(self, db: str, coll: str, attempt: Callable[[Route], T], *,
               create_db: bool = False, missing: Callable[[], T] | None = None) -> T:
        """Run ``attempt(route)`` until no shard says StaleConfig (``attempt`` raises
        :class:`StaleRouting`); ``missing()`` answers when the database does not exist."""
        ns = f"{db}.{coll}"
        retries = StaleRetries(ns)
        while True:
            route = self.catalog.route(db, coll, create_db=create_db)
            if route is None:
                if missing is None:
                    raise MongoError(26, f"database {db} not found",
                                     code_name="NamespaceNotFound")
                return missing()
            try:
                return attempt(route)
            except StaleRouting as exc:
                self.stale_retries += 1
                COUNTERS.inc("router_stale_config_retries")
                self.catalog.mark_stale(ns, database=route.table is None)
                retries.again(exc)


def versioned(cmd: Mapping[str, Any], route: Route, shard: str) -> dict[str, Any]:
    """``cmd`` with the ``shardVersion`` it is routed by (and, in a snapshot read, the
    ``readConcern`` of that shard: ``router.snapshots``)."""
    return {**for_shard(cmd, shard), "shardVersion": shard_version(route, shard).to_doc()}


def check_stale(ns: str, replies: Sequence[Mapping[str, Any]]) -> None:
    for reply in replies:
        if is_stale(reply):
            raise StaleRouting(ns, reply)

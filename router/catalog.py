"""The router's cache of the cluster's metadata: shards, databases (their primary shard) and
sharded collections (routing tables), read from the config servers.

This is the ONLY code of the router that refreshes metadata over the network. Everything else
asks :meth:`CatalogCache.route` (answered from the cache when it can) and, after a shard
answered StaleConfig, calls :meth:`CatalogCache.mark_stale`, so the next ``route`` reads the
collection again. Concurrent refreshes of one collection share one read of the config servers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node.engine.errors import MongoError
from node.sharding.remote import RemoteSet, RemoteSets
from router.routing_table import RoutingTable

log = logging.getLogger("helogale.router.catalog")

SHARD_NOT_FOUND = 70
NAMESPACE_NOT_FOUND = 26
CONFIG_DBS = frozenset({"config", "admin"})


@dataclass(frozen=True)
class Route:
    """Where a collection lives: its database's primary shard, and its routing table when
    it is sharded (None: the whole collection is on the primary shard)."""

    ns: str
    primary: str
    table: RoutingTable | None

    @property
    def sharded(self) -> bool:
        return self.table is not None


def _ok(reply: Mapping[str, Any], what: str) -> dict[str, Any]:
    if reply.get("ok") != 1.0:
        raise MongoError(int(reply.get("code", 1)), f"{what}: {reply.get('errmsg')}",
                         code_name=reply.get("codeName"))
    return dict(reply)


class CatalogCache:
    """Metadata cache over the config servers (see module docstring)."""

    def __init__(self, config: RemoteSet, remotes: RemoteSets) -> None:
        self.config = config
        self.remotes = remotes
        self._lock = threading.Lock()
        self._shards: dict[str, dict[str, Any]] = {}
        self._dbs: dict[str, dict[str, Any]] = {}
        self._routes: dict[str, Route] = {}
        self._stale: set[str] = set()
        self._ns_locks: dict[str, threading.Lock] = {}
        self.refreshes = 0

    # --- reading the config servers ------------------------------------------------------
    def _find(self, coll: str, filt: Mapping[str, Any]) -> list[dict[str, Any]]:
        reply = _ok(self.config.command("config", {"find": coll, "filter": dict(filt),
                                                   "batchSize": 1_000_000}),
                    f"reading config.{coll}")
        if reply["cursor"]["id"]:
            raise MongoError(1, f"config.{coll} answer too large for one batch")
        return list(reply["cursor"]["firstBatch"])

    # --- shards --------------------------------------------------------------------------
    def shards(self, *, refresh: bool = False) -> dict[str, dict[str, Any]]:
        if refresh or not self._shards:
            found = {d["_id"]: d for d in self._find("shards", {})}
            with self._lock:
                self._shards = found
        return dict(self._shards)

    def shard(self, name: str) -> RemoteSet:
        """The shard's replica set (its ``grpcHost`` connection string)."""
        doc = self.shards().get(name) or self.shards(refresh=True).get(name)
        if doc is None:
            raise MongoError(SHARD_NOT_FOUND, f"Shard {name} not found", code_name="ShardNotFound")
        return self.remotes.get(str(doc["grpcHost"]))

    # --- databases -----------------------------------------------------------------------
    def database(self, db: str, *, create: bool = False) -> dict[str, Any]:
        """``config.databases``' document of ``db`` (created, with a primary shard chosen by
        the config servers, when ``create``); NamespaceNotFound otherwise."""
        found = self._dbs.get(db)
        if found is not None:
            return found
        docs = self._find("databases", {"_id": db})
        if docs:
            doc = docs[0]
        elif create:
            reply = _ok(self.config.command("admin", {"_configsvrCreateDatabase": db}),
                        f"creating database {db}")
            doc = reply["database"]
        else:
            raise MongoError(NAMESPACE_NOT_FOUND, f"database {db} not found",
                             code_name="NamespaceNotFound")
        with self._lock:
            self._dbs[db] = doc
        return doc

    def databases(self) -> list[dict[str, Any]]:
        return self._find("databases", {})

    # --- collections ---------------------------------------------------------------------
    def route(self, db: str, coll: str, *, create_db: bool = False) -> Route | None:
        """Where ``db.coll`` lives; None when its database does not exist (and is not to be
        created)."""
        ns = f"{db}.{coll}"
        with self._lock:
            cached = self._routes.get(ns)
            stale = ns in self._stale
        if cached is not None and not stale:
            return cached
        try:
            dbdoc = self.database(db, create=create_db)
        except MongoError as exc:
            if exc.code == NAMESPACE_NOT_FOUND:
                return None
            raise
        return self._refresh(ns, str(dbdoc["primary"]))

    def _ns_lock(self, ns: str) -> threading.Lock:
        with self._lock:
            return self._ns_locks.setdefault(ns, threading.Lock())

    def _refresh(self, ns: str, primary: str) -> Route:
        with self._ns_lock(ns):
            with self._lock:  # someone else refreshed while we waited for the lock
                cached = self._routes.get(ns)
                if cached is not None and ns not in self._stale:
                    return cached
            colls = [c for c in self._find("collections", {"_id": ns}) if not c.get("dropped")]
            table = None
            if colls:
                table = RoutingTable.build(ns, colls[0], self._find("chunks", {"ns": ns}))
            route = Route(ns, primary, table)
            with self._lock:
                self._routes[ns] = route
                self._stale.discard(ns)
                self.refreshes += 1
        log.debug("routing table refreshed", extra={"fields": {
            "ns": ns, "version": str(table.version) if table else "unsharded"}})
        return route

    def mark_stale(self, ns: str, *, database: bool = False) -> None:
        """The next :meth:`route` of ``ns`` reads the config servers again (and the
        database's document too, with ``database``)."""
        with self._lock:
            self._stale.add(ns)
            if database:
                self._dbs.pop(ns.partition(".")[0], None)

    def forget_database(self, db: str) -> None:
        with self._lock:
            self._dbs.pop(db, None)
            for ns in [n for n in self._routes if n.partition(".")[0] == db]:
                self._stale.add(ns)

    def flush(self) -> None:
        """``flushRouterConfig``: forget everything cached."""
        with self._lock:
            self._shards.clear()
            self._dbs.clear()
            self._stale.update(self._routes)

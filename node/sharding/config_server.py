"""The config-server role: the cluster's metadata and every change to it.

The metadata lives in the ``config`` database in MongoDB's shapes, readable by any driver
through a router (``client.config.chunks.find()``):

* ``config.shards``: ``{_id: name, host: "name/wire1,wire2", grpcHost: "name/g1,g2", state: 1}``
  (``host`` has the members' wire-protocol addresses, so MongoDB's tools can open a shard;
  ``grpcHost`` is what routers and shards dial);
* ``config.databases``: ``{_id: db, primary: shard, partitioned: bool}``;
* ``config.collections``: ``{_id: ns, lastmodEpoch, lastmod, uuid, key: {_id: 1}, unique,
  timestamp}``;
* ``config.chunks``: ``{_id, ns, uuid, min: {_id}, max: {_id}, shard, lastmod, lastmodEpoch}``;
* ``config.version``: ``{_id: 1, clusterId}``.

Every change is ONE ``applyOps`` entry whose preconditions are checked where it applies
(:mod:`node.commands.apply_ops`), majority-committed: two routers splitting the same chunk, or
a split racing a migration commit, cannot both win. The commands here (``_configsvr*``) run on
the config primary; routers call them, and donors call ``_configsvrCommitChunkMigration``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import re
import uuid as _uuid
from collections.abc import Callable, Mapping
from typing import Any

from bson import Binary, MaxKey, MinKey, ObjectId, Timestamp

from node.commands.member import WriteConcern
from node.engine.errors import BAD_VALUE, MongoError
from node.engine.values import SortKey, compare
from node.sharding.chunks import Chunk, ChunkVersion
from node.sharding.remote import RemoteSets, connection_string, parse_connection_string

log = logging.getLogger("helogale.config")

SHARD_NOT_FOUND = 70
NAMESPACE_NOT_FOUND = 26
ILLEGAL_OPERATION = 20
INVALID_OPTIONS = 72
ALREADY_INITIALIZED = 23
OPERATION_FAILED = 96
NAMESPACE_EXISTS = 48
CONFLICTING_OPERATION = 117
MAX_INITIAL_CHUNKS = 8192
PRESPLIT_WINDOW_S = 60.0


def _err(code: int, msg: str, name: str | None = None) -> MongoError:
    return MongoError(code, msg, code_name=name)


def split_ns(ns: Any) -> tuple[str, str]:
    if not isinstance(ns, str) or "." not in ns or ns.startswith(".") or ns.endswith("."):
        raise _err(73, f"Invalid namespace specified '{ns}'", "InvalidNamespace")
    db, _, coll = ns.partition(".")
    return db, coll


class ConfigServer:
    """The config-server role of a member (see module docstring)."""

    def __init__(self, engine: Any, member: Any, my_conn: Callable[[], str]) -> None:
        self._draining: dict[str, Any] = {}
        self.engine = engine
        self.member = member
        self.my_conn = my_conn
        """This config set's connection string (``cfg/g1,g2,g3``), given to shards."""
        self.remotes = RemoteSets()
        self.balancer: Any = None
        """The balancer running on this member (:mod:`node.sharding.balancer`)."""

    def start(self) -> None:
        if self.balancer is not None:
            self.balancer.start()

    def close(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()
        self.remotes.close()

    def status_section(self) -> dict[str, Any]:
        """serverStatus ``sharding`` on a config server member."""
        out: dict[str, Any] = {"clusterRole": "configsvr",
                               "drainingShards": [s["_id"] for s in self._find("shards", {})
                                                  if s.get("draining")]}
        balancer = getattr(self, "balancer", None)
        if balancer is not None:
            out["balancer"] = {"rounds": balancer.rounds, "chunksMoved": balancer.chunks_moved,
                               "inBalancerRound": balancer.in_round}
        return out

    def metrics(self) -> Any:
        """Gauges for the metrics endpoint: shards draining, balancer in a round."""
        from prometheus_client.core import GaugeMetricFamily

        shards = self._find("shards", {})
        yield GaugeMetricFamily("helogale_shards", "shards in the cluster", value=len(shards))
        yield GaugeMetricFamily("helogale_shards_draining", "shards being drained (removeShard)",
                                value=sum(1 for s in shards if s.get("draining")))
        balancer = getattr(self, "balancer", None)
        if balancer is not None:
            yield GaugeMetricFamily("helogale_balancer_in_round", "1 while a round runs",
                                    value=1 if balancer.in_round else 0)

    def set_balancer(self, stopped: bool) -> dict[str, Any]:
        """``balancerStart``/``balancerStop``: ``config.settings`` ``{_id: "balancer"}``."""
        self.commit([{"op": "u", "ns": "config.settings", "o2": {"_id": "balancer"},
                      "o": {"$set": {"stopped": stopped, "mode": "off" if stopped else "full"}},
                      "b": True}], [])
        if self.balancer is not None and not stopped:
            self.balancer.wake()
        return {}

    # --- reading the metadata (the primary's applied, hence committed, state) ---------------
    def _find(self, coll: str, filt: Mapping[str, Any], sort: list[tuple[str, int]] | None = None
              ) -> list[dict[str, Any]]:
        return list(self.engine.collection("config", coll).find(filt, sort=sort))

    def _one(self, coll: str, filt: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self._find(coll, filt)
        return found[0] if found else None

    def shard(self, name: str) -> dict[str, Any]:
        doc = self._one("shards", {"_id": name})
        if doc is None:
            raise _err(SHARD_NOT_FOUND, f"Shard {name} not found", "ShardNotFound")
        return doc

    def collection(self, ns: str) -> dict[str, Any] | None:
        doc = self._one("collections", {"_id": ns})
        return None if doc is None or doc.get("dropped") else doc

    def chunks(self, ns: str) -> list[dict[str, Any]]:
        docs = self._find("chunks", {"ns": ns})
        docs.sort(key=lambda d: SortKey(d["min"]["_id"]))
        return docs

    def collection_version(self, ns: str) -> Timestamp:
        return max((c["lastmod"] for c in self.chunks(ns)), default=Timestamp(0, 0))

    # --- writing it --------------------------------------------------------------------------
    def commit(self, ops: list[dict[str, Any]], preconditions: list[dict[str, Any]]
               ) -> dict[str, Any]:
        """One ``applyOps`` entry, majority-committed; raises what it applied with."""
        self.member.require_writable()
        entry = {"op": "applyOps", "ops": ops, "preCondition": preconditions,
                 "now": _dt.datetime.now(_dt.UTC)}
        result, _ = self.member.submit(entry, WriteConcern(w="majority"))
        if result.get("ok") == 0.0:
            raise MongoError(int(result.get("code", 1)), str(result.get("errmsg")),
                             code_name=result.get("codeName"),
                             details={k: v for k, v in result.items()
                                      if k in ("got", "whatFailed")})
        return dict(result)

    def cluster_id(self) -> ObjectId:
        doc = self._one("version", {"_id": 1})
        if doc is not None:
            return doc["clusterId"]
        cid = ObjectId()
        with contextlib.suppress(MongoError):  # another caller may win the race
            self.commit([{"op": "i", "ns": "config.version", "o": {"_id": 1, "clusterId": cid}}],
                        [{"ns": "config.version", "q": {"_id": 1}, "res": None}])
        return self._one("version", {"_id": 1})["clusterId"]  # type: ignore[index]

    # --- shards ------------------------------------------------------------------------------
    def add_shard(self, conn: str, name: str | None = None) -> dict[str, Any]:
        set_name, hosts = parse_connection_string(conn)
        if set_name is None:
            raise _err(OPERATION_FAILED, "addShard needs a replica set: 'name/host:port,...'",
                       "OperationFailed")
        name = name or set_name
        shard = self.remotes.get(conn)
        reply = shard.command("admin", {"replSetGetConfig": 1})
        if reply.get("ok") != 1.0:
            raise _err(OPERATION_FAILED, f"cannot reach replica set {conn}: "
                       f"{reply.get('errmsg')}", "OperationFailed")
        config = reply["config"]
        if config.get("_id") != set_name:
            raise _err(OPERATION_FAILED, f"the replica set at {hosts[0]} is "
                       f"{config.get('_id')!r}, not {set_name!r}", "OperationFailed")
        members = sorted(config["members"], key=lambda m: m["_id"])
        grpc_hosts = [str(m["host"]) for m in members]
        wire_hosts = [str(m.get("wireHost") or m["host"]) for m in members]
        existing = self._one("shards", {"_id": name})
        if existing is not None:
            if existing.get("grpcHost") == connection_string(set_name, grpc_hosts):
                return {"shardAdded": name}
            raise _err(ILLEGAL_OPERATION, f"a shard named {name} already exists with other "
                       "hosts", "IllegalOperation")
        ident = shard.command("admin", {
            "_shardsvrSetShardIdentity": 1, "shardName": name,
            "configsvrConnectionString": self.my_conn(), "clusterId": self.cluster_id()})
        if ident.get("ok") != 1.0:
            raise _err(OPERATION_FAILED, f"{conn} cannot become a shard: {ident.get('errmsg')}",
                       "OperationFailed")
        doc = {"_id": name, "host": connection_string(set_name, wire_hosts),
               "grpcHost": connection_string(set_name, grpc_hosts), "state": 1}
        self.commit([{"op": "i", "ns": "config.shards", "o": doc}],
                    [{"ns": "config.shards", "q": {"_id": name}, "res": None}])
        log.info("shard added", extra={"fields": {"shard": name, "hosts": doc["grpcHost"]}})
        return {"shardAdded": name}

    def remove_shard(self, name: str) -> dict[str, Any]:
        """MongoDB's ``removeShard``: the first call starts draining (the balancer moves the
        shard's chunks away); later calls report what ``remaining``; once it owns nothing the
        shard is removed (``state: completed``). Databases whose primary it is must be moved
        with ``movePrimary`` (``dbsToMove``)."""
        shard = self.shard(name)
        others = [s for s in self._find("shards", {}) if s["_id"] != name]
        if not others:
            raise _err(ILLEGAL_OPERATION, "can't remove the last shard", "IllegalOperation")
        chunks = self._find("chunks", {"shard": name})
        dbs = [d["_id"] for d in self._find("databases", {"primary": name})]
        self._draining_progress(name, len(chunks), done=not (chunks or dbs)
                                and bool(shard.get("draining")))
        if not shard.get("draining"):
            self.commit([{"op": "u", "ns": "config.shards", "o2": {"_id": name},
                          "o": {"$set": {"draining": True}}}],
                        [{"ns": "config.shards", "q": {"_id": name}, "res": {}}])
            if self.balancer is not None:
                self.balancer.wake()
            return {"msg": "draining started successfully", "state": "started", "shard": name,
                    "note": "you need to call movePrimary for these databases" if dbs else "",
                    "dbsToMove": dbs}
        if chunks or dbs:
            return {"msg": "draining ongoing", "state": "ongoing", "shard": name,
                    "remaining": {"chunks": len(chunks), "dbs": len(dbs),
                                  "jumboChunks": sum(1 for c in chunks if c.get("jumbo"))},
                    "note": "you need to call movePrimary for these databases" if dbs else "",
                    "dbsToMove": dbs}
        self.commit([{"op": "d", "ns": "config.shards", "o": {"_id": name}}],
                    [{"ns": "config.shards", "q": {"_id": name}, "res": {}}])
        return {"msg": "removeshard completed successfully", "state": "completed",
                "shard": name}

    def _draining_progress(self, name: str, remaining: int, done: bool) -> None:
        """Draining as long work (``currentOp``, periodic lines): chunks moved off so far,
        updated whenever ``removeShard`` is asked again."""
        from node.ops.progress import Progress

        work = self._draining.get(name)
        if work is None and not done:
            work = self._draining[name] = Progress("draining", total=remaining, unit="chunks",
                                                   shard=name)
        if work is None:
            return
        work.set(max(0, (work.total or 0) - remaining))
        if done:
            work.finish()
            del self._draining[name]

    def move_primary(self, db: str, to: str) -> dict[str, Any]:
        """``movePrimary`` of a database with no unsharded data (its unsharded collections
        would have to be copied, which is not built yet)."""
        doc = self.database(db, create=False)
        target = self.shard(to)
        if doc["primary"] == to:
            return {"primary": to}
        if target.get("draining"):
            raise _err(ILLEGAL_OPERATION, f"shard {to} is draining", "IllegalOperation")
        old = self.shard(doc["primary"])
        remote = self.remotes.get(old["grpcHost"])
        listed = remote.command(db, {"listCollections": 1, "nameOnly": True})
        sharded = {c["_id"] for c in self._find("collections", {})}
        for coll in (listed.get("cursor") or {}).get("firstBatch", []):
            if f"{db}.{coll['name']}" in sharded:
                continue
            count = remote.command(db, {"count": coll["name"]})
            if count.get("n"):
                raise _err(ILLEGAL_OPERATION, f"movePrimary of {db}: its unsharded collection "
                           f"{coll['name']} holds documents; copying unsharded collections "
                           "between shards is not supported yet", "IllegalOperation")
        self.commit([{"op": "u", "ns": "config.databases", "o2": {"_id": db},
                      "o": {"$set": {"primary": to}}}],
                    [{"ns": "config.databases", "q": {"_id": db},
                      "res": {"primary": doc["primary"]}}])
        return {"primary": to}

    def mark_jumbo(self, ns: str, chunk: Mapping[str, Any]) -> None:
        """A chunk too big to move that cannot be split (one ``_id`` value)."""
        self.commit([{"op": "u", "ns": "config.chunks", "o2": {"_id": chunk["_id"]},
                      "o": {"$set": {"jumbo": True}}}],
                    [{"ns": "config.chunks", "q": {"_id": chunk["_id"]},
                      "res": {"lastmod": chunk["lastmod"]}}])
        log.warning("jumbo chunk", extra={"fields": {"ns": ns, "min": repr(chunk["min"]),
                                                     "shard": chunk["shard"]}})

    def merge_chunks(self, ns: str, lo: Any, hi: Any) -> dict[str, Any]:
        """``mergeChunks``: the contiguous chunks covering exactly ``[lo, hi)``, all on one
        shard, become one chunk (a minor version up)."""
        coll = self.collection(ns)
        if coll is None:
            raise _err(NAMESPACE_NOT_FOUND, f"{ns} is not sharded", "NamespaceNotFound")
        chunks = self.chunks(ns)
        inside = [c for c in chunks if compare(c["min"]["_id"], lo) >= 0
                  and compare(c["max"]["_id"], hi) <= 0]
        if not inside or compare(inside[0]["min"]["_id"], lo) != 0 \
                or compare(inside[-1]["max"]["_id"], hi) != 0:
            raise _err(ILLEGAL_OPERATION, f"could not merge chunks, collection {ns} has no "
                       f"chunks starting at {lo!r} and ending at {hi!r}", "IllegalOperation")
        if len(inside) < 2:
            raise _err(ILLEGAL_OPERATION, f"could not merge chunks, collection {ns} already "
                       f"contains a single chunk for [{lo!r}, {hi!r})", "IllegalOperation")
        if len({c["shard"] for c in inside}) != 1:
            raise _err(ILLEGAL_OPERATION, f"could not merge chunks of {ns}: the range spans "
                       "several shards", "IllegalOperation")
        top = self.collection_version(ns)
        epoch = coll["lastmodEpoch"]
        merged = Chunk(lo, hi, inside[0]["shard"], ChunkVersion(top.time, top.inc + 1, epoch))
        ops = [{"op": "d", "ns": "config.chunks", "o": {"_id": c["_id"]}} for c in inside]
        ops.append({"op": "i", "ns": "config.chunks",
                    "o": merged.to_doc(ns, coll.get("uuid"), ObjectId())})
        conditions = [{"ns": "config.chunks", "q": {"_id": c["_id"]},
                       "res": {"shard": c["shard"], "lastmod": c["lastmod"]}} for c in inside]
        conditions.append({"ns": "config.chunks", "q": {"ns": ns, "lastmod": {"$gt": top}},
                           "res": None})
        self.commit(ops, conditions)
        return {}

    # --- databases ---------------------------------------------------------------------------
    def database(self, db: str, *, create: bool, partitioned: bool = False) -> dict[str, Any]:
        if db in ("admin", "config", "local"):
            raise _err(INVALID_OPTIONS, f"database {db} lives on the config servers",
                       "InvalidOptions")
        doc = self._one("databases", {"_id": db})
        if doc is not None:
            if partitioned and not doc.get("partitioned"):
                self.commit([{"op": "u", "ns": "config.databases", "o2": {"_id": db},
                              "o": {"$set": {"partitioned": True}}}], [])
                doc["partitioned"] = True
            return doc
        if not create:
            raise _err(NAMESPACE_NOT_FOUND, f"database {db} not found", "NamespaceNotFound")
        shards = self._find("shards", {})
        if not shards:
            raise _err(SHARD_NOT_FOUND, "no shards: addShard first", "ShardNotFound")
        counts = {s["_id"]: 0 for s in shards}
        for d in self._find("databases", {}):
            if d.get("primary") in counts:
                counts[d["primary"]] += 1
        primary = min(counts, key=lambda s: (counts[s], s))
        doc = {"_id": db, "primary": primary, "partitioned": partitioned,
               "version": {"uuid": Binary(_uuid.uuid4().bytes, 4),
                           "timestamp": Timestamp(int(_dt.datetime.now(_dt.UTC).timestamp()), 1),
                           "lastMod": 1}}
        try:
            self.commit([{"op": "i", "ns": "config.databases", "o": doc}],
                        [{"ns": "config.databases", "q": {"_id": db}, "res": None}])
        except MongoError as exc:
            if exc.code != BAD_VALUE:
                raise
            found = self._one("databases", {"_id": db})  # another router created it
            if found is None:
                raise
            return found
        return doc

    # --- collections -------------------------------------------------------------------------
    def shard_collection(self, ns: str, key: Mapping[str, Any], unique: bool,
                         initial_chunks: int = 1, window_s: float = PRESPLIT_WINDOW_S
                         ) -> dict[str, Any]:
        """Shard ``ns`` by ``_id``: one chunk on the database's primary shard, or, with
        ``initial_chunks`` N > 1 on an empty collection, N chunks presplit by ObjectId time
        (boundaries every ``window_s`` seconds from now) dealt round-robin to the shards, so
        that inserts of fresh ObjectIds move from shard to shard as time passes."""
        db, coll = split_ns(ns)
        if not 1 <= initial_chunks <= MAX_INITIAL_CHUNKS:
            raise _err(INVALID_OPTIONS, f"numInitialChunks must be between 1 and "
                       f"{MAX_INITIAL_CHUNKS}", "InvalidOptions")
        if window_s <= 0:
            raise _err(INVALID_OPTIONS, "presplitWindowSecs must be positive", "InvalidOptions")
        if dict(key) != {"_id": 1}:
            raise _err(INVALID_OPTIONS, f"only {{_id: 1}} shard keys are supported; got "
                       f"{dict(key)!r}", "InvalidOptions")
        dbdoc = self.database(db, create=True, partitioned=True)
        existing = self.collection(ns)
        if existing is not None:
            return {"collectionsharded": ns, "collectionUUID": existing.get("uuid"),
                    "alreadySharded": True}
        primary = self.shard(dbdoc["primary"])
        remote = self.remotes.get(primary["grpcHost"])
        created = remote.command(db, {"create": coll})
        if created.get("ok") != 1.0 and created.get("code") != NAMESPACE_EXISTS:
            raise _err(OPERATION_FAILED, f"cannot create {ns} on {primary['_id']}: "
                       f"{created.get('errmsg')}", "OperationFailed")
        if remote.command(db, {"collStats": coll}).get("capped"):
            raise _err(INVALID_OPTIONS, f"can't shard a capped collection: {ns}",
                       "InvalidOptions")
        listed = remote.command(db, {"listIndexes": coll})
        for spec in (listed.get("cursor") or {}).get("firstBatch", []):
            first = next(iter(spec.get("key", {})), None)
            if spec.get("unique") and first != "_id":
                raise _err(INVALID_OPTIONS, f"can't shard collection '{ns}' with unique index "
                           f"on {dict(spec['key'])} and proposed shard key {{ _id: 1 }}. "
                           "Uniqueness can't be maintained unless shard key is a prefix",
                           "InvalidOptions")
        epoch = ObjectId()
        uuid = Binary(_uuid.uuid4().bytes, 4)
        now = _dt.datetime.now(_dt.UTC)
        cdoc = {"_id": ns, "lastmodEpoch": epoch, "lastmod": now, "uuid": uuid,
                "key": {"_id": 1}, "unique": bool(unique),
                "timestamp": Timestamp(int(now.timestamp()), 1)}
        owners = [primary["_id"]]
        if initial_chunks > 1:
            if remote.command(db, {"count": coll}).get("n"):
                raise _err(INVALID_OPTIONS, "numInitialChunks is only supported when the "
                           "collection is empty", "InvalidOptions")
            others = sorted(s["_id"] for s in self._find("shards", {})
                            if s["_id"] != primary["_id"] and not s.get("draining"))
            owners += others
        bounds: list[Any] = [MinKey()]
        bounds += [ObjectId.from_datetime(now + _dt.timedelta(seconds=window_s * k))
                   for k in range(1, initial_chunks)]
        bounds.append(MaxKey())
        ops = [{"op": "i", "ns": "config.collections", "o": cdoc}]
        for k in range(initial_chunks):
            chunk = Chunk(bounds[k], bounds[k + 1], owners[k % len(owners)],
                          ChunkVersion(1, k, epoch))
            ops.append({"op": "i", "ns": "config.chunks",
                        "o": chunk.to_doc(ns, uuid, ObjectId())})
        self.commit(ops, [{"ns": "config.collections", "q": {"_id": ns}, "res": None}])
        for name in sorted(set(owners[:initial_chunks])):
            self._tell_refresh(self.shard(name)["grpcHost"], ns)
        log.info("collection sharded", extra={"fields": {"ns": ns, "epoch": str(epoch)}})
        return {"collectionsharded": ns, "collectionUUID": uuid}

    def _tell_refresh(self, conn: str, ns: str) -> None:
        try:
            self.remotes.get(conn).command("admin", {"_shardsvrRefresh": ns})
        except Exception:  # the shard refreshes by itself when a router sends the version
            log.warning("shard refresh notification failed", exc_info=True)

    def _chunk_at(self, ns: str, lo: Any) -> dict[str, Any]:
        doc = self._one("chunks", {"ns": ns, "min": {"_id": lo}})
        if doc is None:
            raise _err(BAD_VALUE, f"no chunk of {ns} starts at {lo!r}")
        return doc

    def split_chunk(self, ns: str, lo: Any, hi: Any, points: list[Any]) -> dict[str, Any]:
        coll = self.collection(ns)
        if coll is None:
            raise _err(NAMESPACE_NOT_FOUND, f"{ns} is not sharded", "NamespaceNotFound")
        chunk = self._chunk_at(ns, lo)
        if compare(chunk["max"]["_id"], hi) != 0:
            raise _err(BAD_VALUE, f"chunk of {ns} at {lo!r} does not end at {hi!r}")
        ordered: list[Any] = []
        for p in sorted(points, key=SortKey):
            if not ordered or compare(ordered[-1], p) != 0:
                ordered.append(p)
        points = ordered
        for p in points:
            if compare(p, lo) <= 0 or compare(p, hi) >= 0:
                raise _err(BAD_VALUE, f"split key {p!r} is not inside the chunk "
                           f"[{lo!r}, {hi!r})")
        if not points:
            raise _err(BAD_VALUE, "no split point given")
        epoch = coll["lastmodEpoch"]
        top = self.collection_version(ns)
        bounds = [lo, *points, hi]
        ops: list[dict[str, Any]] = [{"op": "d", "ns": "config.chunks", "o": {"_id": chunk["_id"]}}]
        for i in range(len(bounds) - 1):
            version = ChunkVersion(top.time, top.inc + 1 + i, epoch)
            new = Chunk(bounds[i], bounds[i + 1], chunk["shard"], version)
            ops.append({"op": "i", "ns": "config.chunks",
                        "o": new.to_doc(ns, coll.get("uuid"), ObjectId())})
        self.commit(ops, [
            {"ns": "config.chunks", "q": {"_id": chunk["_id"]},
             "res": {"shard": chunk["shard"], "lastmod": chunk["lastmod"]}},
            {"ns": "config.chunks", "q": {"ns": ns, "lastmod": {"$gt": top}}, "res": None}])
        return {}

    # --- migrations ----------------------------------------------------------------------
    def register_migration(self, mid: ObjectId, ns: str, lo: Any, hi: Any, from_shard: str,
                           to_shard: str) -> dict[str, Any]:
        """Record a migration about to start (``config.migrations``, state ``active``): its
        commit needs this document still active, so whoever decides its outcome first (the
        donor's commit, or a new donor primary aborting it) wins, exactly once."""
        if self.collection(ns) is None:
            raise _err(NAMESPACE_NOT_FOUND, f"{ns} is not sharded", "NamespaceNotFound")
        self.shard(to_shard)
        chunk = self._chunk_at(ns, lo)
        if chunk["shard"] != from_shard or compare(chunk["max"]["_id"], hi) != 0:
            raise _err(BAD_VALUE, f"chunk [{lo!r}, {hi!r}) of {ns} is not on {from_shard}")
        doc = {"_id": mid, "ns": ns, "min": lo, "max": hi, "fromShard": from_shard,
               "toShard": to_shard, "state": "active", "started": _dt.datetime.now(_dt.UTC)}
        try:
            self.commit([{"op": "i", "ns": "config.migrations", "o": doc}], [
                {"ns": "config.chunks", "q": {"_id": chunk["_id"]},
                 "res": {"shard": from_shard}},
                {"ns": "config.migrations", "q": {"ns": ns, "state": "active"}, "res": None}])
        except MongoError as exc:
            if exc.code == BAD_VALUE:
                raise _err(CONFLICTING_OPERATION, f"another migration of {ns} is in progress "
                           "or the chunk changed", "ConflictingOperationInProgress") from None
            raise
        return {}

    def migration_outcome(self, mid: ObjectId, abort: bool) -> str:
        """``committed``, ``aborted`` or ``active`` (``unknown``: never registered); with
        ``abort`` an active migration is aborted first, so it can no longer commit."""
        for _ in range(3):
            doc = self._one("migrations", {"_id": mid})
            if doc is None:
                return "unknown"
            if doc["state"] != "active" or not abort:
                return str(doc["state"])
            try:
                self.commit([{"op": "u", "ns": "config.migrations", "o2": {"_id": mid},
                              "o": {"$set": {"state": "aborted"}}}],
                            [{"ns": "config.migrations", "q": {"_id": mid},
                              "res": {"state": "active"}}])
                return "aborted"
            except MongoError as exc:
                if exc.code != BAD_VALUE:
                    raise
        raise _err(CONFLICTING_OPERATION, f"migration {mid} keeps changing",
                   "ConflictingOperationInProgress")

    def commit_migration(self, ns: str, lo: Any, hi: Any, from_shard: str, to_shard: str,
                         mid: ObjectId | None = None) -> dict[str, Any]:
        coll = self.collection(ns)
        if coll is None:
            raise _err(NAMESPACE_NOT_FOUND, f"{ns} is not sharded", "NamespaceNotFound")
        self.shard(to_shard)
        chunk = self._chunk_at(ns, lo)
        if chunk["shard"] == to_shard:
            return {"alreadyCommitted": True}
        if chunk["shard"] != from_shard or compare(chunk["max"]["_id"], hi) != 0:
            raise _err(BAD_VALUE, f"chunk [{lo!r}, {hi!r}) of {ns} is not on {from_shard}")
        epoch = coll["lastmodEpoch"]
        top = self.collection_version(ns)
        moved = Timestamp(top.time + 1, 0)
        ops: list[dict[str, Any]] = [{"op": "u", "ns": "config.chunks", "o2": {"_id": chunk["_id"]},
                                      "o": {"$set": {"shard": to_shard, "lastmod": moved,
                                                     "lastmodEpoch": epoch}}}]
        control = next((c for c in self.chunks(ns)
                        if c["shard"] == from_shard and c["_id"] != chunk["_id"]), None)
        if control is not None:  # the donor's version moves too: stale routers hear of it
            ops.append({"op": "u", "ns": "config.chunks", "o2": {"_id": control["_id"]},
                        "o": {"$set": {"lastmod": Timestamp(top.time + 1, 1)}}})
        conditions = [
            {"ns": "config.chunks", "q": {"_id": chunk["_id"]},
             "res": {"shard": from_shard, "lastmod": chunk["lastmod"]}},
            {"ns": "config.chunks", "q": {"ns": ns, "lastmod": {"$gt": top}}, "res": None}]
        if mid is not None:  # the migration must still be active: not aborted by a recovery
            ops.append({"op": "u", "ns": "config.migrations", "o2": {"_id": mid},
                        "o": {"$set": {"state": "committed"}}})
            conditions.append({"ns": "config.migrations", "q": {"_id": mid},
                               "res": {"state": "active"}})
        self.commit(ops, conditions)
        log.info("migration committed", extra={"fields": {
            "ns": ns, "from": from_shard, "to": to_shard,
            "version": f"{moved.time}|{moved.inc}"}})
        return {}

    def move_chunk(self, ns: str, lo: Any, hi: Any, to_shard: str, wait_for_delete: bool
                   ) -> dict[str, Any]:
        coll = self.collection(ns)
        if coll is None:
            raise _err(NAMESPACE_NOT_FOUND, f"{ns} is not sharded", "NamespaceNotFound")
        chunk = self._chunk_at(ns, lo)
        if compare(chunk["max"]["_id"], hi) != 0:
            raise _err(BAD_VALUE, f"no chunk [{lo!r}, {hi!r}) in {ns}")
        to = self.shard(to_shard)
        if chunk["shard"] == to_shard:
            return {"millis": 0, "note": "chunk already on that shard"}
        if to.get("draining"):
            raise _err(ILLEGAL_OPERATION, f"shard {to_shard} is draining", "IllegalOperation")
        donor = self.shard(chunk["shard"])
        reply = self.remotes.get(donor["grpcHost"]).command("admin", {
            "_shardsvrMoveRange": ns, "min": lo, "max": hi, "toShard": to_shard,
            "toShardHost": to["grpcHost"], "waitForDelete": wait_for_delete},
            retry="refused", timeout=None)
        if reply.get("ok") != 1.0:
            raise MongoError(int(reply.get("code", OPERATION_FAILED)),
                             f"moveChunk failed: {reply.get('errmsg')}",
                             code_name=reply.get("codeName"))
        return {k: v for k, v in reply.items() if k != "ok"}

    def drop_collection(self, ns: str) -> dict[str, Any]:
        """Forget ``ns``'s sharding metadata and tell the shards that held chunks."""
        coll = self.collection(ns)
        if coll is None:
            return {"dropped": False}
        chunks = self.chunks(ns)
        shards = sorted({c["shard"] for c in chunks})
        ops = [{"op": "d", "ns": "config.chunks", "o": {"_id": c["_id"]}} for c in chunks]
        ops.append({"op": "d", "ns": "config.collections", "o": {"_id": ns}})
        self.commit(ops, [{"ns": "config.collections", "q": {"_id": ns},
                           "res": {"lastmodEpoch": coll["lastmodEpoch"]}}])
        for name in shards:
            with contextlib.suppress(MongoError):
                self._tell_refresh(self.shard(name)["grpcHost"], ns)
        return {"dropped": True, "shards": shards}

    def drop_database(self, db: str) -> dict[str, Any]:
        for coll in self._find("collections", {"_id": {"$regex": f"^{re.escape(db)}\\."}}):
            self.drop_collection(coll["_id"])
        doc = self._one("databases", {"_id": db})
        if doc is not None:
            self.commit([{"op": "d", "ns": "config.databases", "o": {"_id": db}}], [])
        return {"dropped": db}

"""The shard role of a member: routing-version checks (on arrival and where entries apply),
refreshing what it owns from the config servers, and recording the writes a chunk migration
must send again.

* :meth:`ShardState.check_command` (the dispatcher's routing seam) looks at a command's
  ``shardVersion`` before its handler runs. A router that is behind gets StaleConfig (13388)
  and refreshes; when the router knows more (a newer version, another epoch), the primary
  first refreshes its own ownership from the config servers and checks again.
* :meth:`ShardState.check_entry` (the state machine's guard) checks the same inside the
  entry's transaction, against replicated state only, so every member decides alike: a write
  routed with a stale version, to a collection in a migration's critical section, or for an
  ``_id`` this shard does not own, is refused whole (nothing of it applies) and the router
  retries it where it belongs.
* :meth:`ShardState.on_change` (the engine's change observer) records, in the writing
  transaction, the record keys written inside the range a migration is donating, so the
  catch-up phase survives a failover of the donor.
"""

from __future__ import annotations

import datetime as _dt
import logging
import struct
import threading
from collections.abc import Mapping
from typing import Any

import bson
from bson import ObjectId

from node.commands.context import RequestContext
from node.commands.member import WriteConcern
from node.engine.errors import BAD_VALUE, MongoError
from node.engine.keystring import encode_key
from node.sharding import ownership as own
from node.sharding.chunks import UNSHARDED, ChunkVersion, KeyRange
from node.sharding.remote import RemoteSets

log = logging.getLogger("helogale.sharding")

MIGRATION_KEY = b"migration"
MODS_SEQ_KEY = b"migration_seq"
MODS_TABLE = "migration_mods"
SHARD_KEY_NOT_FOUND = 61
ROUTED_WRITES = frozenset({"insert", "update", "delete", "findAndModify"})
_U64 = struct.Struct(">Q")


def command_namespace(db: str, command: Mapping[str, Any]) -> str | None:
    """The collection a (possibly ``explain``-wrapped) command names, as ``db.coll``."""
    name = next(iter(command), None)
    if name == "explain" and isinstance(command.get("explain"), Mapping):
        return command_namespace(db, command["explain"])
    coll = command.get(name) if name is not None else None
    return f"{db}.{coll}" if isinstance(coll, str) else None


def parse_shard_version(value: Any) -> ChunkVersion:
    try:
        return ChunkVersion.from_doc(value)
    except ValueError:
        raise MongoError(BAD_VALUE, f"invalid shardVersion {value!r}: expected {{e: ObjectId, "
                         "v: Timestamp}") from None


def _upsert_id(query: Mapping[str, Any]) -> Any:
    """The ``_id`` an upsert on a sharded collection inserts: its query's ``_id`` equality
    (at the top or in a top-level ``$and``, as the router targets it)."""
    value = query.get("_id", _MISSING)
    ands = query.get("$and")
    if value is _MISSING and isinstance(ands, list):
        for sub in ands:
            if isinstance(sub, Mapping):
                try:
                    return _upsert_id(sub)
                except MongoError:
                    continue
    if isinstance(value, Mapping) and set(value) == {"$eq"}:
        value = value["$eq"]
    if value is _MISSING or (isinstance(value, Mapping) and any(
            str(k).startswith("$") for k in value)):
        raise MongoError(SHARD_KEY_NOT_FOUND, "Failed to target upsert by query :: could not "
                         "extract exact shard key", code_name="ShardKeyNotFound")
    return value


_MISSING = object()


class MigrationCache:
    """The decoded active migration document by its stored bytes."""

    def __init__(self) -> None:
        self._raw: bytes | None = None
        self._doc: dict[str, Any] | None = None
        self._range: KeyRange | None = None

    def get(self, txn: Any) -> tuple[dict[str, Any] | None, KeyRange | None]:
        raw = txn.get(own.TABLE, MIGRATION_KEY)
        if raw is None:
            return None, None
        raw = bytes(raw)
        if raw != self._raw:
            doc = bson.decode(raw, codec_options=own.CODEC)
            self._raw, self._doc = raw, doc
            self._range = KeyRange.of(doc["min"], doc["max"])
        return self._doc, self._range


class ShardState:
    """The shard role (see module docstring). ``member`` proposes entries (refreshes)."""

    def __init__(self, engine: Any, store: Any, member: Any) -> None:
        self.engine = engine
        self.store = store
        self.member = member
        self.cache = own.OwnershipCache()
        self.migrations = MigrationCache()
        engine.ownership = own.OwnershipFilter(self.cache)
        engine.changes = self
        self.remotes = RemoteSets()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def close(self) -> None:
        self.remotes.close()

    # --- what this shard is --------------------------------------------------------------
    def identity(self) -> dict[str, Any] | None:
        with self.store.read() as txn:
            return own.read_identity(txn)

    @property
    def shard_name(self) -> str | None:
        ident = self.identity()
        return None if ident is None else str(ident.get("shardName"))

    def ownership(self, ns: str) -> own.CollectionOwnership | None:
        with self.store.read() as txn:
            return self.cache.get(txn, ns)

    def config_servers(self) -> Any:
        ident = self.identity()
        if ident is None:
            raise MongoError(own.SHARD_NOT_FOUND, "this replica set is not a shard of any "
                             "cluster yet (addShard has not reached it)",
                             code_name="ShardNotFound")
        return self.remotes.get(str(ident["configsvrConnectionString"]))

    # --- arrival ---------------------------------------------------------------------------
    def check_command(self, db: str, command: Mapping[str, Any]) -> None:
        value = command.get("shardVersion")
        if value is None and isinstance(command.get("explain"), Mapping):
            value = command["explain"].get("shardVersion")
        if value is None:
            return
        ns = command_namespace(db, command)
        if ns is None:
            return
        received = parse_shard_version(value)
        current = self.ownership(ns)
        try:
            own.check_version(current, ns, received, self.shard_name)
            return
        except MongoError:
            if not self._is_primary():
                # a member that is not (or no longer) primary says so first: the router's
                # view of who is primary is what is stale, not its routing table
                self._refuse_unless_servable(command)
                raise
            if not self._router_knows_more(current, received):
                raise
        self.refresh(ns)
        own.check_version(self.ownership(ns), ns, received, self.shard_name)

    def _refuse_unless_servable(self, command: Mapping[str, Any]) -> None:
        """NotWritablePrimary for a write, NotPrimaryNoSecondaryOk for a read that needs the
        primary (what the handler would answer on this member)."""
        name = next(iter(command), None)
        if name in ROUTED_WRITES or name == "findandmodify":
            self.member.require_writable()
        self.member.check_readable(command, RequestContext())

    @staticmethod
    def _router_knows_more(current: own.CollectionOwnership | None,
                           received: ChunkVersion) -> bool:
        mine = own.shard_version(current)
        if current is not None and current.critical:
            return False
        if received.epoch != mine.epoch:
            return True
        return received.major > mine.major

    def _is_primary(self) -> bool:
        try:
            self.member.require_writable()
        except MongoError:
            return False
        return True

    # --- refreshing from the config servers ------------------------------------------------
    def _lock(self, ns: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(ns, threading.Lock())

    def read_config_ownership(self, ns: str) -> dict[str, Any] | None:
        """What the config servers say this shard owns of ``ns`` (None: not sharded)."""
        cfg = self.config_servers()
        me = self.shard_name
        reply = cfg.command("config", {"find": "collections", "filter": {"_id": ns},
                                       "limit": 1, "singleBatch": True})
        _check(reply)
        batch = reply["cursor"]["firstBatch"]
        if not batch or batch[0].get("dropped"):
            return None
        coll = batch[0]
        epoch: ObjectId = coll["lastmodEpoch"]
        reply = cfg.command("config", {"find": "chunks", "filter": {"ns": ns},
                                       "batchSize": 1_000_000})
        _check(reply)
        chunks = reply["cursor"]["firstBatch"]
        if reply["cursor"]["id"]:
            raise MongoError(1, f"too many chunks for {ns} to refresh in one batch")
        if not chunks:
            return None
        top = max(c["lastmod"] for c in chunks)
        mine = [(c["min"]["_id"], c["max"]["_id"], c["lastmod"]) for c in chunks
                if c["shard"] == me]
        return own.ownership_doc(ns, epoch, coll.get("uuid"), mine,
                                 ChunkVersion.from_lastmod(top, epoch))

    def refresh(self, ns: str, *, leave_critical: bool = False) -> None:
        """Read what this shard owns of ``ns`` from the config servers and make it replicated
        state (one ``shardOwnership`` entry, majority-committed). Primary only."""
        with self._lock(ns):
            doc = self.read_config_ownership(ns)
            entry: dict[str, Any] = {"op": "shardOwnership", "ns": ns, "ownership": doc}
            if leave_critical:
                entry["leaveCritical"] = True
            self.propose(entry)
        log.info("shard ownership refreshed", extra={"fields": {
            "ns": ns, "version": None if doc is None else str(doc["version"])}})

    def propose(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Replicate and apply one entry of this role, majority-committed; its result, or
        the MongoError it applied with."""
        entry.setdefault("now", _dt.datetime.now(_dt.UTC))
        result, _ = self.member.submit(entry, WriteConcern(w="majority"))
        if isinstance(result, Mapping) and result.get("ok") == 0.0:
            raise MongoError(int(result.get("code", 1)), str(result.get("errmsg")),
                             code_name=result.get("codeName"))
        return dict(result)

    # --- where entries apply ---------------------------------------------------------------
    def check_entry(self, txn: Any, entry: Mapping[str, Any]) -> None:
        op = entry.get("op")
        if op not in ROUTED_WRITES:
            return
        ns = f"{entry['db']}.{entry['coll']}"
        current = self.cache.get(txn, ns)
        value = entry.get("shardVersion")
        if value is None:
            if current is not None and current.critical:
                ident = own.read_identity(txn)
                raise own.stale_config(ns, UNSHARDED, current.version,
                                       ident and ident.get("shardName"), "critical section")
            return
        received = ChunkVersion.from_doc(value)
        ident = own.read_identity(txn)
        shard = ident.get("shardName") if ident else None
        own.check_version(current, ns, received, shard)
        if current is None:
            return
        for _id in _ids_written(entry):
            if not current.owns(encode_key(_id)):
                raise own.stale_config(ns, received, current.version, shard,
                                       f"_id {_id!r} is not owned by this shard")

    # --- migrations: the writes to send again ----------------------------------------------
    def on_change(self, txn: Any, ns: str, record_key: bytes) -> None:
        mig, rng = self.migrations.get(txn)
        if mig is None or rng is None or mig.get("role") != "donor" or mig.get("ns") != ns:
            return
        if not rng.contains(record_key):
            return
        raw = txn.get(own.TABLE, MODS_SEQ_KEY)
        seq = _U64.unpack(raw)[0] + 1 if raw else 1
        txn.put(own.TABLE, MODS_SEQ_KEY, _U64.pack(seq))
        txn.put(MODS_TABLE, _U64.pack(seq), record_key)


def _ids_written(entry: Mapping[str, Any]) -> list[Any]:
    """The ``_id``s a routed write will create: inserted documents and upserts."""
    op = entry["op"]
    if op == "insert":
        return [d["_id"] for d in entry["docs"]]
    if op == "update":
        return [_upsert_id(st["q"]) for st in entry["updates"] if st.get("upsert")]
    if op == "findAndModify" and entry.get("upsert"):
        return [_upsert_id(entry["query"])]
    return []


def _check(reply: Mapping[str, Any]) -> None:
    if reply.get("ok") != 1.0:
        raise MongoError(int(reply.get("code", 1)), f"config servers: {reply.get('errmsg')}")

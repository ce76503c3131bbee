"""What a shard owns, kept as replicated data: its identity and, per sharded collection, the
chunk ranges it owns, their version and any critical section.

Stored in the shard's own store (table ``shard_meta``) and changed ONLY by log entries
(:data:`APPLIERS`), so every member, secondaries too, answers the same and a restart or a
snapshot keeps it:

* ``b"identity"``: ``{shardName, configsvrConnectionString, clusterId}``, set once by
  ``addShard`` (``shardIdentity`` entries);
* ``b"coll:" + ns``: ``{ns, epoch, uuid, version: Timestamp(major, minor), chunks: [[min, max],
  ...], critical: None | {reason}}`` (``shardOwnership`` entries set what a refresh read from
  the config servers; ``shardCriticalSection`` entries enter and leave a migration's critical
  section). A collection with no document here is not sharded as far as this shard knows.

:class:`OwnershipFilter` is the engine's ownership seam (``Engine.ownership``): reads and
multi-writes of a sharded collection see only the records whose ``_id`` lies in an owned range
(documents a migration left behind, or brought in before its commit, are invisible).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import bson
from bson import ObjectId, Timestamp
from bson.codec_options import CodecOptions

from node.engine.errors import MongoError
from node.sharding.chunks import UNSHARDED, ChunkVersion, KeyRange, RangeSet

TABLE = "shard_meta"
IDENTITY_KEY = b"identity"
CODEC = CodecOptions(document_class=dict, tz_aware=True)
STALE_CONFIG = 13388
SHARD_NOT_FOUND = 70
ILLEGAL_OPERATION = 20


def coll_key(ns: str) -> bytes:
    return b"coll:" + ns.encode()


@dataclass(frozen=True)
class CollectionOwnership:
    """One sharded collection as this shard knows it."""

    ns: str
    epoch: ObjectId
    uuid: Any
    version: ChunkVersion
    """The shard version: the highest version among the chunks this shard owns (or the
    collection's major version with minor 0 when it owns none)."""
    chunks: tuple[tuple[Any, Any], ...]
    critical: Mapping[str, Any] | None = None
    owned: RangeSet = field(default_factory=lambda: RangeSet(()))

    @staticmethod
    def from_doc(doc: Mapping[str, Any]) -> CollectionOwnership:
        epoch = doc["epoch"]
        version = ChunkVersion.from_lastmod(doc["version"], epoch)
        chunks = tuple((c[0], c[1]) for c in doc.get("chunks", ()))
        return CollectionOwnership(doc["ns"], epoch, doc.get("uuid"), version, chunks,
                                   doc.get("critical"),
                                   RangeSet(KeyRange.of(lo, hi) for lo, hi in chunks))

    def to_doc(self) -> dict[str, Any]:
        return {"ns": self.ns, "epoch": self.epoch, "uuid": self.uuid,
                "version": self.version.timestamp(),
                "chunks": [[lo, hi] for lo, hi in self.chunks], "critical": self.critical}

    def owns(self, record_key: bytes) -> bool:
        return self.owned.contains(record_key)


class OwnershipCache:
    """Decoded ownership documents by their stored bytes (re-decoded only when they change)."""

    def __init__(self) -> None:
        self._by_raw: dict[bytes, CollectionOwnership] = {}

    def get(self, txn: Any, ns: str) -> CollectionOwnership | None:
        raw = txn.get(TABLE, coll_key(ns))
        if raw is None:
            return None
        raw = bytes(raw)
        found = self._by_raw.get(raw)
        if found is None:
            if len(self._by_raw) > 4096:
                self._by_raw.clear()
            found = self._by_raw[raw] = CollectionOwnership.from_doc(
                bson.decode(raw, codec_options=CODEC))
        return found


class OwnershipFilter:
    """``Engine.ownership``: the owned ranges of ``ns`` as of ``txn`` (None: not sharded here,
    every record is visible)."""

    def __init__(self, cache: OwnershipCache | None = None) -> None:
        self.cache = cache or OwnershipCache()

    def owned(self, txn: Any, ns: str) -> RangeSet | None:
        own = self.cache.get(txn, ns)
        return None if own is None else own.owned


# --- reading ------------------------------------------------------------------------------------


def read_identity(txn: Any) -> dict[str, Any] | None:
    raw = txn.get(TABLE, IDENTITY_KEY)
    return None if raw is None else bson.decode(bytes(raw), codec_options=CODEC)


def shard_version(own: CollectionOwnership | None) -> ChunkVersion:
    return UNSHARDED if own is None else own.version


def stale_config(ns: str, received: ChunkVersion, wanted: ChunkVersion, shard: str | None,
                 why: str = "") -> MongoError:
    """StaleConfig (13388), with the versions a router needs to decide how to refresh."""
    msg = (f"version mismatch detected for {ns}: received {received}, this shard has "
           f"{wanted}" + (f" ({why})" if why else ""))
    return MongoError(STALE_CONFIG, msg, code_name="StaleConfig", details={
        "ns": ns, "vReceived": received.to_doc(), "vWanted": wanted.to_doc(),
        "shardId": shard, **({"criticalSection": True} if why == "critical section" else {})})


def check_version(own: CollectionOwnership | None, ns: str, received: ChunkVersion,
                  shard: str | None) -> None:
    """Raise StaleConfig unless ``received`` (a router's) is write compatible with what this
    shard owns of ``ns``, and ``ns`` is not in a migration's critical section."""
    mine = shard_version(own)
    if not received.write_compatible(mine):
        raise stale_config(ns, received, mine, shard)
    if own is not None and own.critical:
        raise stale_config(ns, received, mine, shard, "critical section")


# --- log entries ----------------------------------------------------------------------------------


def apply_shard_identity(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """``{op: shardIdentity, identity: {shardName, configsvrConnectionString, clusterId}}``:
    set once; the same identity again is a no-op, a different shard name is refused."""
    new = dict(entry["identity"])
    old = read_identity(txn)
    if old is not None and old.get("shardName") != new.get("shardName"):
        raise MongoError(ILLEGAL_OPERATION, f"this replica set is already shard "
                         f"{old.get('shardName')!r}; it cannot become {new.get('shardName')!r}",
                         code_name="IllegalOperation")
    txn.put(TABLE, IDENTITY_KEY, bson.encode(new))
    return {}


def apply_shard_ownership(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """``{op: shardOwnership, ns, ownership: {...} | None}``: what a refresh read from the
    config servers. An older version of the same epoch never replaces a newer one (two
    refreshes racing); None (the collection is not sharded) removes the entry. A critical
    section in progress is kept unless the entry says to leave it (``leaveCritical``)."""
    ns = entry["ns"]
    key = coll_key(ns)
    raw = txn.get(TABLE, key)
    old = None if raw is None else CollectionOwnership.from_doc(
        bson.decode(bytes(raw), codec_options=CODEC))
    doc = entry.get("ownership")
    if doc is None:
        if old is not None and old.critical and not entry.get("leaveCritical"):
            return {"changed": False}
        txn.delete(TABLE, key)
        return {"changed": old is not None}
    new = CollectionOwnership.from_doc(doc)
    if old is not None and old.epoch == new.epoch and old.version.newer_than(new.version):
        return {"changed": False}
    out = new.to_doc()
    if old is not None and old.critical and not entry.get("leaveCritical") \
            and old.epoch == new.epoch:
        out["critical"] = old.critical
    txn.put(TABLE, key, bson.encode(out))
    return {"changed": True}


def apply_critical_section(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """``{op: shardCriticalSection, ns, enter: bool, reason}``: while set, routed reads and
    writes of ``ns`` are refused with StaleConfig (a router waits and retries)."""
    key = coll_key(entry["ns"])
    raw = txn.get(TABLE, key)
    if raw is None:
        raise MongoError(ILLEGAL_OPERATION, f"{entry['ns']} is not sharded on this shard",
                         code_name="IllegalOperation")
    doc = bson.decode(bytes(raw), codec_options=CODEC)
    doc["critical"] = {"reason": entry.get("reason")} if entry.get("enter") else None
    txn.put(TABLE, key, bson.encode(doc))
    return {}


APPLIERS = {
    "shardIdentity": apply_shard_identity,
    "shardOwnership": apply_shard_ownership,
    "shardCriticalSection": apply_critical_section,
}


def ownership_doc(ns: str, epoch: ObjectId, uuid: Any, chunks: list[tuple[Any, Any, Timestamp]],
                  collection_version: ChunkVersion) -> dict[str, Any]:
    """The ownership document for the chunks (``(min, max, lastmod)``) this shard owns: its
    version is the highest lastmod among them, or ``major|0`` of the collection when none."""
    if chunks:
        top = max(c[2] for c in chunks)
        version = Timestamp(top.time, top.inc)
    else:
        version = Timestamp(collection_version.major, 0)
    return {"ns": ns, "epoch": epoch, "uuid": uuid, "version": version,
            "chunks": [[lo, hi] for lo, hi, _ in sorted(chunks, key=lambda c: KeyRange.of(
                c[0], c[1]).lo)], "critical": None}

"""The log entries of chunk migrations and range deletion, as applied on every member of a
shard. Deterministic: they read and write only the entry's transaction.

* ``migrationState``: ``{set: {id, ns, min, max, role: donor|recipient, peer}}`` registers
  THE migration this shard takes part in (one at a time; another is refused with
  ConflictingOperationInProgress), ``{clear: id, rangeDeletion: {...}?}`` ends it, drops the
  donor's record of writes to send again, and may queue a range deletion.
* ``migrateApply``: ``{ns, docs, deletes}`` on a recipient: documents of an incoming range
  stored by ``_id`` (replacing what is there) and records deleted by key, never touching a
  record this shard owns.
* ``deleteRange``: ``{ns, min, max, limit, task}``: deletes up to ``limit`` records of the range
  that this shard does not own; when fewer remain, the queued task ``task`` is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bson

from node.engine.errors import MongoError
from node.engine.keystring import encode_key
from node.server.statemachine import SESSIONS
from node.sharding import ownership as own
from node.sharding.chunks import KeyRange
from node.sharding.shard_state import MIGRATION_KEY, MODS_SEQ_KEY, MODS_TABLE

CONFLICTING_OPERATION = 117
RANGE_DELETION_PREFIX = b"rangeDeletion:"


def _split(ns: str) -> tuple[str, str]:
    db, _, coll = ns.partition(".")
    return db, coll


def read_migration(txn: Any) -> dict[str, Any] | None:
    raw = txn.get(own.TABLE, MIGRATION_KEY)
    return None if raw is None else bson.decode(bytes(raw), codec_options=own.CODEC)


def range_deletions(txn: Any) -> list[dict[str, Any]]:
    """Queued range deletions, oldest first."""
    end = RANGE_DELETION_PREFIX[:-1] + bytes([RANGE_DELETION_PREFIX[-1] + 1])
    return [bson.decode(bytes(v), codec_options=own.CODEC)
            for _, v in txn.scan(own.TABLE, RANGE_DELETION_PREFIX, end)]


def apply_migration_state(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    current = read_migration(txn)
    if entry.get("set") is not None:
        new = dict(entry["set"])
        if current is not None and current["id"] != new["id"]:
            raise MongoError(CONFLICTING_OPERATION, f"this shard already takes part in "
                             f"migration {current['id']} of {current['ns']}",
                             code_name="ConflictingOperationInProgress")
        txn.put(own.TABLE, MIGRATION_KEY, bson.encode(new))
        return {}
    ended = current is not None and current["id"] == entry.get("clear")
    if ended:
        txn.delete(own.TABLE, MIGRATION_KEY)
        txn.delete(own.TABLE, MODS_SEQ_KEY)
        txn.drop_table(MODS_TABLE)
    task = entry.get("rangeDeletion")
    if task is not None and (ended or entry.get("force")):
        txn.put(own.TABLE, RANGE_DELETION_PREFIX + str(task["id"]).encode(),
                bson.encode(dict(task)))
    return {"ended": ended}


def apply_migrate_apply(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    ns = entry["ns"]
    current = read_migration(txn)
    if current is None or current["id"] != entry["migrationId"] or current["role"] != "recipient":
        raise MongoError(CONFLICTING_OPERATION, f"no incoming migration {entry['migrationId']}"
                         f" on this shard", code_name="ConflictingOperationInProgress")
    owned = own.OwnershipFilter().owned(txn, ns)
    if owned is None:  # without ownership metadata every record would be visible
        raise MongoError(own.ILLEGAL_OPERATION, f"{ns} is not sharded on this shard",
                         code_name="IllegalOperation")
    rng = KeyRange.of(current["min"], current["max"])
    coll = engine.collection(*_split(ns))
    docs = entry.get("docs") or []
    for doc in docs:
        key = encode_key(doc["_id"])
        if not rng.contains(key) or owned.contains(key):
            raise MongoError(own.ILLEGAL_OPERATION, f"migrated document {doc['_id']!r} is "
                             "outside the incoming range", code_name="IllegalOperation")
    keys = [bytes(k) for k in entry.get("deletes") or []]
    for key in keys:
        if not rng.contains(key) or owned.contains(key):
            raise MongoError(own.ILLEGAL_OPERATION, "migrated deletion outside the incoming "
                             "range", code_name="IllegalOperation")
    put = coll.put_records(txn, docs)
    deleted = coll.delete_records(txn, keys)
    for item in entry.get("sessions") or []:
        merge_session(txn, bytes(item["key"]), item["record"])
    return {"n": put, "deleted": deleted}


def merge_session(txn: Any, key: bytes, record: Mapping[str, Any]) -> None:
    """A session's retryable-write record arriving with a chunk: kept when this shard knows
    nothing newer of the session; the same transaction's statements are united. It is marked
    ``migrated``: a retry of that transaction with a statement it lacks is refused
    (IncompleteTransactionHistory), since that statement may have run on the donor."""
    raw = txn.get(SESSIONS, key)
    incoming = dict(record)
    if raw is not None:
        mine = bson.decode(bytes(raw), codec_options=own.CODEC)
        if int(mine["txnNumber"]) > int(incoming["txnNumber"]):
            return
        if int(mine["txnNumber"]) == int(incoming["txnNumber"]):
            incoming["stmts"] = {**mine.get("stmts", {}), **incoming.get("stmts", {})}
            incoming["colls"] = sorted({*mine.get("colls", ()), *incoming.get("colls", ())})
    incoming["migrated"] = True
    txn.put(SESSIONS, key, bson.encode(incoming))


def apply_delete_range(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    ns = entry["ns"]
    rng = KeyRange.of(entry["min"], entry["max"])
    owned = own.OwnershipFilter().owned(txn, ns)
    coll = engine.collection(*_split(ns))
    limit = int(entry.get("limit") or 0)
    # no ownership metadata: the collection is no longer sharded here; delete nothing
    keys = [] if owned is None else coll.record_keys(txn, rng.lo, rng.hi, limit,
                                                     skip=owned.contains)
    n = coll.delete_records(txn, keys)
    done = not limit or n < limit
    task = entry.get("task")
    if done and task is not None:
        txn.delete(own.TABLE, RANGE_DELETION_PREFIX + str(task).encode())
    return {"n": n, "done": done}


APPLIERS = {
    "migrationState": apply_migration_state,
    "migrateApply": apply_migrate_apply,
    "deleteRange": apply_delete_range,
}


def task_doc(task_id: Any, ns: str, lo: Any, hi: Any) -> Mapping[str, Any]:
    return {"id": task_id, "ns": ns, "min": lo, "max": hi}

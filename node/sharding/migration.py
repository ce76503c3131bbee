"""Moving a chunk between shards: the donor's side (:class:`MigrationSource`), the recipient's
(:class:`MigrationDestination`) and the donor's range deleter (:class:`RangeDeleter`).

The donor primary leads (``_shardsvrMoveRange``), every step a majority-committed entry:

1. **register**: ``migrationState`` (donor). From now on every write inside the range is
   recorded (its record key, in the writing transaction) for the catch-up.
2. **start** the recipient (``_recvChunkStart``): it refreshes its ownership (so the incoming
   documents stay invisible until the commit), registers itself, builds the indexes and
   clears leftovers of an earlier attempt.
3. **clone**: the range's documents, read from one snapshot, in batches (``_recvChunkBatch``
   -> ``migrateApply`` entries on the recipient).
4. **catch up**: the documents written meanwhile (their current state, or their deletion),
   round after round until few remain.
5. **critical section** on the donor (``shardCriticalSection``): routed reads and writes of
   the collection are refused with StaleConfig (routers wait and retry); the last changes go.
6. **commit** on the config servers (``_configsvrCommitChunkMigration``, one ``applyOps``
   with preconditions: the chunk moves, the collection's major version goes up, one chunk
   left on the donor gets the new version too). The outcome is always learned from the
   config servers, never guessed.
7. The donor refreshes its ownership and leaves the critical section in ONE entry; routers
   that still route with the old version get StaleConfig and refresh; the recipient refreshes
   and ends its part.
8. The donor queues the range for deletion (``rangeDeletion`` task); :class:`RangeDeleter`
   deletes the records it no longer owns in small throttled batches, resumably.

Any failure before the commit aborts: the critical section ends, the recipient drops what it
received (a range deletion of documents it never owned).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import bson
from bson import Binary, ObjectId

from node import failpoints
from node.engine.collection import decode_doc, docs_table
from node.engine.errors import BAD_VALUE, MongoError
from node.engine.values import compare
from node.ops.counters import COUNTERS
from node.ops.progress import Progress
from node.server.periodic import Periodic
from node.server.statemachine import SESSIONS, decode_entry
from node.sharding import ownership as own
from node.sharding.chunks import KeyRange
from node.sharding.migration_ops import range_deletions, read_migration, task_doc
from node.sharding.shard_state import MODS_TABLE, ShardState

log = logging.getLogger("helogale.migration")

BATCH_DOCS = 2000
BATCH_BYTES = 4 * 1024 * 1024
STEADY_MODS = 64
MAX_CATCH_UP_ROUNDS = 30
DELETE_BATCH = 500
DELETE_PAUSE_S = 0.01
COMMIT_TIMEOUT_S = 120.0
_U64_LEN = 8


def _split(ns: str) -> tuple[str, str]:
    db, _, coll = ns.partition(".")
    return db, coll


def check_ok(reply: Mapping[str, Any], what: str) -> dict[str, Any]:
    if reply.get("ok") != 1.0:
        raise MongoError(int(reply.get("code", 1)), f"{what}: {reply.get('errmsg')}",
                         code_name=reply.get("codeName"))
    return dict(reply)


class MigrationSource:
    """One chunk leaving this shard (see module docstring); ``run()`` returns the reply."""

    def __init__(self, state: ShardState, ns: str, lo: Any, hi: Any, to_shard: str,
                 to_conn: str, *, wait_for_delete: bool = False,
                 deleter: RangeDeleter | None = None) -> None:
        self.state = state
        self.ns = ns
        self.lo, self.hi = lo, hi
        self.range = KeyRange.of(lo, hi)
        self.to_shard = to_shard
        self.to_conn = to_conn
        self.wait_for_delete = wait_for_delete
        self.deleter = deleter
        self.id = ObjectId()
        self.progress: dict[str, Any] = {"phase": "registered", "docsCloned": 0,
                                         "modsSent": 0, "rounds": 0}

    # --- the protocol ---------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        state = self.state
        state.refresh(self.ns)  # splits since the last refresh: the chunk must be known exactly
        current = state.ownership(self.ns)
        if current is None or not any(
                compare(lo, self.lo) == 0 and compare(hi, self.hi) == 0
                for lo, hi in current.chunks):
            raise own.stale_config(self.ns, own.shard_version(current),
                                   own.shard_version(current), state.shard_name,
                                   "this shard does not own that chunk")
        started = time.monotonic()
        self.work = Progress("migration", unit="docs", ns=self.ns, migrationId=self.id,
                             toShard=self.to_shard)
        try:
            return self._run(started)
        finally:
            self.work.finish()

    def _run(self, started: float) -> dict[str, Any]:
        state = self.state
        self._record("registered")
        try:
            check_ok(state.config_servers().command("admin", {
                "_configsvrRegisterMigration": self.ns, "migrationId": self.id,
                "min": self.lo, "max": self.hi, "fromShard": state.shard_name,
                "toShard": self.to_shard}, retry="safe"), "the config servers refused it")
        except BaseException:
            state.propose({"op": "migrationState", "clear": self.id})
            raise
        recipient = state.remotes.get(self.to_conn)
        try:
            self._record("cloning")
            check_ok(recipient.command("admin", {
                "_recvChunkStart": self.ns, "migrationId": self.id, "min": self.lo,
                "max": self.hi, "fromShard": state.shard_name,
                "indexes": self._index_specs()}), "recipient refused to start")
            self._clone(recipient)
            self._record("catching up")
            last = 0
            for _ in range(MAX_CATCH_UP_ROUNDS):
                sent, last = self._send_mods(recipient, last)
                self.progress["rounds"] += 1
                if sent < STEADY_MODS:
                    break
            self._record("critical section")
            state.propose({"op": "shardCriticalSection", "ns": self.ns, "enter": True,
                           "reason": {"migration": self.id}})
            self._send_mods(recipient, last)
            self._send_sessions(recipient)
            self._record("committing")
            committed = self._commit()
        except BaseException as exc:
            COUNTERS.inc("migrations", outcome="aborted")
            log.warning("migration aborted", extra={"fields": {
                "ns": self.ns, "migrationId": str(self.id), "error": str(exc)}})
            if not abort_or_finish(state, self._doc(), self.deleter):
                raise
            committed = True
        else:
            if not committed:
                abort_or_finish(state, self._doc(), self.deleter)
                raise MongoError(own.STALE_CONFIG, f"migration of {self.ns} was not committed: "
                                 "the config servers' metadata changed meanwhile",
                                 code_name="StaleConfig")
            COUNTERS.inc("migrations", outcome="committed")
            self._phase("committed")
            failpoints.hit("migrationHang.committed")
            finish_commit(state, self._doc(), self.deleter)
        if self.wait_for_delete and self.deleter is not None:
            self._phase("deleting range")
            self.deleter.run_task(task_doc(self.id, self.ns, self.lo, self.hi))
        self._phase("done")
        return {"millis": int((time.monotonic() - started) * 1000),
                **{k: v for k, v in self.progress.items() if k != "phase"}}

    def _doc(self) -> dict[str, Any]:
        return {"id": self.id, "ns": self.ns, "min": self.lo, "max": self.hi, "role": "donor",
                "peer": self.to_shard, "peerHost": self.to_conn}

    def _record(self, phase: str) -> None:
        """Enter ``phase``: recorded on the donor (a replicated entry) before it starts."""
        self._phase(phase)
        self.state.propose({"op": "migrationState", "set": {**self._doc(), "phase": phase}})
        failpoints.hit(f"migrationHang.{phase}")

    def _phase(self, phase: str) -> None:
        self.progress["phase"] = phase
        work = getattr(self, "work", None)
        if work is not None:
            work.op.extra = {**(work.op.extra or {}), "phase": phase}
        COUNTERS.inc("migration_phases", phase=phase)
        log.info("migration phase", extra={"fields": {"ns": self.ns,
                                                       "migrationId": str(self.id),
                                                       "phase": phase}})

    def _index_specs(self) -> list[dict[str, Any]]:
        from node.commands import engine_ops

        db, coll = _split(self.ns)
        return [s for s in engine_ops.list_indexes(self.state.engine, db, coll, missing_ok=True)
                if s.get("name") != "_id_"]

    def _batches(self, docs: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        size = 0
        for doc in docs:
            n = len(bson.encode(doc))
            if batch and (len(batch) >= BATCH_DOCS or size + n > BATCH_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(doc)
            size += n
        if batch:
            yield batch

    def _clone(self, recipient: Any) -> None:
        table = docs_table(self.ns)
        with self.state.store.read() as snap:
            docs = (decode_doc(bytes(raw)) for _, raw in snap.scan(table, self.range.lo,
                                                                   self.range.hi))
            for batch in self._batches(docs):
                self._send(recipient, docs=batch)
                self.progress["docsCloned"] += len(batch)
                self.work.advance(len(batch))
                COUNTERS.inc("migration_docs_cloned", len(batch))

    def _send(self, recipient: Any, *, docs: list[dict[str, Any]] | None = None,
              deletes: list[bytes] | None = None,
              sessions: list[dict[str, Any]] | None = None) -> None:
        check_ok(recipient.command("admin", {
            "_recvChunkBatch": self.ns, "migrationId": self.id, "docs": docs or [],
            "deletes": [Binary(k) for k in deletes or []], "sessions": sessions or []}),
            "recipient refused a batch")

    def _send_sessions(self, recipient: Any) -> None:
        """Inside the critical section (no write to the collection can add to them): the
        retryable-write records of every session that wrote to the collection go with the
        chunk, so a write retried on the recipient is recognised (or refused with
        IncompleteTransactionHistory), never applied twice."""
        records: list[dict[str, Any]] = []
        with self.state.store.read() as txn:
            for key, raw in txn.scan(SESSIONS):
                rec = decode_entry(bytes(raw))
                if self.ns in (rec.get("colls") or ()):
                    records.append({"key": Binary(bytes(key)), "record": rec})
        for i in range(0, len(records), BATCH_DOCS):
            self._send(recipient, sessions=records[i:i + BATCH_DOCS])
        self.progress["sessions"] = len(records)

    def _send_mods(self, recipient: Any, after: int) -> tuple[int, int]:
        """Send the current state of every record written since mod ``after``; returns
        (records sent, last mod seen)."""
        keys: dict[bytes, None] = {}
        last = after
        start = (after + 1).to_bytes(_U64_LEN, "big")
        with self.state.store.read() as txn:
            for seq, key in txn.scan(MODS_TABLE, start):
                keys[bytes(key)] = None
                last = int.from_bytes(bytes(seq), "big")
            table = docs_table(self.ns)
            upserts: list[dict[str, Any]] = []
            deletes: list[bytes] = []
            for key in keys:
                raw = txn.get(table, key)
                if raw is None:
                    deletes.append(key)
                else:
                    upserts.append(decode_doc(bytes(raw)))
        for batch in self._batches(iter(upserts)):
            self._send(recipient, docs=batch)
        for i in range(0, len(deletes), BATCH_DOCS):
            self._send(recipient, deletes=deletes[i:i + BATCH_DOCS])
        self.progress["modsSent"] += len(keys)
        return len(keys), last

    def _commit(self) -> bool:
        """Commit on the config servers; True once they say it committed. A commit that can
        no longer succeed (its preconditions failed: the chunk changed) is aborted there."""
        cfg = self.state.config_servers()
        cmd = {"_configsvrCommitChunkMigration": self.ns, "min": self.lo, "max": self.hi,
               "fromShard": self.state.shard_name, "toShard": self.to_shard,
               "migrationId": self.id}
        while True:
            try:
                reply = cfg.command("admin", cmd, retry="safe")
            except Exception:
                log.warning("migration commit: config servers unreachable", exc_info=True)
                reply = {}
            if reply.get("ok") == 1.0:
                return True
            refused = reply.get("code") == BAD_VALUE  # a precondition failed
            try:
                outcome = migration_outcome(self.state, self.id, abort=refused)
            except Exception:
                outcome = "active"
            if outcome != "active":
                return outcome == "committed"
            time.sleep(0.2)  # still undecided (config servers unreachable): ask again


def migration_outcome(state: ShardState, mid: Any, *, abort: bool) -> str:
    """What the config servers decided for migration ``mid``: ``committed``, ``aborted``,
    ``active`` or ``unknown`` (never registered); with ``abort`` an active one is aborted
    first, so that it can no longer commit."""
    reply = check_ok(state.config_servers().command(
        "admin", {"_configsvrMigrationOutcome": mid, "abort": abort}, retry="safe"),
        "migration outcome")
    return str(reply["state"])


def finish_commit(state: ShardState, doc: Mapping[str, Any],
                  deleter: RangeDeleter | None) -> None:
    """The donor's side after the config servers committed: its ownership (and the end of
    the critical section) in one entry, the recipient told, the range queued for deletion."""
    ns = str(doc["ns"])
    state.refresh(ns, leave_critical=True)
    peer = doc.get("peerHost")
    if peer:
        try:
            state.remotes.get(str(peer)).command(
                "admin", {"_recvChunkCommit": ns, "migrationId": doc["id"]})
        except Exception:  # it recovers by itself (MigrationRecovery), or on a router's version
            log.warning("recipient did not hear of the commit", exc_info=True)
    task = task_doc(doc["id"], ns, doc["min"], doc["max"])
    state.propose({"op": "migrationState", "clear": doc["id"], "rangeDeletion": task})
    if deleter is not None:
        deleter.wake()


def abort_or_finish(state: ShardState, doc: Mapping[str, Any],
                    deleter: RangeDeleter | None) -> bool:
    """End a donor's migration that did not finish here: abort it on the config servers
    (unless it committed after all, then finish the commit: returns True), leave the critical
    section, forget it, and tell the recipient."""
    outcome = migration_outcome(state, doc["id"], abort=True)
    if outcome == "committed":
        finish_commit(state, doc, deleter)
        return True
    ns = str(doc["ns"])
    current = state.ownership(ns)
    if current is not None and current.critical:
        state.propose({"op": "shardCriticalSection", "ns": ns, "enter": False})
    state.propose({"op": "migrationState", "clear": doc["id"]})
    peer = doc.get("peerHost")
    if peer:
        try:
            state.remotes.get(str(peer)).command(
                "admin", {"_recvChunkAbort": ns, "migrationId": doc["id"]})
        except Exception:  # it recovers by itself
            log.warning("recipient did not hear of the abort", exc_info=True)
    log.info("migration aborted", extra={"fields": {"ns": ns, "id": str(doc["id"])}})
    return False


class MigrationRecovery:
    """On a shard's primary: finish or roll back the migration a previous primary left
    (its replicated record says which). A donor asks the config servers, aborting it there
    if it had not committed; a recipient waits for the outcome, then refreshes (committed) or
    drops what it received (aborted)."""

    def __init__(self, state: ShardState, in_flight: Callable[[], Any],
                 deleter: RangeDeleter | None) -> None:
        self.state = state
        self.in_flight = in_flight
        self.deleter = deleter
        self.recovered = 0

    def check(self) -> str | None:
        """One look; returns what was done (``committed``/``aborted``), else None."""
        with self.state.store.read() as txn:
            doc = read_migration(txn)
        if doc is None:
            return None
        running = self.in_flight()
        if running is not None and running == doc["id"]:
            return None
        if doc["role"] == "donor":
            done = "committed" if abort_or_finish(self.state, doc, self.deleter) else "aborted"
        else:
            done = self._recipient(doc)
        if done is not None:
            self.recovered += 1
            log.info("migration recovered", extra={"fields": {
                "ns": doc["ns"], "id": str(doc["id"]), "role": doc["role"], "outcome": done}})
        return done

    def _recipient(self, doc: Mapping[str, Any]) -> str | None:
        state = self.state
        ns = str(doc["ns"])
        outcome = migration_outcome(state, doc["id"], abort=False)
        if outcome == "active":
            return None  # the donor decides
        state.refresh(ns)
        if outcome == "committed":
            state.propose({"op": "migrationState", "clear": doc["id"]})
            return "committed"
        task = task_doc(doc["id"], ns, doc["min"], doc["max"])
        state.propose({"op": "migrationState", "clear": doc["id"], "rangeDeletion": task})
        if self.deleter is not None:
            self.deleter.wake()
        return "aborted"


class MigrationDestination:
    """The recipient's commands, on its primary."""

    def __init__(self, state: ShardState) -> None:
        self.state = state

    def start(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        state = self.state
        ns = str(cmd["_recvChunkStart"])
        lo, hi = cmd["min"], cmd["max"]
        state.refresh(ns)
        current = state.ownership(ns)
        if current is None:
            raise MongoError(own.ILLEGAL_OPERATION, f"{ns} is not sharded according to the "
                             "config servers", code_name="IllegalOperation")
        rng = KeyRange.of(lo, hi)
        if current.owned.overlaps(rng.lo, rng.hi):
            raise MongoError(own.ILLEGAL_OPERATION, f"this shard already owns part of the "
                             f"incoming range of {ns}", code_name="IllegalOperation")
        state.propose({"op": "migrationState", "set": {
            "id": cmd["migrationId"], "ns": ns, "min": lo, "max": hi, "role": "recipient",
            "peer": cmd.get("fromShard")}})
        db, coll = _split(ns)
        specs = [dict(s) for s in cmd.get("indexes") or []]
        if specs:
            state.propose({"op": "createIndexes", "db": db, "coll": coll, "indexes": specs})
        while not state.propose({"op": "deleteRange", "ns": ns, "min": lo, "max": hi,
                                 "limit": DELETE_BATCH})["done"]:
            pass
        return {}

    def batch(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        return self.state.propose({
            "op": "migrateApply", "ns": str(cmd["_recvChunkBatch"]),
            "migrationId": cmd["migrationId"], "docs": list(cmd.get("docs") or []),
            "deletes": [bytes(k) for k in cmd.get("deletes") or []],
            "sessions": list(cmd.get("sessions") or [])})

    def commit(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        ns = str(cmd["_recvChunkCommit"])
        self.state.refresh(ns)
        self.state.propose({"op": "migrationState", "clear": cmd["migrationId"]})
        return {}

    def abort(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        ns = str(cmd["_recvChunkAbort"])
        with self.state.store.read() as txn:
            current = read_migration(txn)
        if current is None or current["id"] != cmd["migrationId"]:
            return {"ended": False}
        task = task_doc(cmd["migrationId"], ns, current["min"], current["max"])
        return self.state.propose({"op": "migrationState", "clear": cmd["migrationId"],
                                   "rangeDeletion": task})


class RangeDeleter:
    """Deletes queued ranges on the shard primary, in small batches with a pause between
    them (foreground writes keep their share); resumable: the queue is replicated state."""

    def __init__(self, state: ShardState, is_primary: Callable[[], bool],
                 interval_s: float = 1.0) -> None:
        self.state = state
        self.is_primary = is_primary
        self._busy = threading.Lock()
        self.deleted = 0
        self._periodic = Periodic("range-deleter", self.run_pending, interval_s, log,
                                  allowed=is_primary, expected=(MongoError,))

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def wake(self) -> None:
        self._periodic.wake()

    def pending(self) -> list[dict[str, Any]]:
        with self.state.store.read() as txn:
            return range_deletions(txn)

    def run_task(self, task: Mapping[str, Any]) -> int:
        """Delete one queued range to the end; returns how many records went."""
        n = 0
        with self._busy, Progress("rangeDeletion", unit="docs", ns=str(task["ns"]),
                                  migrationId=task["id"]) as work:
            while not self._periodic.stopping and not work.killed:
                out = self.state.propose({"op": "deleteRange", "ns": task["ns"],
                                          "min": task["min"], "max": task["max"],
                                          "limit": DELETE_BATCH, "task": task["id"]})
                n += int(out.get("n", 0))
                work.set(n)
                if out.get("done"):
                    break
                time.sleep(DELETE_PAUSE_S)
        self.deleted += n
        COUNTERS.inc("range_deletions")
        COUNTERS.inc("range_deletion_docs", n)
        return n

    def run_pending(self) -> None:
        """Delete every queued range (one pass of the background job)."""
        for task in self.pending():
            self.run_task(task)

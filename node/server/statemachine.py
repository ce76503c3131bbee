"""Applies committed Raft entries to the engine, one store transaction per entry.

An entry is a BSON document ``{op, db, ...}`` that the primary fully resolved before proposing
(ObjectIds, upsert ids, ``now``), so applying it is deterministic on every member. For each entry
the state machine, in ONE write transaction of the store:

1. if the entry carries a session (``lsid``, ``txnNumber``) already recorded, returns the
   recorded reply without applying anything (a retried write counts once);
2. runs the op's applier (``node.commands`` registers one per write command) against the txn;
3. records the reply under the session (retryable writes, with the entry's ``now`` as the
   session's last use, for pruning: see ``node.commands.sessions``) and the entry's log index.

So after a crash the store says exactly which index was applied last, and a write is either
fully applied with its bookkeeping or not at all. An applier that fails with a MongoError or an
unexpected (deterministic: a bug every member hits alike) exception aborts its transaction; the
index is then recorded alone (the same on every member) and the error becomes the reply. An
*environmental* failure (:mod:`node.server.faults`: LMDB map or readers full, I/O error, out of
memory) is this member's alone: it aborts the transaction and propagates with nothing recorded,
so the member stops (the Raft driver's fatal path) instead of silently diverging. The
replica-set configuration (``hello`` reports it on every call) is also kept in memory,
published when its entry's transaction commits, so answering ``hello`` never needs a store
reader slot.

Cluster time: beside the index, the same transaction records the seconds of the newest entry
``now`` applied so far (never going back). ``Timestamp(seconds, index)`` is this member's
cluster time (``operationTime``, ``atClusterTime``): it orders exactly as log indexes do, is the
same on every member for the same index, and any snapshot of the store says its own
(:func:`read_cluster_time`).

Sharding hook: a ``guard`` (ownership filter / routing-version check per collection) is asked
before every applier runs; None today.
"""

from __future__ import annotations

import datetime as _dt
import logging
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import bson
from bson import Int64, Timestamp
from bson.codec_options import CodecOptions

from node.engine.errors import MongoError
from node.server.faults import is_environmental

log = logging.getLogger("helogale.statemachine")

META = "rs_meta"
SESSIONS = "rs_sessions"
APPLIED_KEY = b"applied"
CONFIG_KEY = b"config"
CLOCK_KEY = b"clock"
TRANSACTION_TOO_OLD = 225
INCOMPATIBLE_RETRY = 40606
"""MongoDB's code for a retried write that does not match the write its transaction number
recorded ("... is not compatible with previous write in the transaction of type ...")."""
INCOMPLETE_TRANSACTION_HISTORY = 217
MAX_SESSION_COLLS = 64
CODEC = CodecOptions(document_class=dict, tz_aware=True)
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")

Applier = Callable[[Any, Any, dict[str, Any]], dict[str, Any]]
"""``applier(engine, write_txn, entry) -> reply``; must be deterministic."""


class Grouper(Protocol):
    """Applies a run of consecutive entries of one op in one call (same replies as one by
    one). ``key(entry)`` says which entries may share a call (None: this one may not)."""

    def key(self, entry: Mapping[str, Any]) -> Any: ...

    def apply(self, engine: Any, txn: Any, entries: list[dict[str, Any]]
              ) -> list[dict[str, Any]]: ...


class RoutingGuard(Protocol):
    """A shard's check, inside the entry's transaction: refuse (StaleConfig) an entry routed
    with a stale version, to a collection in a critical section, or for ``_id``s this shard
    does not own. Deterministic: it reads only replicated state through ``txn``."""

    def check_entry(self, txn: Any, entry: Mapping[str, Any]) -> None: ...


StatementsApplier = Callable[[Any, Any, dict[str, Any], dict[int, Any]],
                             tuple[dict[str, Any], dict[int, Any]]]
"""``fn(engine, txn, entry, done) -> (reply, new results)``: a retryable write run statement
by statement, skipping (and folding in) the statements recorded in ``done``."""


def encode_entry(entry: Mapping[str, Any]) -> bytes:
    return bson.encode(entry)


def decode_entry(data: bytes) -> dict[str, Any]:
    return bson.decode(data, codec_options=CODEC)


def read_cluster_time(txn: Any) -> Timestamp:
    """The cluster time of the state ``txn`` sees: ``Timestamp(seconds, applied index)``."""
    raw = txn.get(META, APPLIED_KEY)
    secs = txn.get(META, CLOCK_KEY)
    index = _U64.unpack(raw)[0] if raw else 0
    return Timestamp(_U32.unpack(secs)[0] if secs else 0, index & 0xFFFFFFFF)


def _entry_secs(secs: int, entries: Any) -> int:
    """``secs`` advanced to the newest ``now`` of ``entries`` (never back)."""
    for entry in entries:
        now = entry.get("now") if entry is not None else None
        if isinstance(now, _dt.datetime):
            secs = max(secs, min(int(now.timestamp()), 0xFFFFFFFF))
    return secs


def _put_position(txn: Any, index: int, secs: int) -> None:
    txn.put(META, APPLIED_KEY, _U64.pack(index))
    txn.put(META, CLOCK_KEY, _U32.pack(secs))


def session_key(lsid: Any) -> bytes:
    """Storage key of a logical session id (``{id: UUID}`` or the raw id)."""
    ident = lsid.get("id") if isinstance(lsid, Mapping) else lsid
    return bson.encode({"id": ident})


def apply_replset_config(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """A replica-set configuration entry: the state machine stores ``entry["config"]``."""
    return {}


def apply_noop_entry(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """The primary's periodic no-op: carries only ``now`` (members' lastWriteDate advances)."""
    return {}


def _session_record(txn: Any, lsid: Any) -> dict[str, Any] | None:
    raw = txn.get(SESSIONS, session_key(lsid))
    return None if raw is None else decode_entry(raw)


def _recorded_statements(txn: Any, entry: Mapping[str, Any]) -> dict[int, Any]:
    """Results recorded for the entry's session at its transaction number, by statement id
    (empty for a newer transaction number); TransactionTooOld for an older one."""
    return _recorded(txn, entry)[0]


def _recorded(txn: Any, entry: Mapping[str, Any]) -> tuple[dict[int, Any], bool]:
    """:func:`_recorded_statements`, and whether that history came with a chunk migration
    (it may then lack statements that ran on another shard)."""
    rec = _session_record(txn, entry["lsid"])
    if rec is None:
        return {}, False
    txn_number = int(entry["txnNumber"])
    recorded = int(rec["txnNumber"])
    if recorded > txn_number:
        raise MongoError(
            TRANSACTION_TOO_OLD,
            f"Retryable write with txnNumber {txn_number} is prohibited on session because a "
            f"newer retryable write with txnNumber {recorded} has already started on this "
            "session.", code_name="TransactionTooOld")
    if recorded < txn_number:
        return {}, False
    op = entry.get("op")
    foreign = {int(k): other for k, other in (rec.get("stmtOps") or {}).items() if other != op}
    return (_Recorded({int(k): v for k, v in rec.get("stmts", {}).items()}, foreign,
                      f"{op} retry request with txnNumber {txn_number}"),
            bool(rec.get("migrated")))


class _Recorded(dict[int, Any]):
    """A transaction's recorded results by statement id. Looking up a statement that another
    kind of write recorded (the same ``lsid``/``txnNumber``/statement id sent first with an
    insert, then with an update, say) raises 40606: folding an insert's result into an update
    answered nonsense, or failed inside the apply path. Other statements of the same
    transaction may be of other kinds (``bulkWrite`` runs its inserts, updates and deletes as
    separate writes with distinct statement ids)."""

    def __init__(self, results: dict[int, Any], foreign: dict[int, str], what: str) -> None:
        super().__init__(results)
        self.foreign = foreign
        self.what = what

    def _check(self, sid: object) -> None:
        other = self.foreign.get(sid)  # type: ignore[call-overload]
        if other is not None:
            raise MongoError(
                INCOMPATIBLE_RETRY,
                f"{self.what} is not compatible with previous write in the transaction of "
                f"type: {other} (statement {sid})", code_name="Location40606")

    def __contains__(self, sid: object) -> bool:
        self._check(sid)
        return super().__contains__(sid)

    def __getitem__(self, sid: int) -> Any:
        self._check(sid)
        return super().__getitem__(sid)

    def get(self, sid: int, default: Any = None) -> Any:  # type: ignore[override]
        self._check(sid)
        return super().get(sid, default)


def _record_statements(txn: Any, entry: Mapping[str, Any], results: Mapping[int, Any]) -> None:
    """The session's record: its transaction number, each statement's result, its last use
    and the collections it wrote (a chunk migration takes the records of its collection)."""
    key = session_key(entry["lsid"])
    colls: list[str] = []
    ops: dict[str, str] = {}
    old = txn.get(SESSIONS, key)
    if old is not None:
        old_rec = decode_entry(old)
        colls = list(old_rec.get("colls") or [])
        if int(old_rec.get("txnNumber", -1)) == int(entry["txnNumber"]):
            ops = dict(old_rec.get("stmtOps") or {})
    ns = f"{entry.get('db')}.{entry.get('coll')}"
    if ns not in colls:
        colls.append(ns)
    for k in results:
        ops.setdefault(str(k), str(entry.get("op")))
    record: dict[str, Any] = {"txnNumber": Int64(int(entry["txnNumber"])),
                              "stmts": {str(k): v for k, v in results.items()},
                              "stmtOps": ops,
                              "colls": colls[-MAX_SESSION_COLLS:]}
    if entry.get("now") is not None:
        record["lastUse"] = entry["now"]  # the primary's clock, never this member's
    txn.put(SESSIONS, key, bson.encode(record))


class _NeedsApplying(Exception):
    """A retried write has statements not recorded yet: it must be proposed and applied."""


class _NoWrites:
    """Stands in for the store transaction when a retried write is answered from its records
    alone: touching it means some statement still has to run."""

    def __getattr__(self, name: str) -> Any:
        raise _NeedsApplying(name)


_NO_WRITES = _NoWrites()


class StateMachine:
    """Applies entries in log order to ``engine`` over ``store``; thread-safe."""

    def __init__(
        self,
        engine: Any,
        store: Any,
        appliers: Mapping[str, Applier],
        *,
        begin: Callable[[], Any] | None = None,
        guard: RoutingGuard | None = None,
        groupers: Mapping[str, Grouper] | None = None,
        statements: Mapping[str, StatementsApplier] | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.appliers = {"replSetConfig": apply_replset_config, "noop": apply_noop_entry,
                         **appliers}
        self.guard = guard
        self.groupers = dict(groupers or {})
        self.statements = dict(statements or {})
        self._begin = begin or store.write
        self._lock = threading.Lock()
        self._applied = self._read_applied()
        self._time = self._read_time()
        self._config = self._read_config()
        self._staged_config: dict[str, Any] | None = None
        self.on_apply: list[Callable[[int, dict[str, Any]], None]] = []

    # --- positions --------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read positions after the store was replaced (snapshot installed)."""
        with self._lock:
            self._applied = self._read_applied()
            self._time = self._read_time()
            self._config = self._read_config()
            reload = getattr(self.engine, "reload", None)
            if callable(reload):
                reload()

    def _read_applied(self) -> int:
        with self.store.read() as txn:
            raw = txn.get(META, APPLIED_KEY)
        return _U64.unpack(raw)[0] if raw else 0

    def _read_time(self) -> Timestamp:
        with self.store.read() as txn:
            return read_cluster_time(txn)

    @property
    def applied_index(self) -> int:
        return self._applied

    @property
    def cluster_time(self) -> Timestamp:
        """This member's cluster time: ``Timestamp(seconds, index)`` of the last applied entry
        (see the module docstring)."""
        return self._time

    def _advance(self, index: int, secs: int) -> None:
        self._applied = index
        self._time = Timestamp(secs, index & 0xFFFFFFFF)

    def replset_config(self) -> dict[str, Any] | None:
        """The applied replica-set configuration (from memory; do not modify it)."""
        return self._config

    def _read_config(self) -> dict[str, Any] | None:
        with self.store.read() as txn:
            raw = txn.get(META, CONFIG_KEY)
        return decode_entry(raw) if raw else None

    def _publish_config(self) -> None:
        """After a commit: the configuration its entries stored becomes the one served."""
        if self._staged_config is not None:
            self._config, self._staged_config = self._staged_config, None

    def recorded_reply(self, entry: Mapping[str, Any]) -> dict[str, Any] | None:
        """The reply of a retried write whose every statement was applied already (so it
        need not be proposed again), else None. Raises TransactionTooOld for a transaction
        number below the session's."""
        statements = self.statements.get(entry.get("op"))  # type: ignore[arg-type]
        if statements is None:
            return None
        with self.store.read() as txn:
            done = _recorded_statements(txn, entry)
        if not done:
            return None
        try:
            reply, new = statements(self.engine, _NO_WRITES, entry, done)
        except _NeedsApplying:
            return None
        return None if new else reply

    # --- applying ---------------------------------------------------------------------------
    def apply_noop(self, index: int) -> None:
        """Record ``index`` as applied for an entry with no effect (empty, conf change)."""
        with self._lock:
            if index <= self._applied:
                return
            secs = self._time.time
            with self._begin() as txn:
                _put_position(txn, index, secs)
            self._advance(index, secs)

    def apply(self, index: int, data: bytes | Mapping[str, Any]) -> dict[str, Any]:
        """Apply the entry at ``index`` (skipped if already applied); returns its reply."""
        entry = decode_entry(data) if isinstance(data, bytes | bytearray) else dict(data)
        with self._lock:
            if index and index <= self._applied:
                return {"ok": 1.0, "alreadyApplied": True}
            secs = _entry_secs(self._time.time, [entry])
            try:
                reply = self._apply_in_txn(index, entry, secs)
            except MongoError as exc:
                reply = exc.to_reply()
                self._record_index_only(index, secs)
            except Exception as exc:
                if is_environmental(exc):
                    raise  # this member's disk/store, not the entry: never record it
                # deterministic on every member; never wedge the log
                log.exception("applying entry %d (%s) failed", index, entry.get("op"))
                reply = MongoError(1, f"internal error applying entry: {exc}").to_reply()
                self._record_index_only(index, secs)
            if index:
                self._advance(index, secs)
        for callback in self.on_apply:
            callback(index, reply)
        return reply

    def apply_batch(self, items: list[tuple[int, dict[str, Any] | None]]) -> list[Any]:
        """Apply consecutive entries (None: an empty entry) in ONE store transaction.

        If anything in the batch raises, the transaction is aborted and the entries are
        applied one by one instead, so replies are exactly those of :meth:`apply`.
        """
        with self._lock:
            todo = [(i, e) for i, e in items if i > self._applied]
            if not todo:
                return [None] * len(items)
            replies: dict[int, Any] = {}
            self._staged_config = None
            secs = _entry_secs(self._time.time, (e for _, e in todo))
            try:
                with self._begin() as txn:
                    self._apply_runs(txn, todo, replies)
                    _put_position(txn, todo[-1][0], secs)
                self._advance(todo[-1][0], secs)
                self._publish_config()
            except Exception as exc:
                self._staged_config = None
                if is_environmental(exc):
                    raise  # nothing of the batch was committed; the member must stop
                replies.clear()
            else:
                out = [replies.get(i) for i, _ in items]
        if not replies:
            out = []
            for index, entry in items:
                if entry is None:
                    self.apply_noop(index)
                    out.append(None)
                else:
                    out.append(self.apply(index, entry))
            return out
        for callback in self.on_apply:
            for index, _ in todo:
                callback(index, replies[index])
        return out

    def _apply_runs(self, txn: Any, todo: list[tuple[int, dict[str, Any] | None]],
                    replies: dict[int, Any]) -> None:
        """Apply ``todo`` in order; runs of consecutive entries a grouper accepts (same key)
        go to the grouper in one call (e.g. single-document inserts into one collection)."""
        i = 0
        while i < len(todo):
            index, entry = todo[i]
            grouper = self._grouper_for(entry)
            key = grouper.key(entry) if grouper is not None and entry is not None else None
            if key is None or grouper is None:
                replies[index] = None if entry is None else self._apply_entry(txn, index, entry)
                i += 1
                continue
            j = i + 1
            while j < len(todo):
                nxt = todo[j][1]
                if self._grouper_for(nxt) is not grouper or grouper.key(nxt) != key:
                    break
                j += 1
            run = todo[i:j]
            if len(run) == 1:
                replies[index] = self._apply_entry(txn, index, entry)
            else:
                if self.guard is not None:
                    for _, e in run:
                        self.guard.check_entry(txn, e)  # type: ignore[arg-type]
                for (idx, _), reply in zip(run, grouper.apply(self.engine, txn,
                                                              [e for _, e in run])):
                    replies[idx] = reply
            i = j

    def _grouper_for(self, entry: dict[str, Any] | None) -> Grouper | None:
        if entry is None or entry.get("lsid") is not None:
            return None
        op = entry.get("op")
        return self.groupers.get(op) if isinstance(op, str) else None

    def _record_index_only(self, index: int, secs: int) -> None:
        if index:
            with self._begin() as txn:
                _put_position(txn, index, secs)

    def _apply_in_txn(self, index: int, entry: dict[str, Any], secs: int) -> dict[str, Any]:
        self._staged_config = None
        with self._begin() as txn:
            reply = self._apply_entry(txn, index, entry)
            if index:
                _put_position(txn, index, secs)
        self._publish_config()
        return reply

    def _apply_entry(self, txn: Any, index: int, entry: dict[str, Any]) -> dict[str, Any]:
        """Apply one entry inside ``txn`` (session check, guard, applier, bookkeeping)."""
        op = entry.get("op")
        applier = self.appliers.get(op) if isinstance(op, str) else None
        if applier is None:
            raise MongoError(1, f"unknown log entry op {op!r}")
        statements = self.statements.get(op)  # type: ignore[arg-type]
        retryable = (statements is not None and entry.get("lsid") is not None
                     and entry.get("txnNumber") is not None)
        done, migrated = _recorded(txn, entry) if retryable else ({}, False)
        if self.guard is not None:
            self.guard.check_entry(txn, entry)
        from node.engine.expressions import ENTRY_NOW
        from node.engine.validation import BYPASS
        token = BYPASS.set(bool(entry.get("bypassDocumentValidation")))
        now = entry.get("now")
        now_token = ENTRY_NOW.set(now if isinstance(now, _dt.datetime) else None)
        try:
            return self._apply_op(txn, op, applier, statements, retryable, done, migrated,
                                  entry)
        finally:
            ENTRY_NOW.reset(now_token)
            BYPASS.reset(token)

    def _apply_op(self, txn: Any, op: Any, applier: Applier, statements: Any, retryable: bool,
                  done: Any, migrated: bool, entry: dict[str, Any]) -> dict[str, Any]:
        if not retryable:
            reply = applier(self.engine, txn, entry)
            if op == "replSetConfig":
                raw = bson.encode(entry["config"])
                txn.put(META, CONFIG_KEY, raw)
                self._staged_config = decode_entry(raw)
            return reply
        assert statements is not None
        reply, new = statements(self.engine, txn, entry, done)
        if new and migrated:  # raised: this transaction undoes what the statements did
            raise MongoError(
                INCOMPLETE_TRANSACTION_HISTORY,
                f"Incomplete history detected for transaction {int(entry['txnNumber'])} on "
                "session: part of it ran before a chunk migration and cannot be retried here",
                code_name="IncompleteTransactionHistory")
        if new or not done:
            _record_statements(txn, entry, {**done, **new})
        return reply

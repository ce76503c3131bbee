"""Logical sessions: ``endSessions``/``killSessions`` and pruning of retryable-write records.

A retryable write (``lsid`` + ``txnNumber``) leaves a record in the state machine's
``rs_sessions`` table: its reply, and ``lastUse``, the ``now`` of the entry that wrote it (the
primary's clock when it proposed). Records are dropped by a replicated ``dropSessions`` log
entry naming them, so every member drops the same ones:

* ``endSessions``/``killSessions`` on the primary propose one for the named sessions that have
  a record (none: nothing is proposed); elsewhere they just answer ok (the records then go by
  timeout);
* the primary's session reaper (``node.server.session_reaper``) proposes one, with
  ``idleBefore`` = its clock minus ``logicalSessionTimeoutMinutes``, for records last used
  before that. The applier drops a named record only if its ``lastUse`` (from entries, never a
  member's clock) is still before ``idleBefore``: a session used again meanwhile stays.

A record without ``lastUse`` (written before it was recorded) counts as idle.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bson import Binary

from node.commands.args import bson_type_name
from node.commands.context import RequestContext
from node.commands.member import WriteConcern
from node.engine.errors import MongoError, type_mismatch
from node.server.statemachine import SESSIONS, decode_entry, session_key

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices

DROP_SESSIONS = "dropSessions"
MAX_SESSIONS_PER_ENTRY = 10_000
"""Sessions one ``dropSessions`` entry names at most (pymongo ends 10,000 per command)."""


def _now() -> _dt.datetime:
    now = _dt.datetime.now(_dt.UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def drop_entry(keys: list[bytes], now: _dt.datetime,
               idle_before: _dt.datetime | None = None) -> dict[str, Any]:
    """The log entry dropping the records of ``keys`` (only those idle before
    ``idle_before`` when given)."""
    entry: dict[str, Any] = {"op": DROP_SESSIONS, "sessions": [Binary(k) for k in keys],
                             "now": now}
    if idle_before is not None:
        entry["idleBefore"] = idle_before
    return entry


def apply_drop_sessions(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """Drop the named session records (those still idle, with ``idleBefore``); ``{n}``."""
    idle_before = entry.get("idleBefore")
    dropped = 0
    for key in entry.get("sessions", []):
        key = bytes(key)
        raw = txn.get(SESSIONS, key)
        if raw is None:
            continue
        if idle_before is not None:
            last_use = decode_entry(raw).get("lastUse")
            if isinstance(last_use, _dt.datetime) and last_use >= idle_before:
                continue  # used again after the reaper looked
        txn.delete(SESSIONS, key)
        dropped += 1
    return {"n": dropped}


APPLIERS = {DROP_SESSIONS: apply_drop_sessions}


# --- reading the records (short reads on the primary) ------------------------------------------


def idle_sessions(store: Any, idle_before: _dt.datetime, limit: int = MAX_SESSIONS_PER_ENTRY
                  ) -> list[bytes]:
    """Keys of up to ``limit`` records last used before ``idle_before``."""
    out: list[bytes] = []
    with store.read() as txn:
        for key, raw in txn.scan(SESSIONS):
            last_use = decode_entry(raw).get("lastUse")
            if not isinstance(last_use, _dt.datetime) or last_use < idle_before:
                out.append(bytes(key))
                if len(out) >= limit:
                    break
    return out


def recorded_sessions(store: Any, keys: list[bytes]) -> list[bytes]:
    """Those of ``keys`` that have a record."""
    with store.read() as txn:
        return [k for k in keys if txn.get(SESSIONS, k) is not None]


def session_count(store: Any) -> int:
    """How many session records the store holds."""
    with store.read() as txn:
        return sum(1 for _ in txn.scan(SESSIONS))


# --- endSessions / killSessions -----------------------------------------------------------------


def _session_keys(name: str, value: Any) -> list[bytes]:
    if not isinstance(value, list):
        raise type_mismatch(f"BSON field '{name}' is the wrong type "
                            f"'{bson_type_name(value)}', expected type 'array'")
    keys: list[bytes] = []
    for i, lsid in enumerate(value):
        if not isinstance(lsid, Mapping) or "id" not in lsid:
            raise type_mismatch(f"BSON field '{name}.{i}' is the wrong type "
                                f"'{bson_type_name(lsid)}', expected type 'object' with an id")
        keys.append(session_key(lsid))
    return keys


def end_sessions(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any]:
    """``endSessions``/``killSessions``: the sessions' retryable-write records are dropped on
    every member (through the log) when this member is primary."""
    name = next(iter(cmd))
    keys = _session_keys(name, cmd.get(name))
    try:
        node.member.require_writable()
    except MongoError:
        return {}  # a secondary: the records go when they time out
    store = node.engine.store
    for start in range(0, len(keys), MAX_SESSIONS_PER_ENTRY):
        recorded = recorded_sessions(store, keys[start:start + MAX_SESSIONS_PER_ENTRY])
        if not recorded:
            continue
        try:
            node.member.submit(drop_entry(recorded, _now()), WriteConcern())
        except MongoError:
            return {}  # stepped down meanwhile: as on a secondary
    return {}

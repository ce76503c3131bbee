"""Fuzzing every command a node serves, as BSON through the dispatcher (in process).

Commands come from tests/fuzz_commands.py (one schema per command in ``NODE_COMMANDS``, then
spoiled with wrong types, hostile numbers, deep nesting, huge ``$in`` and pathological
regexes). After every command: the reply is well formed (``ok`` 1.0, or 0.0 with ``code``,
``codeName`` and ``errmsg``); no InternalError (code 1) anywhere in it, write errors and
write-concern errors included; nothing stored changed if the command was refused or is a read
(except the applied log index); and at the end the node still answers. A memory test runs the
same hostile requests twice and checks the second round keeps nothing more.

Default suite: a few derandomized examples per command; ``-m slow`` and the environment
variables of tests/fuzzing.py for long runs.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import bson
import pytest
from bson import Binary, Int64
from hypothesis import given
from hypothesis import strategies as st

from node.commands.context import RequestContext
from node.commands.dispatcher import Dispatcher
from node.commands.table import NODE_COMMANDS
from node.server.standalone import standalone_dispatcher
from node.server.statemachine import APPLIED_KEY, CLOCK_KEY, META
from tests.fuzz_commands import COLL, FUZZ_DB, OTHER, READ_ONLY, SCHEMAS, commands
from tests.fuzzing import PATHOLOGICAL_REGEXES, fuzz_settings, nested

CTX = RequestContext(connection_id=11)
INTERNAL_ERROR = 1


def seeded() -> Dispatcher:
    """A standalone node with a small collection (two secondary indexes) and an empty one."""
    d = standalone_dispatcher()
    docs = [{"_id": i, "a": i % 7, "b": {"c": i}, "s": f"s{i}", "arr": [i, i + 1, {"x": i}],
             "n": float(i) / 3, "loc": [i % 10, i // 10]} for i in range(24)]
    assert d.run(FUZZ_DB, {"insert": COLL, "documents": docs}, CTX)["n"] == 24
    reply = d.run(FUZZ_DB, {"createIndexes": COLL, "indexes": [
        {"key": {"a": 1}, "name": "a_1"}, {"key": {"s": 1, "arr": -1}, "name": "s_arr"},
        {"key": {"loc": "2d"}, "name": "loc_2d"}]}, CTX)
    assert reply["ok"] == 1.0, reply
    assert d.run(FUZZ_DB, {"create": OTHER}, CTX)["ok"] == 1.0
    return d


def stored(d: Dispatcher) -> dict[str, list[tuple[bytes, bytes]]]:
    """Everything stored, table by table (empty tables, the applied index and cluster time
    left out)."""
    store = d.services.member.sm.store
    out = {}
    with store.read() as txn:
        for table in txn.tables():
            rows = [(bytes(k), bytes(v)) for k, v in txn.scan(table)
                    if not (table == META and bytes(k) in (APPLIED_KEY, CLOCK_KEY))]
            if rows:
                out[table] = rows
    return out


def check_reply(raw: bytes, cmd: dict[str, Any]) -> dict[str, Any]:
    reply = bson.decode(raw)
    name = next(iter(cmd))
    assert reply.get("ok") in (0.0, 1.0), (name, reply)
    if reply["ok"] == 0.0:
        assert isinstance(reply.get("code"), int), reply
        assert isinstance(reply.get("codeName"), str) and isinstance(reply.get("errmsg"), str)
        assert reply["code"] != INTERNAL_ERROR, (name, reply["errmsg"])
    for err in reply.get("writeErrors", []):
        assert isinstance(err["index"], int) and isinstance(err["errmsg"], str), err
        assert err["code"] != INTERNAL_ERROR, (name, err)
    wce = reply.get("writeConcernError")
    if wce is not None:
        assert wce["code"] != INTERNAL_ERROR, (name, wce)
    return reply


def run_checked(d: Dispatcher, cmd: dict[str, Any], db: str | None = None) -> dict[str, Any] | None:
    """Run ``cmd`` as BSON; check the reply and (refused or read) that nothing stored changed.
    None when the command cannot even be encoded as BSON (nothing to send)."""
    name = next(iter(cmd))
    if db is None:
        db = "admin" if NODE_COMMANDS[name].admin_only else FUZZ_DB
    try:
        raw = bson.encode(cmd)
    except Exception:
        return None
    before = stored(d)
    reply = check_reply(d.run_bson(db, raw, CTX), cmd)
    if reply["ok"] == 0.0 or name in READ_ONLY:
        assert stored(d) == before, (name, reply)
    return reply


def assert_serves(d: Dispatcher) -> None:
    assert d.run("admin", {"ping": 1}, CTX) == {"ok": 1.0}
    marker = Binary(b"after-the-fuzz!!", 4)
    d.run(FUZZ_DB, {"insert": "after", "documents": [{"_id": marker}]}, CTX)
    found = d.run(FUZZ_DB, {"find": "after", "filter": {"_id": marker}}, CTX)
    assert found["cursor"]["firstBatch"] == [{"_id": marker}]


def test_every_command_has_a_schema() -> None:
    missing = sorted(set(NODE_COMMANDS) - set(SCHEMAS))
    assert not missing, f"add a schema to tests/fuzz_commands.py for: {missing}"
    assert not sorted(set(SCHEMAS) - set(NODE_COMMANDS))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@fuzz_settings(3)
@given(data=st.data())
def test_each_command_refuses_hostile_arguments_cleanly(name: str, data: st.DataObject) -> None:
    d = seeded()
    for _ in range(2):
        cmd = data.draw(commands(name))
        db = data.draw(st.sampled_from([None, None, None, "admin", OTHER]))
        run_checked(d, cmd, db)
    assert_serves(d)


@fuzz_settings(15)
@given(cmds=st.lists(commands(), min_size=1, max_size=6))
def test_command_sequences_keep_the_node_serving(cmds: list[dict[str, Any]]) -> None:
    d = seeded()
    for cmd in cmds:
        run_checked(d, cmd)
    assert_serves(d)


# --- every numeric field, every hostile number: a systematic sweep the default suite affords ---

_LSID = {"id": Binary(b"\x09" * 16, 4)}
_VALID: dict[str, Any] = {
    "coll": COLL, "coll_or_1": COLL, "ns": f"{FUZZ_DB}.{COLL}", "int": 1, "small": 1,
    "cursor_id": Int64(0), "docs": [{"x": 1}], "updates": [{"q": {"_id": -9}, "u": {"$set":
                                                                                    {"z": 1}}}],
    "deletes": [{"q": {"_id": -9}, "limit": 1}], "pipeline": [], "cursor_opts": {},
    "field": "a", "update": {"$set": {"z": 1}}, "command": {"find": COLL},
    "bulk_ops": [{"insert": 0, "document": {"x": 2}}], "ns_info": [{"ns": f"{FUZZ_DB}.{COLL}"}],
}
_NEEDED = {"documents", "updates", "deletes", "pipeline", "cursor", "key", "collection",
           "update", "ops", "nsInfo"}
_NUMERIC = {"int", "small", "max_time", "txn", "cursor_id", "cursor_ids", "stmt_ids", "wc"}
_SWEEP = [float("nan"), float("inf"), float("-inf"), 1e30, -1e30, 2.0**63, -1, Int64(-(2**63))]


def _sweep_cases(name: str) -> list[dict[str, Any]]:
    target_kind, fields = SCHEMAS[name]
    base: dict[str, Any] = {name: _VALID.get(target_kind, 1)}
    base.update({f: _VALID[k] for f, k in fields.items() if f in _NEEDED and k in _VALID})
    out = []
    for x in _SWEEP:
        if target_kind in _NUMERIC:
            out.append({**base, name: x})
        for f, kind in fields.items():
            if kind not in _NUMERIC:
                continue
            if kind == "wc":
                out += [{**base, f: {"w": x}}, {**base, f: {"w": 1, "wtimeout": x}}]
            elif kind in ("cursor_ids", "stmt_ids"):
                out.append({**base, f: [x]})
            elif kind == "txn":
                out.append({**base, f: x, "lsid": _LSID})
            else:
                out.append({**base, f: x})
    return out


def test_hostile_numbers_in_every_numeric_field() -> None:
    """NaN, infinities, numbers past 64 bits and negative ones in every numeric field of every
    command: refused or served, never InternalError, nothing stored changed when refused."""
    d = seeded()
    ran = 0
    for name in sorted(SCHEMAS):
        for cmd in _sweep_cases(name):
            ran += run_checked(d, cmd) is not None
    assert ran > 500
    assert_serves(d)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCHEMAS))
@fuzz_settings(40)
@given(data=st.data())
def test_each_command_long(name: str, data: st.DataObject) -> None:
    test_each_command_refuses_hostile_arguments_cleanly.hypothesis.inner_test(name, data)


@pytest.mark.slow
@fuzz_settings(1500)
@given(cmds=st.lists(commands(), min_size=1, max_size=6))
def test_command_sequences_long(cmds: list[dict[str, Any]]) -> None:
    test_command_sequences_keep_the_node_serving.hypothesis.inner_test(cmds)


# --- memory -----------------------------------------------------------------------------------

def _hostile_requests() -> list[tuple[str, dict[str, Any]]]:
    """A fixed mix of requests that are refused or only read (nothing they do may be kept)."""
    nan, inf = float("nan"), float("inf")
    lsid = {"id": Binary(b"\x05" * 16, 4)}
    light: list[tuple[str, dict[str, Any]]] = [
        (FUZZ_DB, {"getMore": nan, "collection": COLL}),
        (FUZZ_DB, {"getMore": Int64(123456), "collection": COLL}),
        (FUZZ_DB, {"killCursors": COLL, "cursors": [inf, 1e30]}),
        (FUZZ_DB, {"insert": COLL, "documents": [{"_id": -1}], "lsid": lsid, "txnNumber": 1e30}),
        (FUZZ_DB, {"insert": COLL, "documents": [{"_id": -2}], "writeConcern": {"w": nan}}),
        (FUZZ_DB, {"insert": COLL, "documents": [{"deep": nested(190)}]}),
        (FUZZ_DB, {"insert": COLL, "documents": [{"_id": 0}]}),  # duplicate key
        (FUZZ_DB, {"insert": COLL, "documents": "x"}),
        (FUZZ_DB, {"update": COLL, "updates": [{"q": {}, "u": {"$frob": {"a": 1}}}]}),
        (FUZZ_DB, {"delete": COLL, "deletes": [{"q": {"s": {"$regex": "(a)\\1"}}, "limit": 0}]}),
        (FUZZ_DB, {"find": COLL, "filter": nested(150), "singleBatch": True}),
        (FUZZ_DB, {"find": COLL, "filter": {"s": {"$regex": "^(a+)+$"}}, "singleBatch": True}),
        (FUZZ_DB, {"find": COLL, "sort": {"a": "x"}}),
        (FUZZ_DB, {"find": COLL, "limit": 1e30}),
        (FUZZ_DB, {"aggregate": COLL, "pipeline": [{"$skip": nan}], "cursor": {}}),
        (FUZZ_DB, {"aggregate": COLL, "pipeline": [{"$group": {"_id": "$a", "n": {"$sum": 1}}}],
                   "cursor": {}}),
        (FUZZ_DB, {"count": COLL, "query": {"$where": "1"}}),
        (FUZZ_DB, {"distinct": COLL, "key": 5}),
        (FUZZ_DB, {"createIndexes": COLL, "indexes": [{"key": {"a": "x"}, "name": "bad"}]}),
        (FUZZ_DB, {"renameCollection": 1}),
        ("admin", {"replSetStepDown": nan}),
        ("admin", {"applyOps": [{"op": "x"}]}),
        ("admin", {"_configsvrAddShard": "x"}),
        (FUZZ_DB, {"frobnicate": 1}),
        (FUZZ_DB, {"hello": 1}),
        (FUZZ_DB, {"explain": {"find": COLL, "filter": {"a": {"$gt": 3}}}}),
    ]
    light += [(FUZZ_DB, {"find": COLL, "filter": {"s": {"$regex": r}}, "singleBatch": True})
              for r in PATHOLOGICAL_REGEXES]
    requests = (light * (600 // len(light) + 1))[:600]
    requests += [(FUZZ_DB, {"find": COLL, "filter": {"a": {"$in": list(range(5_000))}},
                            "singleBatch": True}),
                 (FUZZ_DB, {"count": COLL, "query": {"s": {"$in": [f"s{i}" for i in
                                                                   range(5_000)]}}})]
    return requests


def test_memory_stays_bounded_under_hostile_requests() -> None:
    d = seeded()
    requests = [(db, bson.encode(cmd)) for db, cmd in _hostile_requests()]

    def one_round() -> int:
        for db, raw in requests:
            bson.decode(d.run_bson(db, raw, CTX))
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        first = one_round()
        second = one_round()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"traced memory: {first} B after round 1, {second} B after round 2, peak {peak} B")
    assert second - first < 1 << 20
    assert peak < 64 << 20
    assert_serves(d)

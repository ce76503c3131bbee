"""MongoDB's nesting limits (node/engine/limits.py): the raw BSON depth scan the transports run
before decoding, stored-document depth on insert and update, query depth in the matcher."""

from __future__ import annotations

import struct
from typing import Any

import bson
import pytest
from bson import Code, Int64, ObjectId, Regex
from bson.raw_bson import RawBSONDocument
from hypothesis import given, settings
from hypothesis import strategies as st

from node.commands.context import RequestContext
from node.commands.dispatcher import Dispatcher
from node.engine.errors import MongoError
from node.engine.limits import (
    MAX_USER_DEPTH,
    bson_too_deep,
    document_depth,
    short_render,
)
from node.engine.matcher import Matcher
from node.server.standalone import standalone_dispatcher
from node.wire.protocol import HEADER, OP_MSG, OP_QUERY, decode_request, parse_header

CTX = RequestContext()


def nested_raw(depth: int) -> bytes:
    """BSON of ``{"a": {"a": ... {"a": 1}}}``, ``depth`` documents deep, built without
    recursion (and in linear time: every level adds 8 bytes around the one inside)."""
    leaf = bson.encode({"a": 1})
    heads = [struct.pack("<i", len(leaf) + 8 * k) + b"\x03a\x00" for k in range(depth - 1, 0, -1)]
    return b"".join(heads) + leaf + b"\x00" * (depth - 1)


def nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    inner = doc
    for _ in range(depth - 1):
        inner["a"] = {}
        inner = inner["a"]
    return doc


# --- the raw scan ------------------------------------------------------------------------------


def test_raw_scan_boundaries_and_huge_depths() -> None:
    assert not bson_too_deep(nested_raw(200))
    assert bson_too_deep(nested_raw(201))
    assert bson_too_deep(nested_raw(100_000))  # no recursion, no stack to overflow
    assert not bson_too_deep(nested_raw(5), limit=5) and bson_too_deep(nested_raw(6), limit=5)
    # arrays and code-with-scope count as levels too
    arrays = bson.encode({"a": [[[[1]]]]})
    assert bson_too_deep(arrays, limit=4) and not bson_too_deep(arrays, limit=5)
    scoped = bson.encode({"c": Code("f()", {"s": {"t": 1}})})
    assert bson_too_deep(scoped, limit=2) and not bson_too_deep(scoped, limit=3)


def test_raw_scan_leaves_malformed_bson_to_the_decoder() -> None:
    good = bson.encode({"a": {"b": "x" * 3000}})
    assert not bson_too_deep(b"")
    assert not bson_too_deep(good[:-40], limit=1)  # truncated
    assert not bson_too_deep(b"\xff\xff\x00\x00" + good[4:], limit=1)  # lying length
    assert not bson_too_deep(good[:4] + b"\x55" + good[5:], limit=1)  # unknown type


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**31), 2**31 - 1), st.floats(allow_nan=False),
    st.text(max_size=5), st.binary(max_size=5), st.just(ObjectId("0" * 24)),
    st.just(Regex("a.c", "i")), st.integers(0, 2**62).map(Int64),
)
documents = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text("abc", min_size=1, max_size=2), inner,
                                            max_size=3)),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text("xyz", min_size=1, max_size=2), documents, max_size=4),
       st.integers(1, 8))
def test_raw_scan_agrees_with_the_depth_of_the_decoded_document(doc: dict[str, Any],
                                                                 limit: int) -> None:
    raw = bson.encode(doc)
    assert bson_too_deep(raw, limit) == (document_depth(doc, limit) > limit)


def test_document_depth_and_short_render() -> None:
    assert document_depth({}, 5) == 1 and document_depth({"a": [{}]}, 5) == 3
    assert document_depth(nested(5000), MAX_USER_DEPTH) == MAX_USER_DEPTH + 1
    assert short_render({"a": {"$and": [{"b": 1}]}}) == "{ a: { $and: [ { b: 1 } ] } }"
    assert short_render(nested(5000)).endswith("...")


# --- stored documents -----------------------------------------------------------------------


@pytest.fixture
def run() -> Any:
    d = standalone_dispatcher()

    def _run(cmd: dict[str, Any]) -> dict[str, Any]:
        return d.run("app", cmd, CTX)

    _run.dispatcher = d  # type: ignore[attr-defined]
    return _run


def test_insert_past_180_levels_is_overflow(run: Any) -> None:
    assert run({"insert": "c", "documents": [{"_id": 1, "x": nested(179)}]})["n"] == 1
    for depth in (181, 2000):  # 2000: a Python dict no encoder could take
        reply = run({"insert": "c", "documents": [{"_id": depth, "x": nested(depth - 1)}]})
        (err,) = reply["writeErrors"]
        assert err["code"] == 15 and err["errmsg"] == (
            "cannot insert document because it exceeds 180 levels of nesting")


def test_an_insert_that_can_only_fail_is_not_proposed(run: Any) -> None:
    sm = run.dispatcher.services.member.sm
    before = sm.applied_index
    reply = run({"insert": "c", "documents": [{"_id": 1, "x": nested(200)}, {"_id": 2}]})
    assert reply["n"] == 0 and [e["index"] for e in reply["writeErrors"]] == [0]
    assert sm.applied_index == before
    reply = run({"insert": "c", "ordered": False,
                 "documents": [{"_id": 3}, {"_id": 4, "x": nested(200)}, {"_id": 5}]})
    assert reply["n"] == 2 and [e["index"] for e in reply["writeErrors"]] == [1]
    assert sm.applied_index == before + 1


def test_update_results_past_180_levels_are_overflow(run: Any) -> None:
    run({"insert": "c", "documents": [{"_id": 1}]})
    deep_path = ".".join(["a"] * 150)

    def update(u: dict[str, Any], upsert: bool = False, q: Any = None) -> dict[str, Any]:
        return run({"update": "c", "updates": [{"q": q or {"_id": 1}, "u": u,
                                                "upsert": upsert}]})

    assert update({"$set": {deep_path: nested(30)}})["nModified"] == 1  # 180 levels exactly
    for u, upsert, q in [({"$set": {deep_path: nested(31)}}, False, None),
                         ({"$set": {".".join(["a"] * 3000): 1}}, False, None),
                         ({"$set": {deep_path: nested(40)}}, True, {"_id": 9})]:
        (err,) = update(u, upsert, q)["writeErrors"]
        assert err["code"] == 15 and err["errmsg"] == (
            "Document exceeds maximum nesting depth of 180")
    assert run({"count": "c"})["n"] == 1


# --- queries ---------------------------------------------------------------------------------


def and_chain(levels: int) -> dict[str, Any]:
    q: dict[str, Any] = {"x": 1}
    for _ in range(levels):
        q = {"$and": [q]}
    return q


def test_query_nesting_past_100_is_bad_value_whatever_the_operator() -> None:
    assert Matcher(and_chain(100)).matches({"x": 1})
    deep_not: dict[str, Any] = {"$gt": 1}
    for _ in range(150):
        deep_not = {"$not": deep_not}
    deep_elem: dict[str, Any] = {"b": 1}
    for _ in range(150):
        deep_elem = {"a": {"$elemMatch": deep_elem}}
    for query in (and_chain(101), and_chain(5000), {"f": deep_not}, deep_elem):
        with pytest.raises(MongoError) as info:
            Matcher(query)
        assert info.value.code == 2
        assert info.value.errmsg.startswith("exceeded maximum query tree depth of 100 at ")


# --- transports --------------------------------------------------------------------------------


def test_dispatcher_answers_bson_past_200_levels_with_overflow(run: Any) -> None:
    d: Dispatcher = run.dispatcher
    for depth in (199, 2000):
        payload = bson.encode({"insert": "c", "documents": [
            RawBSONDocument(nested_raw(depth))]})
        reply = bson.decode(d.run_bson("app", payload, CTX))
        assert reply["ok"] == 0.0 or reply["writeErrors"][0]["code"] == 15
        if depth == 2000:
            assert reply["code"] == 15 and reply["codeName"] == "Overflow"
            assert reply["errmsg"] == "BSONObj exceeds maximum nested object depth"


def test_wire_decoding_carries_the_overflow_reply() -> None:
    deep = nested_raw(2000)
    body = struct.pack("<I", 0) + b"\x01"
    seq = b"documents\x00" + deep
    body += struct.pack("<i", len(seq) + 4) + seq
    body += b"\x00" + bson.encode({"insert": "c", "$db": "app"})
    message = HEADER.pack(16 + len(body), 7, 0, OP_MSG) + body
    request = decode_request(parse_header(message[:16]), message[16:])
    assert request.request_id == 7 and request.error is not None
    assert request.error["code"] == 15
    legacy = struct.pack("<i", 0) + b"app.$cmd\x00" + struct.pack("<ii", 0, -1) + deep
    message = HEADER.pack(16 + len(legacy), 8, 0, OP_QUERY) + legacy
    request = decode_request(parse_header(message[:16]), message[16:])
    assert request.legacy and request.error is not None and request.error["code"] == 15


def test_the_client_refuses_what_its_encoder_cannot_take() -> None:
    from helogale.channel import encode
    from helogale.errors import InvalidDocument

    assert bson.decode(encode(nested(150))) == nested(150)
    with pytest.raises(InvalidDocument):
        encode({"insert": "c", "documents": [nested(5000)]})

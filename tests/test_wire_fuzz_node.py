"""Malformed and hostile wire-protocol input thrown at a REAL node process's wire port.

Frames (tests/fuzz_wire_frames.py, shared with the in-process tests/test_wire_fuzz.py) are
garbage bytes, headers whose length lies, flipped bytes in valid messages, legacy OP_QUERY with
odd namespaces, and well-framed OP_MSG commands whose arguments are random BSON (through the
real dispatcher). After each example the connection must end (the node closes it
or answers and waits for more), a well-formed reply must have MongoDB's shape, and afterwards
the node must still serve pymongo.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import bson
import pytest
from bson import Int64, ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient

from node.local_cluster import LocalCluster, wait_until
from node.wire.protocol import (
    HEADER,
    HEADER_SIZE,
    MORE_TO_COME,
    OP_MSG,
    OP_QUERY,
    OP_REPLY,
    encode_op_msg_request,
)
from tests.fuzz_wire_frames import ANSWER
from tests.fuzz_wire_frames import frames as shared_frames

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

FUZZ_DB = "fuzz"
# commands a random argument cannot turn into a reconfiguration or a shutdown of the set
COMMANDS = ["insert", "update", "delete", "findAndModify", "find", "getMore", "killCursors",
            "count", "distinct", "aggregate", "createIndexes", "dropIndexes", "listIndexes",
            "listCollections", "create", "drop", "hello", "isMaster", "ping", "buildInfo",
            "endSessions", "getParameter", "serverStatus", "noSuchCommand"]
FIELDS = ["documents", "updates", "deletes", "filter", "query", "q", "u", "key", "pipeline",
          "indexes", "index", "cursor", "batchSize", "limit", "skip", "sort", "projection",
          "ordered", "writeConcern", "update", "remove", "new", "upsert", "cursors",
          "collection", "lsid", "txnNumber", "$readPreference", "comment"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64), st.floats(allow_nan=True),
    st.text(max_size=8), st.sampled_from(["c", "$x", "a.b", "$inc", "$set", "majority", ""]),
    st.binary(max_size=8), st.just(ObjectId("000000000000000000000000")),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["a", "b", "$set", "$inc", "_id", "$gt", "x.y",
                                         "$match", "$group", "w", "wtimeout", "n"]),
                        inner, max_size=3),
    ),
    max_leaves=12,
)


def _command(name: str, target: Any, extra: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {name: target}
    doc.update({k: v for k, v in extra.items() if k != name})
    doc["$db"] = FUZZ_DB
    return doc


commands = st.builds(_command, st.sampled_from(COMMANDS),
                     st.one_of(st.just("c"), scalars),
                     st.dictionaries(st.sampled_from(FIELDS), values, max_size=4))


def frames() -> st.SearchStrategy[tuple[bytes, bool]]:
    """(bytes to send, whether they are one well-formed request that must be answered)."""
    return shared_frames(commands).map(lambda f: (f[0], f[1] == ANSWER))


@pytest.fixture(scope="module")
def node() -> Iterator[LocalCluster]:
    with LocalCluster(members=1, wire=True) as c:
        yield c


def _port(node: LocalCluster) -> int:
    port = node.members[0].wire_port
    assert port is not None
    return port


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, close our sending side, return all the node sent until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the node already closed on a bad header
            return b""
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def _replies(data: bytes) -> list[dict[str, Any]]:
    out = []
    while data:
        length, _, response_to, op = HEADER.unpack_from(data)
        assert op == OP_MSG and response_to == 3
        body = data[HEADER_SIZE:length]
        assert body[4] == 0  # exactly one kind-0 section
        out.append(bson.decode(body[5:]))
        data = data[length:]
    return out


def _assert_serves_pymongo(node: LocalCluster) -> None:
    with MongoClient(f"mongodb://127.0.0.1:{_port(node)}/?directConnection=true",
                     serverSelectionTimeoutMS=20_000) as client:
        coll = client.check.after_fuzz
        marker = ObjectId()
        coll.insert_one({"_id": marker})
        assert coll.find_one({"_id": marker}) == {"_id": marker}


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frame=frames())
def test_fuzzed_frames_close_or_answer_and_the_node_keeps_serving(
    node: LocalCluster, frame: tuple[bytes, bool]
) -> None:
    data, well_formed = frame
    received = _exchange(_port(node), data)
    if well_formed:
        (reply,) = _replies(received)
        assert reply["ok"] in (0.0, 1.0)
        if reply["ok"] == 0.0:
            assert isinstance(reply["errmsg"], str) and isinstance(reply["code"], int)
            assert isinstance(reply["codeName"], str)
    assert node.members[0].alive


def test_huge_length_is_refused_without_reading(node: LocalCluster) -> None:
    with socket.create_connection(("127.0.0.1", _port(node)), timeout=20) as sock:
        sock.sendall(HEADER.pack(49_000_000, 1, 0, OP_MSG))
        assert sock.recv(16) == b""  # closed by the node while our side is still open


def test_more_to_come_gets_no_reply_and_the_write_happens(node: LocalCluster) -> None:
    fire = encode_op_msg_request({"insert": "mtc", "documents": [{"_id": 1}], "$db": FUZZ_DB,
                                  "writeConcern": {"w": 0}}, 3, flags=MORE_TO_COME)
    ping = encode_op_msg_request({"ping": 1, "$db": "admin"}, 3)
    (reply,) = _replies(_exchange(_port(node), fire + ping))
    assert reply == {"ok": 1.0}
    with MongoClient(f"mongodb://127.0.0.1:{_port(node)}/?directConnection=true",
                     serverSelectionTimeoutMS=20_000) as client:
        # w=0: acknowledged before it is applied, so wait for it
        wait_until(lambda: client[FUZZ_DB].mtc.find_one({"_id": 1}), 20, "the w=0 insert")


def test_legacy_op_query_handshake_gets_op_reply(node: LocalCluster) -> None:
    doc = bson.encode({"isMaster": 1, "helloOk": True})
    body = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1) + doc
    data = _exchange(_port(node), HEADER.pack(HEADER_SIZE + len(body), 41, 0, OP_QUERY) + body)
    length, _, response_to, op = HEADER.unpack_from(data)
    assert (length, response_to, op) == (len(data), 41, OP_REPLY)
    flags, cursor_id, start, n = struct.unpack_from("<iqii", data, HEADER_SIZE)
    assert (flags & 2, cursor_id, start, n) == (0, 0, 0, 1)
    reply = bson.decode(data[HEADER_SIZE + 20:])
    assert reply["ok"] == 1.0 and reply["ismaster"] is True
    assert reply["me"] == node.members[0].wire_address
    assert reply["maxWireVersion"] >= 17


def test_node_serves_pymongo_after_the_fuzz(node: LocalCluster) -> None:
    _assert_serves_pymongo(node)

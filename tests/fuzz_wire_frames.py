"""Hostile wire-protocol frames, shared by the in-process wire fuzzer (tests/test_wire_fuzz.py)
and the one against a real node process (tests/test_wire_fuzz_node.py).

:func:`frames` draws whole messages of every kind (garbage, lying headers, flipped or
truncated OP_MSG, legacy OP_QUERY); :func:`op_msgs` builds OP_MSG section by section (flag
bits, correct, wrong or missing checksums, unknown section kinds, document sequences, a
missing or second kind-0 section). Each comes with what the server must do with it:
:data:`ANSWER` (one reply), :data:`SILENT` (no reply, the connection stays open:
``moreToCome``), :data:`CLOSE` (the connection is closed) or :data:`EITHER`.
"""

from __future__ import annotations

import struct
from typing import Any

import bson
from hypothesis import strategies as st

from node.wire.crc32c import crc32c
from node.wire.protocol import (
    CHECKSUM_PRESENT,
    EXHAUST_ALLOWED,
    HEADER,
    HEADER_SIZE,
    MORE_TO_COME,
    OP_COMPRESSED,
    OP_MSG,
    OP_QUERY,
    OP_REPLY,
    encode_op_msg_request,
)
from tests.fuzzing import deep_bson, malformed_bson

ANSWER, SILENT, CLOSE, EITHER = "answer", "silent", "close", "either"
Frame = tuple[bytes, str]


@st.composite
def frames(draw: st.DrawFn, commands: st.SearchStrategy[dict[str, Any]]) -> Frame:
    """One message of any kind; ``commands`` draws command documents (with ``$db``)."""
    kind = draw(st.sampled_from(["garbage", "header", "flip", "query", "command", "truncated"]))
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=200)), EITHER
    if kind == "header":
        payload = draw(st.binary(max_size=120))
        lie = draw(st.sampled_from([-20, -1, 0, 1, 7, 50_000_000, 2**31 - 1, -(2**31)]))
        op = draw(st.sampled_from([OP_MSG, OP_QUERY, OP_COMPRESSED, OP_REPLY, 2001, 0]))
        length = max(-(2**31), min(2**31 - 1, HEADER_SIZE + len(payload) + lie))
        return HEADER.pack(length, 1, 0, op) + payload, EITHER
    if kind == "query":
        ns = draw(st.sampled_from([b"admin.$cmd", b"fuzz.$cmd", b"fuzz.c", b"", b"\xff.$cmd"]))
        doc = bson.encode(draw(st.dictionaries(
            st.sampled_from(["isMaster", "hello", "ping", "find", "x"]),
            st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=4)),
            max_size=3)))
        body = struct.pack("<i", 0) + ns + b"\x00" + struct.pack("<ii", 0, -1) + doc
        return HEADER.pack(HEADER_SIZE + len(body), 2, 0, OP_QUERY) + body, EITHER
    cmd = draw(commands)
    flags = draw(st.sampled_from([0, 0, EXHAUST_ALLOWED, CHECKSUM_PRESENT]))
    try:
        message = encode_op_msg_request(cmd, 3, flags=flags & EXHAUST_ALLOWED,
                                        checksum=bool(flags & CHECKSUM_PRESENT))
    except Exception:  # not encodable as BSON
        message = encode_op_msg_request({"ping": 1, "$db": "admin"}, 3)
    if kind == "command":
        db = cmd.get("$db")
        return message, ANSWER if isinstance(db, str) and db else CLOSE
    if kind == "truncated":
        return message[:draw(st.integers(0, len(message) - 1))], EITHER
    pos = draw(st.integers(0, len(message) - 1))
    flipped = bytearray(message)
    flipped[pos] ^= draw(st.integers(1, 255))
    return bytes(flipped), EITHER


def _section0(doc: bytes) -> bytes:
    return b"\x00" + doc


def _section1(identifier: bytes, docs: list[bytes], size_lie: int = 0) -> bytes:
    payload = identifier + b"\x00" + b"".join(docs)
    return b"\x01" + struct.pack("<i", 4 + len(payload) + size_lie) + payload


@st.composite
def op_msgs(draw: st.DrawFn, commands: st.SearchStrategy[dict[str, Any]]) -> Frame:
    """An OP_MSG built section by section, with what the server must do with it."""
    status = ANSWER
    cmd = dict(draw(commands))
    if draw(st.integers(0, 9)) == 0:
        cmd.pop("$db", None)
    db = cmd.get("$db")
    if not isinstance(db, str) or not db:
        status = CLOSE  # a command without $db (or an empty one) is a protocol error
    try:
        doc = bson.encode(cmd)
        bson.decode(doc)  # values the server cannot decode (dates past year 9999) close it
    except Exception:
        doc = bson.encode({"ping": 1, "$db": "admin"})
    sections = [_section0(doc)]
    shape = draw(st.sampled_from(["plain", "plain", "sequence", "bad_sequence", "unknown_kind",
                                  "two_kind0", "no_kind0", "bad_doc", "deep"]))
    if shape == "sequence":  # documents as a kind-1 sequence (as drivers send inserts)
        ident = draw(st.sampled_from([b"documents", b"updates", b"deletes", b"x", b""]))
        if ident.decode() in cmd:
            status = CLOSE  # the same field twice
        docs = [bson.encode({"_id": i}) for i in range(draw(st.integers(0, 3)))]
        sections.insert(draw(st.integers(0, 1)), _section1(ident, docs))
    elif shape == "bad_sequence":
        lie = draw(st.sampled_from([-100, -5, -1, 1, 10, 2**20]))
        sections.append(_section1(b"documents", [bson.encode({"_id": 1})], lie))
        status = EITHER
    elif shape == "unknown_kind":
        sections.append(bytes([draw(st.integers(2, 255))]) + draw(st.binary(max_size=12)))
        status = CLOSE
    elif shape == "two_kind0":
        sections.append(_section0(bson.encode({"ping": 1, "$db": "admin"})))
        status = CLOSE
    elif shape == "no_kind0":
        sections = [_section1(b"documents", [bson.encode({"_id": 1})])]
        status = CLOSE
    elif shape == "bad_doc":
        sections = [_section0(draw(malformed_bson()))]
        status = EITHER
    elif shape == "deep":
        depth = draw(st.sampled_from([150, 201, 1000]))
        inner = bson.encode({"find": "c", "$db": "fz"})[:-1]
        sub = deep_bson(depth)
        body = inner + b"\x03f\x00" + sub + b"\x00"
        sections = [_section0(struct.pack("<i", len(body)) + body[4:])]
        # past the BSON limit the reply is Overflow; below it an ordinary reply
    flags = draw(st.sampled_from([0, 0, 0, EXHAUST_ALLOWED, MORE_TO_COME, 1 << 2, 1 << 15,
                                  1 << 20, 1 << 31]))
    if flags & 0xFFFF & ~(CHECKSUM_PRESENT | MORE_TO_COME):
        status = CLOSE  # unknown required flag bit
    checksum = draw(st.sampled_from(["none", "none", "good", "bad", "flag_only", "extra"]))
    if checksum != "none":
        flags |= CHECKSUM_PRESENT if checksum != "extra" else 0
    body = struct.pack("<I", flags) + b"".join(sections)
    length = HEADER_SIZE + len(body) + (4 if checksum in ("good", "bad") else 0)
    header = HEADER.pack(length, draw(st.integers(-(2**31), 2**31 - 1)), 0, OP_MSG)
    if checksum == "good":
        body += struct.pack("<I", crc32c(header + body))
    elif checksum == "bad":
        body += struct.pack("<I", crc32c(header + body) ^ 1)
        status = CLOSE if status != EITHER else EITHER
    elif checksum in ("flag_only", "extra"):
        status = EITHER  # the last 4 bytes are read as a checksum (or trail the sections)
    if flags & MORE_TO_COME and status == ANSWER:
        status = SILENT
    return header + body, status

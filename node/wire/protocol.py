"""Decoding and encoding of MongoDB wire-protocol messages.

Requests: OP_MSG (opcode 2013; checksum verified and stripped, kind-1 document sequences merged
into the command) and legacy OP_QUERY commands on ``<db>.$cmd`` (the ``hello``/``isMaster``
handshake of older drivers). Replies: OP_MSG with exactly one kind-0 section, or OP_REPLY for a
legacy request. Anything malformed raises :class:`ProtocolError`; the server then closes that
connection only. A well-framed message whose BSON nests more than 200 deep is not decoded: its
:class:`Request` carries the Overflow error reply instead (checked on the raw bytes, without
recursion).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.errors import BSONError

from node.engine.limits import bson_too_deep, bson_too_deep_error
from node.wire.crc32c import crc32c

OP_REPLY = 1
OP_QUERY = 2004
OP_COMPRESSED = 2012
OP_MSG = 2013

HEADER = struct.Struct("<iiii")
HEADER_SIZE = HEADER.size
MAX_MESSAGE_SIZE = 48_000_000
MAX_BSON_SIZE = 16 * 1024 * 1024

CHECKSUM_PRESENT = 1 << 0
MORE_TO_COME = 1 << 1
EXHAUST_ALLOWED = 1 << 16
_KNOWN_FLAGS = CHECKSUM_PRESENT | MORE_TO_COME | EXHAUST_ALLOWED
_REQUIRED_FLAG_BITS = 0xFFFF  # bits 0-15 must be understood by the receiver

QUERY_FAILURE = 1 << 1  # OP_REPLY responseFlags
AWAIT_CAPABLE = 1 << 3

CODEC = CodecOptions(document_class=dict)
_TOO_DEEP = bson_too_deep_error().to_reply()
_INT32 = struct.Struct("<i")
_UINT32 = struct.Struct("<I")


class ProtocolError(Exception):
    """A message that cannot be understood: the connection it came on is closed."""


class TooDeep(Exception):
    """A well-framed message whose BSON nests past MongoDB's limit: answered with Overflow
    (the connection stays open, as MongoDB's does)."""


@dataclass(frozen=True)
class Header:
    message_length: int
    request_id: int
    response_to: int
    op_code: int


@dataclass
class Request:
    """One decoded command request."""

    request_id: int
    db: str
    command: dict[str, Any]
    legacy: bool = False  # OP_QUERY: answer with OP_REPLY
    more_to_come: bool = False  # no reply expected
    exhaust_allowed: bool = False
    error: dict[str, Any] | None = None  # answered with this, without running anything


def parse_header(data: bytes) -> Header:
    """Read the 16-byte header and check the announced length is plausible."""
    if len(data) != HEADER_SIZE:
        raise ProtocolError("truncated message header")
    header = Header(*HEADER.unpack(data))
    if not HEADER_SIZE < header.message_length <= MAX_MESSAGE_SIZE:
        raise ProtocolError(f"invalid message length {header.message_length}")
    return header


def _decode_document(data: bytes | memoryview, offset: int, end: int) -> tuple[dict, int]:
    if end - offset < 5:
        raise ProtocolError("truncated BSON document")
    (size,) = _INT32.unpack_from(data, offset)
    if size < 5 or offset + size > end or size > MAX_BSON_SIZE + 16 * 1024:
        raise ProtocolError(f"invalid BSON document length {size}")
    raw = bytes(data[offset : offset + size])
    if bson_too_deep(raw):
        raise TooDeep
    try:
        doc = bson.decode(raw, codec_options=CODEC)
    except (BSONError, ValueError, TypeError, OverflowError) as exc:
        raise ProtocolError(f"invalid BSON: {exc}") from exc
    return doc, offset + size


def _read_cstring(data: bytes | memoryview, offset: int, end: int) -> tuple[str, int]:
    raw = bytes(data[offset:end])
    nul = raw.find(b"\x00")
    if nul < 0:
        raise ProtocolError("unterminated string")
    try:
        return raw[:nul].decode("utf-8"), offset + nul + 1
    except UnicodeDecodeError as exc:
        raise ProtocolError("invalid UTF-8 in string") from exc


def decode_op_msg(header: Header, body: bytes) -> Request:
    """Decode an OP_MSG body (everything after the header)."""
    if len(body) < 5:
        raise ProtocolError("OP_MSG too short")
    (flags,) = _UINT32.unpack_from(body, 0)
    unknown_required = flags & _REQUIRED_FLAG_BITS & ~_KNOWN_FLAGS
    if unknown_required:
        raise ProtocolError(f"unsupported OP_MSG flag bits {unknown_required:#x}")
    end = len(body)
    if flags & CHECKSUM_PRESENT:
        if len(body) < 9:
            raise ProtocolError("OP_MSG checksum missing")
        end -= 4
        (expected,) = _UINT32.unpack_from(body, end)
        actual = crc32c(HEADER.pack(*_header_fields(header)) + body[:end])
        if actual != expected:
            raise ProtocolError("OP_MSG checksum mismatch")
    try:
        command, sequences = _op_msg_sections(body, end)
    except TooDeep:
        return Request(request_id=header.request_id, db="", command={},
                       more_to_come=bool(flags & MORE_TO_COME), error=_TOO_DEEP)
    for identifier, docs in sequences.items():
        if identifier in command:
            raise ProtocolError(f"duplicate field {identifier!r} in OP_MSG")
        command[identifier] = docs
    db = command.pop("$db", None)
    if not isinstance(db, str) or not db:
        raise ProtocolError("OP_MSG command without $db")
    return Request(
        request_id=header.request_id,
        db=db,
        command=command,
        more_to_come=bool(flags & MORE_TO_COME),
        exhaust_allowed=bool(flags & EXHAUST_ALLOWED),
    )


def _op_msg_sections(body: bytes, end: int) -> tuple[dict[str, Any], dict[str, list[dict]]]:
    """The kind-0 command and the kind-1 document sequences of an OP_MSG body."""
    command: dict[str, Any] | None = None
    sequences: dict[str, list[dict]] = {}
    offset = 4
    while offset < end:
        kind = body[offset]
        offset += 1
        if kind == 0:
            if command is not None:
                raise ProtocolError("OP_MSG has more than one kind-0 section")
            command, offset = _decode_document(body, offset, end)
        elif kind == 1:
            if end - offset < 4:
                raise ProtocolError("truncated document sequence")
            (size,) = _INT32.unpack_from(body, offset)
            seq_end = offset + size
            if size < 5 or seq_end > end:
                raise ProtocolError("invalid document sequence length")
            identifier, pos = _read_cstring(body, offset + 4, seq_end)
            docs = sequences.setdefault(identifier, [])
            while pos < seq_end:
                doc, pos = _decode_document(body, pos, seq_end)
                docs.append(doc)
            offset = seq_end
        else:
            raise ProtocolError(f"unknown OP_MSG section kind {kind}")
    if command is None:
        raise ProtocolError("OP_MSG without a kind-0 section")
    return command, sequences


def decode_op_query(header: Header, body: bytes) -> Request:
    """Decode a legacy OP_QUERY; only commands (``<db>.$cmd``) are accepted."""
    if len(body) < 4:
        raise ProtocolError("OP_QUERY too short")
    namespace, offset = _read_cstring(body, 4, len(body))
    if len(body) - offset < 8:
        raise ProtocolError("OP_QUERY too short")
    offset += 8  # numberToSkip, numberToReturn
    db, _, coll = namespace.partition(".")
    if coll != "$cmd" or not db:
        raise ProtocolError(f"OP_QUERY is only supported for commands, not {namespace!r}")
    try:
        query, offset = _decode_document(body, offset, len(body))
    except TooDeep:
        return Request(request_id=header.request_id, db=db, command={}, legacy=True,
                       error=_TOO_DEEP)
    first = next(iter(query), None)
    if first in ("$query", "query") and isinstance(query[first], dict):
        query = query[first]  # {$query: {...}, $readPreference: ...} wrapping of old drivers
    return Request(request_id=header.request_id, db=db, command=dict(query), legacy=True)


def decode_request(header: Header, body: bytes) -> Request:
    if header.op_code == OP_MSG:
        return decode_op_msg(header, body)
    if header.op_code == OP_QUERY:
        return decode_op_query(header, body)
    if header.op_code == OP_COMPRESSED:
        raise ProtocolError("OP_COMPRESSED is not supported: no compressor was negotiated")
    raise ProtocolError(f"unsupported opcode {header.op_code}")


def _header_fields(header: Header) -> tuple[int, int, int, int]:
    return (header.message_length, header.request_id, header.response_to, header.op_code)


def _encode_reply_document(reply: dict[str, Any]) -> bytes:
    try:
        return bson.encode(reply, codec_options=CODEC)
    except (BSONError, TypeError, ValueError, OverflowError) as exc:
        fallback = {
            "ok": 0.0,
            "errmsg": f"reply could not be encoded as BSON: {exc}",
            "code": 1,
            "codeName": "InternalError",
        }
        return bson.encode(fallback)


def encode_reply(request: Request, reply: dict[str, Any], request_id: int) -> bytes:
    """The message answering ``request`` with ``reply`` (OP_MSG, or OP_REPLY if legacy)."""
    doc = _encode_reply_document(reply)
    if request.legacy:
        body = struct.pack("<iqii", 0, 0, 0, 1) + doc
        op_code = OP_REPLY
    else:
        body = _UINT32.pack(0) + b"\x00" + doc
        op_code = OP_MSG
    return HEADER.pack(HEADER_SIZE + len(body), request_id, request.request_id, op_code) + body


def encode_op_msg_request(
    command: dict[str, Any], request_id: int, *, flags: int = 0, checksum: bool = False
) -> bytes:
    """An OP_MSG request (used by tests and tools that speak to a node directly)."""
    body = _UINT32.pack(flags | (CHECKSUM_PRESENT if checksum else 0)) + b"\x00"
    body += bson.encode(command)
    length = HEADER_SIZE + len(body) + (4 if checksum else 0)
    header = HEADER.pack(length, request_id, 0, OP_MSG)
    if checksum:
        body += _UINT32.pack(crc32c(header + body))
    return header + body

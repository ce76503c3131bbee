"""Wire-protocol framing and the TCP listener's robustness against bad input."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import bson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.local_cluster import wait_until
from node.wire.crc32c import crc32c
from node.wire.protocol import (
    HEADER,
    MORE_TO_COME,
    OP_COMPRESSED,
    OP_MSG,
    OP_QUERY,
    OP_REPLY,
    ProtocolError,
    decode_request,
    encode_op_msg_request,
    encode_reply,
    parse_header,
)
from node.wire.server import ConnectionInfo, WireServer


def _split(message: bytes) -> tuple[Any, bytes]:
    header = parse_header(message[:16])
    return header, message[16:]


def test_crc32c_known_vector() -> None:
    # RFC 3720 test vector: 32 bytes of zeros.
    assert crc32c(b"\x00" * 32) == 0x8A9136AA
    assert crc32c(b"123456789") == 0xE3069283


def test_crc32c_rfc3720_vectors_and_continuation() -> None:
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C
    assert crc32c(b"") == 0
    data = bytes(range(256)) * 10
    assert crc32c(data[700:], crc32c(data[:700])) == crc32c(data)
    assert crc32c(memoryview(data)) == crc32c(bytearray(data)) == crc32c(data)


def test_crc32c_is_native_fast() -> None:
    # a 48 MB OP_MSG checksum in pure Python took seconds of CPU per message
    data = b"\xa5" * (16 * 1024 * 1024)
    started = time.perf_counter()
    crc32c(data)
    assert time.perf_counter() - started < 0.5


def test_op_msg_round_trip_with_document_sequence() -> None:
    docs = [{"_id": 1, "x": "a"}, {"_id": 2, "x": "b"}]
    body = struct.pack("<I", 0) + b"\x00" + bson.encode({"insert": "users", "$db": "app"})
    seq = b"documents\x00" + b"".join(bson.encode(d) for d in docs)
    body += b"\x01" + struct.pack("<i", 4 + len(seq)) + seq
    message = HEADER.pack(16 + len(body), 7, 0, OP_MSG) + body
    header, rest = _split(message)
    request = decode_request(header, rest)
    assert request.db == "app"
    assert request.command == {"insert": "users", "documents": docs}
    assert request.request_id == 7
    assert not request.more_to_come


def test_op_msg_checksum_verified_and_stripped() -> None:
    message = encode_op_msg_request({"ping": 1, "$db": "admin"}, 3, checksum=True)
    header, body = _split(message)
    assert decode_request(header, body).command == {"ping": 1}
    corrupted = bytearray(message)
    corrupted[-1] ^= 0xFF
    header, body = _split(bytes(corrupted))
    with pytest.raises(ProtocolError, match="checksum"):
        decode_request(header, body)


def test_op_msg_rejects_missing_db_two_bodies_and_unknown_flags() -> None:
    header, body = _split(encode_op_msg_request({"ping": 1}, 1))
    with pytest.raises(ProtocolError, match=r"\$db"):
        decode_request(header, body)
    doc = bson.encode({"ping": 1, "$db": "x"})
    body = struct.pack("<I", 0) + b"\x00" + doc + b"\x00" + doc
    with pytest.raises(ProtocolError, match="more than one"):
        decode_request(parse_header(HEADER.pack(16 + len(body), 1, 0, OP_MSG)), body)
    body = struct.pack("<I", 1 << 4) + b"\x00" + doc
    with pytest.raises(ProtocolError, match="flag"):
        decode_request(parse_header(HEADER.pack(16 + len(body), 1, 0, OP_MSG)), body)


def test_legacy_op_query_handshake_and_op_reply() -> None:
    query = bson.encode({"$query": {"isMaster": 1}, "$readPreference": {"mode": "primary"}})
    body = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1) + query
    header = parse_header(HEADER.pack(16 + len(body), 9, 0, OP_QUERY))
    request = decode_request(header, body)
    assert request.legacy and request.db == "admin" and request.command == {"isMaster": 1}
    reply = encode_reply(request, {"ok": 1.0, "ismaster": True}, 100)
    length, request_id, response_to, op_code = HEADER.unpack_from(reply)
    assert (length, request_id, response_to, op_code) == (len(reply), 100, 9, OP_REPLY)
    flags, cursor_id, start, returned = struct.unpack_from("<iqii", reply, 16)
    assert (flags, cursor_id, start, returned) == (0, 0, 0, 1)
    assert bson.decode(reply[36:]) == {"ok": 1.0, "ismaster": True}


def test_op_query_on_a_collection_and_compressed_are_refused() -> None:
    body = struct.pack("<i", 0) + b"app.users\x00" + struct.pack("<ii", 0, 1) + bson.encode({})
    with pytest.raises(ProtocolError, match="only supported for commands"):
        decode_request(parse_header(HEADER.pack(16 + len(body), 1, 0, OP_QUERY)), body)
    with pytest.raises(ProtocolError, match="OP_COMPRESSED"):
        decode_request(parse_header(HEADER.pack(16 + 9, 1, 0, OP_COMPRESSED)), b"\x00" * 9)


def test_header_length_that_lies_is_rejected() -> None:
    with pytest.raises(ProtocolError):
        parse_header(HEADER.pack(48_000_001, 1, 0, OP_MSG))
    with pytest.raises(ProtocolError):
        parse_header(HEADER.pack(10, 1, 0, OP_MSG))


# --- the listener -------------------------------------------------------------------------


def _handler(db: str, command: dict[str, Any], info: ConnectionInfo) -> dict[str, Any]:
    """A tiny command handler for transport tests: ping, and a counter of fire-and-forget writes."""
    name = next(iter(command))
    if name == "ping":
        return {"ok": 1.0}
    if name == "bump":
        _handler.bumps += 1  # type: ignore[attr-defined]
        return {"ok": 1.0}
    if name == "bumps":
        return {"ok": 1.0, "n": _handler.bumps}  # type: ignore[attr-defined]
    if name == "crash":
        raise RuntimeError("handler bug")
    return {"ok": 0.0, "errmsg": f"no such command: '{name}'", "code": 59, "codeName": "CommandNotFound"}


_handler.bumps = 0  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def server() -> Iterator[WireServer]:
    wire = WireServer(_handler).start()
    yield wire
    wire.stop()


def _roundtrip(sock: socket.socket, command: dict[str, Any], request_id: int = 1) -> dict[str, Any]:
    sock.sendall(encode_op_msg_request(command, request_id))
    header = parse_header(_recv(sock, 16))
    body = _recv(sock, header.message_length - 16)
    assert header.response_to == request_id and header.op_code == OP_MSG
    assert body[4] == 0  # exactly one kind-0 section
    return bson.decode(body[5:])


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _connect(server: WireServer) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=10)
    return sock


def _assert_serving(server: WireServer) -> None:
    with _connect(server) as sock:
        assert _roundtrip(sock, {"ping": 1, "$db": "admin"}) == {"ok": 1.0}


def _assert_closed(sock: socket.socket) -> None:
    sock.settimeout(10)
    with contextlib.suppress(ConnectionResetError):
        assert sock.recv(1) == b""


def test_commands_and_unknown_command_reply(server: WireServer) -> None:
    with _connect(server) as sock:
        assert _roundtrip(sock, {"ping": 1, "$db": "admin"}, 5) == {"ok": 1.0}
        reply = _roundtrip(sock, {"nope": 1, "$db": "admin"}, 6)
        assert reply["code"] == 59 and reply["ok"] == 0.0


def test_handler_crash_becomes_error_reply_and_connection_lives(server: WireServer) -> None:
    with _connect(server) as sock:
        reply = _roundtrip(sock, {"crash": 1, "$db": "admin"})
        assert reply["ok"] == 0.0 and reply["codeName"] == "InternalError"
        assert _roundtrip(sock, {"ping": 1, "$db": "admin"}) == {"ok": 1.0}


def test_more_to_come_gets_no_reply(server: WireServer) -> None:
    with _connect(server) as sock:
        before = _roundtrip(sock, {"bumps": 1, "$db": "admin"}, 1)["n"]
        sock.sendall(encode_op_msg_request({"bump": 1, "$db": "admin"}, 2, flags=MORE_TO_COME))
        # The next reply answers request 3, proving request 2 got none; it was still applied.
        reply = _roundtrip(sock, {"bumps": 1, "$db": "admin"}, 3)
        assert reply["n"] == before + 1


def test_garbage_closes_only_that_connection(server: WireServer) -> None:
    with _connect(server) as bad:
        bad.sendall(HEADER.pack(40, 1, 0, OP_MSG) + b"\xff" * 24)
        _assert_closed(bad)
    _assert_serving(server)


def test_oversized_length_closes_without_reading(server: WireServer) -> None:
    with _connect(server) as bad:
        bad.sendall(HEADER.pack(48_000_001 + 10_000, 1, 0, OP_MSG))
        _assert_closed(bad)
    _assert_serving(server)


def test_disconnect_mid_message(server: WireServer) -> None:
    message = encode_op_msg_request({"ping": 1, "$db": "admin"}, 1)
    with _connect(server) as bad:
        bad.sendall(message[: len(message) // 2])
    _assert_serving(server)


def test_compressed_message_is_refused_cleanly(server: WireServer) -> None:
    with _connect(server) as bad:
        bad.sendall(HEADER.pack(16 + 9, 1, 0, OP_COMPRESSED) + struct.pack("<iiB", OP_MSG, 5, 0))
        _assert_closed(bad)
    _assert_serving(server)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    op_code=st.sampled_from([OP_MSG, OP_QUERY, OP_COMPRESSED, 1, 2001, 0, -1]),
    payload=st.binary(max_size=300),
    lie=st.integers(min_value=-64, max_value=64),
)
def test_fuzzed_frames_never_take_the_listener_down(
    server: WireServer, op_code: int, payload: bytes, lie: int
) -> None:
    with _connect(server) as sock:
        try:
            sock.sendall(HEADER.pack(16 + len(payload) + lie, 1, 0, op_code) + payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the listener already closed on a bad header: that is the point
            _assert_serving(server)
            return
        sock.settimeout(10)
        try:
            while sock.recv(65536):
                pass
        except (ConnectionResetError, TimeoutError):
            pass
    _assert_serving(server)



# --- limits: connections, stalled peers, idle connections, buffered bytes ----------------------


@pytest.fixture
def limited() -> Iterator[WireServer]:
    wire = WireServer(_handler, max_connections=2, stall_timeout_s=0.5,
                      max_buffered_bytes=100_000).start()
    yield wire
    wire.stop()


def _is_closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (False: still open then)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_connections_past_the_cap_are_closed_at_once(limited: WireServer) -> None:
    first, second = _connect(limited), _connect(limited)
    for sock in (first, second):
        assert _roundtrip(sock, {"ping": 1, "$db": "admin"}) == {"ok": 1.0}
    with _connect(limited) as third:
        assert _is_closed_within(third, 5)
    assert limited.refused == 1
    first.close()
    wait_until(lambda: limited.connections < 2, 5, "the closed connection to be released")
    with _connect(limited) as again:
        assert _roundtrip(again, {"ping": 1, "$db": "admin"}) == {"ok": 1.0}
    second.close()


def test_a_peer_that_stalls_mid_message_is_disconnected(limited: WireServer) -> None:
    message = encode_op_msg_request({"ping": 1, "$db": "admin"}, 1)
    with _connect(limited) as slow:
        slow.sendall(message[:10])  # part of the header, then nothing
        assert _is_closed_within(slow, 5)
    with _connect(limited) as slow:
        slow.sendall(message[:30])  # the header and part of the body
        assert _is_closed_within(slow, 5)
    wait_until(lambda: limited.connections == 0 and limited.budget.held == 0, 5,
               "the stalled connections to be released")
    with _connect(limited) as ok:  # a short pause inside a message is fine
        ok.sendall(message[:20])
        ok.settimeout(0.2)
        with contextlib.suppress(TimeoutError):
            ok.recv(1)
        ok.sendall(message[20:])
        header = parse_header(_recv(ok, 16))
        assert bson.decode(_recv(ok, header.message_length - 16)[5:]) == {"ok": 1.0}


def test_idle_connections_stay_unless_an_idle_timeout_is_set(server: WireServer) -> None:
    with _connect(server) as idle:
        assert not _is_closed_within(idle, 1.0)  # the default keeps idle connections
        assert _roundtrip(idle, {"ping": 1, "$db": "admin"}) == {"ok": 1.0}
    wire = WireServer(_handler, idle_timeout_s=0.3).start()
    try:
        with _connect(wire) as idle:
            assert _roundtrip(idle, {"ping": 1, "$db": "admin"}) == {"ok": 1.0}
            assert _is_closed_within(idle, 5)
    finally:
        wire.stop()


def test_buffered_bytes_are_bounded_across_connections(limited: WireServer) -> None:
    big = encode_op_msg_request({"ping": 1, "pad": "x" * 80_000, "$db": "admin"}, 1)
    other = encode_op_msg_request({"ping": 1, "pad": "y" * 30_000, "$db": "admin"}, 2)
    with _connect(limited) as a, _connect(limited) as b:
        a.sendall(big[:1000])  # announces ~80 KB and holds them while it sends
        wait_until(lambda: limited.budget.held >= 80_000, 5, "the first message's reservation")
        b.sendall(other)  # 30 KB more would pass the 100,000-byte budget: b waits
        b.settimeout(0.3)
        with pytest.raises(TimeoutError):
            b.recv(1)
        a.sendall(big[1000:])
        assert _roundtrip_reply(a) == {"ok": 1.0}
        assert _roundtrip_reply(b) == {"ok": 1.0}
    assert limited.budget.peak <= 100_000
    wait_until(lambda: limited.budget.held == 0, 5, "the budget to be released")


def _roundtrip_reply(sock: socket.socket) -> dict[str, Any]:
    sock.settimeout(10)
    header = parse_header(_recv(sock, 16))
    return bson.decode(_recv(sock, header.message_length - 16)[5:])

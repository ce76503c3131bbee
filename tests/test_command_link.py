"""Command links (``node.server.command_link``) against a real Raft TCP port: who may open one,
which identity its commands run as, deferred replies matched by request id, and callers
released when a link breaks or is abandoned."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import bson
import pytest

from helogale.errors import AutoReconnect
from node.server.command_link import CommandLink, CommandLinks, CommandLinkServer
from raft.auth import COMMAND_SENDER, DOMAIN_COMMAND, client_metadata
from raft.tcp_transport import COMMAND_MAGIC, TcpTransport, _frame, _recv_frame
from tests.raft_io.test_transport import Inbox

KEY = b"c2VjcmV0LWtleS1vbmU="
OTHER_KEY = b"YW5vdGhlci1rZXktdHdv"


class FakeDispatcher:
    """Answers ``ping`` at once (with who asked); holds ``insert`` replies (a write waiting for
    its commit) until the test answers them."""

    def __init__(self) -> None:
        self.held: list[tuple[dict[str, Any], Callable[[bytes], None]]] = []
        self.lock = threading.Lock()
        self.ran = 0

    def runs_inline(self, name: str | None) -> bool:
        return name == "insert"

    def run_bson_async(self, db: str, command: bytes, ctx: Any,
                       done: Callable[[bytes], None]) -> None:
        cmd = bson.decode(command)
        with self.lock:
            self.ran += 1
            if "insert" in cmd:
                self.held.append((cmd, done))
                return
        users = [list(u) for u in ctx.auth.users]
        done(bson.encode({"ok": 1.0, "db": db, "users": users}))

    def wait_held(self, n: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.held) < n:
            assert time.monotonic() < deadline, "the inserts never arrived"
            time.sleep(0.005)


def _member(key: bytes | None, serve: bool = True
            ) -> tuple[TcpTransport, FakeDispatcher, CommandLinkServer]:
    dispatcher = FakeDispatcher()
    t = TcpTransport(2, "127.0.0.1:0", {}, Inbox(), key=key)
    server = CommandLinkServer(dispatcher)
    if serve:
        t.command_server = server
    t.start()
    return t, dispatcher, server


@pytest.fixture
def member() -> Iterator[tuple[TcpTransport, FakeDispatcher]]:
    t, dispatcher, server = _member(KEY)
    yield t, dispatcher
    t.stop()
    server.close()


def _addr(t: TcpTransport) -> str:
    return f"127.0.0.1:{t.port}"


def _run(link: CommandLink, cmd: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
    return bson.decode(link.run("admin", bson.encode(cmd), timeout))


def test_commands_run_as_the_internal_identity(member: tuple[TcpTransport, FakeDispatcher]
                                              ) -> None:
    t, _ = member
    link = CommandLink(_addr(t), KEY)
    try:
        assert _run(link, {"ping": 1}) == {"ok": 1.0, "db": "admin",
                                           "users": [["__system", "local"]]}
    finally:
        link.close()


def test_without_auth_commands_run_unauthenticated() -> None:
    """As a gRPC caller's would on a member without --auth (a cursor opened over a link stays
    usable over gRPC, should the link fall back)."""
    t = TcpTransport(2, "127.0.0.1:0", {}, Inbox(), key=KEY)
    server = CommandLinkServer(FakeDispatcher(), internal=False)
    t.command_server = server
    t.start()
    link = CommandLink(_addr(t), KEY)
    try:
        assert _run(link, {"ping": 1})["users"] == []
    finally:
        link.close()
        t.stop()
        server.close()


def test_deferred_replies_reach_their_callers_out_of_order(
        member: tuple[TcpTransport, FakeDispatcher]) -> None:
    t, dispatcher = member
    link = CommandLink(_addr(t), KEY)
    got: dict[int, dict[str, Any]] = {}

    def insert(k: int) -> None:
        got[k] = _run(link, {"insert": "c", "documents": [{"_id": k}]})

    try:
        callers = [threading.Thread(target=insert, args=(k,)) for k in (1, 2)]
        for c in callers:
            c.start()
        dispatcher.wait_held(2)
        for cmd, done in reversed(dispatcher.held):  # the later write commits first
            done(bson.encode({"ok": 1.0, "n": 1, "id": cmd["documents"][0]["_id"]}))
        for c in callers:
            c.join(10)
        assert got == {1: {"ok": 1.0, "n": 1, "id": 1}, 2: {"ok": 1.0, "n": 1, "id": 2}}
    finally:
        link.close()


def test_wrong_key_is_refused_and_runs_nothing(member: tuple[TcpTransport, FakeDispatcher]
                                               ) -> None:
    t, dispatcher = member
    with pytest.raises(ConnectionError, match="bad proof"):
        CommandLink(_addr(t), OTHER_KEY)
    assert dispatcher.ran == 0
    assert t.receive_stats()["refused"] == 1


def _open_with(address: str, metadata: Callable[[bytes, int], list[tuple[str, str]]]
               ) -> dict[str, Any]:
    """Open a command link by hand with the proof ``metadata(nonce, member)``: the verdict."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(COMMAND_MAGIC)
        hello = json.loads(_recv_frame(sock, time.monotonic() + 5))
        md = metadata(bytes.fromhex(hello["nonce"]), hello["node_id"])
        sock.sendall(_frame({"metadata": md}))
        return dict(json.loads(_recv_frame(sock, time.monotonic() + 5)))


def test_a_raft_proof_does_not_open_a_command_link(
        member: tuple[TcpTransport, FakeDispatcher]) -> None:
    t, _ = member
    raft_proof = _open_with(_addr(t), lambda nonce, to: client_metadata(KEY, nonce, 1, to))
    assert raft_proof["ok"] is False and "bad proof" in raft_proof["error"]
    right = _open_with(_addr(t), lambda nonce, to: client_metadata(
        KEY, nonce, COMMAND_SENDER, to, domain=DOMAIN_COMMAND))
    assert right == {"ok": True}


@pytest.mark.parametrize("key,serve", [(None, True), (KEY, False)])
def test_a_member_without_key_or_server_takes_no_links(key: bytes | None, serve: bool) -> None:
    t, dispatcher, server = _member(key, serve)
    try:
        with pytest.raises(ConnectionError, match="takes no command links"):
            CommandLink(_addr(t), KEY)
        assert dispatcher.ran == 0
    finally:
        t.stop()
        server.close()


def _insert_in_thread(link: CommandLink) -> tuple[threading.Thread, list[BaseException]]:
    """An insert over ``link`` on a thread of its own; the AutoReconnect it ends with, if any,
    lands in the list."""
    errors: list[BaseException] = []

    def insert() -> None:
        try:
            _run(link, {"insert": "c", "documents": [{}]})
        except AutoReconnect as exc:
            errors.append(exc)

    caller = threading.Thread(target=insert)
    caller.start()
    return caller, errors


def test_waiting_callers_fail_when_the_member_goes_away() -> None:
    t, dispatcher, server = _member(KEY)
    link = CommandLink(_addr(t), KEY)
    caller, errors = _insert_in_thread(link)
    try:
        dispatcher.wait_held(1)
        t.stop()
        caller.join(10)
        assert not caller.is_alive() and len(errors) == 1
        with pytest.raises(AutoReconnect):  # a broken link stays broken
            _run(link, {"ping": 1})
    finally:
        link.close()
        t.stop()
        server.close()


def test_abandon_releases_callers_and_the_next_call_redials(
        member: tuple[TcpTransport, FakeDispatcher]) -> None:
    t, dispatcher = member
    links = CommandLinks(KEY)
    first = links.get(_addr(t))
    assert first is not None
    caller, errors = _insert_in_thread(first)
    try:
        dispatcher.wait_held(1)
        links.abandon(_addr(t))
        caller.join(10)
        assert len(errors) == 1
        again = links.get(_addr(t))
        assert again is not None and again is not first
        assert _run(again, {"ping": 1})["ok"] == 1.0
    finally:
        links.close()


def test_a_failed_dial_falls_back_for_a_while() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    links = CommandLinks(KEY)
    assert links.get(address) is None
    t, _, server = _member(KEY)  # a member there now: not dialled again before RETRY_S
    try:
        late = TcpTransport(3, address, {}, Inbox(), key=KEY)
        late.command_server = server
        late.start()
        try:
            assert links.get(address) is None
            assert links.get(_addr(t)) is not None  # other addresses are not held back
        finally:
            late.stop()
    finally:
        links.close()
        t.stop()
        server.close()


def test_remote_set_runs_over_the_link_and_drops_it_with_the_member() -> None:
    """``RemoteSet`` sends over the link the member's ``hello`` names (gRPC sees nothing), and
    when its topology gives up on the member, a write waiting on the link is released."""
    from node.sharding.remote import RemoteSet, set_link_key
    from tests.client_scripted_server import ScriptedServer

    t, dispatcher, server = _member(KEY)
    scripted = ScriptedServer("rs0")
    scripted.hello_reply["internalCommandLink"] = _addr(t)
    set_link_key(KEY)
    remote = RemoteSet(f"rs0/{scripted.host}", server_selection_timeout_ms=3000)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            remote.command("db", {"insert": "c", "documents": [{}]}, retry="never")
        except AutoReconnect as exc:
            errors.append(exc)

    try:
        assert remote.command("admin", {"ping": 1})["users"] == [["__system", "local"]]
        assert scripted.commands("ping") == []
        writer = threading.Thread(target=write)
        writer.start()
        dispatcher.wait_held(1)
        remote.client.executor.topology.channels.cancel_in_flight(scripted.address)
        writer.join(10)
        assert not writer.is_alive() and len(errors) == 1
    finally:
        set_link_key(None)
        remote.close()
        scripted.stop()
        t.stop()
        server.close()

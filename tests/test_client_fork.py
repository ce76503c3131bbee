"""Fork safety: a client used in a child forked after it was made refuses with InvalidOperation
(its channels and monitor threads are the parent's); a client made in the child works, and the
parent's client is unharmed. Against an in-process scripted server (no cluster)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

import pytest

import helogale
from helogale.errors import InvalidOperation
from tests.client_scripted_server import ScriptedServer

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _in_child(server: ScriptedServer, client: helogale.MongoClient) -> dict[str, Any]:
    """What the child saw: each attempt's outcome (the error's class and message)."""
    seen: dict[str, Any] = {}

    def attempt(name: str, action: Any) -> None:
        try:
            seen[name] = ["ok", repr(action())]
        except Exception as exc:
            seen[name] = [type(exc).__name__, str(exc)]

    attempt("command", lambda: client.admin.command("ping"))
    attempt("insert", lambda: client.app.hits.insert_one({"x": 1}).acknowledged)
    attempt("address", lambda: client.address)
    attempt("close", client.close)
    fresh = helogale.MongoClient(f"helogale://{server.host}/", serverSelectionTimeoutMS=10000)
    attempt("fresh", lambda: fresh.admin.command("ping")["ok"])
    fresh.close()
    return seen


def test_a_forked_child_cannot_reuse_the_client_but_can_make_its_own() -> None:
    server = ScriptedServer(set_name=None)
    server.router()
    client = helogale.MongoClient(f"helogale://{server.host}/", serverSelectionTimeoutMS=10000)
    try:
        assert client.admin.command("ping")["ok"] == 1.0  # channels and monitors are live
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return into pytest
            code = 0
            try:
                os.close(read)
                with os.fdopen(write, "w") as out:
                    json.dump(_in_child(server, client), out)
            except BaseException:
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as pipe:
            text = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, text
        seen = json.loads(text)
        for name in ("command", "insert", "address"):
            kind, message = seen[name]
            assert kind == InvalidOperation.__name__, seen
            assert f"created in process {os.getpid()}" in message, message
            assert f"process {pid}, forked from it" in message, message
            assert "after the fork" in message, message
        assert seen["close"] == ["ok", "None"]  # leaves the parent's channels alone
        assert seen["fresh"] == ["ok", "1.0"]
        # the parent's client is unharmed, the child's close notwithstanding
        assert client.admin.command("ping")["ok"] == 1.0
        assert client.app.hits.insert_one({"x": 2}).acknowledged
    finally:
        client.close()
        server.stop()


def test_the_examples_shared_client_makes_a_new_client_in_a_forked_child() -> None:
    """``examples.webdemo.SharedClient`` (one client per process, as a preloaded gunicorn
    app's workers need): the parent's client in the parent, a new one in the child, even when
    the fork came while another thread held the holder's lock."""
    from examples.webdemo import SharedClient

    server = ScriptedServer(set_name=None)
    server.router()
    shared = SharedClient(f"helogale://{server.host}/", serverSelectionTimeoutMS=10000)
    try:
        parent_client = shared.get()
        assert shared.get() is parent_client
        assert shared.database("app").command("ping")["ok"] == 1.0
        read, write = os.pipe()
        held, release = threading.Event(), threading.Event()

        def hold_the_lock() -> None:  # another thread holds it at the fork: in the child it
            with shared._lock:        # stays held, that thread being gone
                held.set()
                release.wait(30)

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        held.wait(30)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.alarm(30)  # rather than hang the test run if it did wait
                os.close(read)
                child_client = shared.get()
                ok = shared.database("app").command("ping")["ok"]
                with os.fdopen(write, "w") as out:
                    json.dump([child_client is not parent_client,
                               shared.get() is child_client, ok], out)
                code = 0
            finally:
                os._exit(code)
        release.set()
        holder.join()
        os.close(write)
        with os.fdopen(read) as pipe:
            text = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, text
        assert json.loads(text) == [True, True, 1.0]
        assert shared.get() is parent_client
        assert shared.database("app").command("ping")["ok"] == 1.0
    finally:
        shared.close()
        server.stop()

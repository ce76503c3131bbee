"""Faults fail fast and loud, never as a zombie: a member whose store fills up stops saying it
is primary at once, fails its pending writes (retryably), logs one ERROR line and exits
non-zero while the rest of the set elects a new primary; a primary cut off from its
followers fails its pending writes within about an election timeout."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import helogale
from node.__main__ import FATAL_EXIT_CODE
from node.commands.context import RequestContext
from node.local_cluster import LocalCluster, free_ports, wait_until
from node.server.app import NodeApp
from node.server.config import NodeConfig

PAD = "x" * 8000
RETRYABLE = (11602, 10107)


def test_fault_codes_are_retryable_for_both_clients() -> None:
    """What a failed or deposed member answers: helogale's retry policy and the wire
    protocol's RetryableWriteError label (pymongo's) agree that a retry is safe."""
    from helogale.errors import error_for_reply, is_retryable, write_concern_error_for
    from node.wire.labels import RETRYABLE_WRITE_ERROR, add_error_labels

    write = {"insert": "c", "documents": [{}], "lsid": {"id": b"s"}, "txnNumber": 1}
    for code in (*RETRYABLE, 189):
        reply = {"ok": 0.0, "code": code, "errmsg": "x"}
        assert is_retryable(error_for_reply(reply))
        assert RETRYABLE_WRITE_ERROR in add_error_labels(write, dict(reply))["errorLabels"]
    wce = {"code": 189, "codeName": "PrimarySteppedDown", "errmsg": "x"}
    assert is_retryable(write_concern_error_for(wce))
    labelled = add_error_labels(write, {"ok": 1.0, "n": 1, "writeConcernError": wce})
    assert RETRYABLE_WRITE_ERROR in labelled["errorLabels"]


def test_a_failed_member_exits_even_if_clean_up_hangs() -> None:
    """A thread stuck in gRPC or LMDB (here: the whole clean-up) must not keep a failed
    member's process alive: it exits with the fatal status once the clean-up bound passes."""
    script = (
        "import threading, node.__main__ as m\n"
        "m.FATAL_CLEANUP_S = 0.5\n"
        "class Stuck:\n"
        "    def stop(self):\n"
        "        threading.Event().wait()\n"
        "threading.Thread(target=threading.Event().wait).start()  # a non-daemon thread too\n"
        "m.exit_after_failure(Stuck())\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], timeout=30,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == FATAL_EXIT_CODE
    assert time.monotonic() - started < 10


# --- in process: one member, a real LMDB map that fills up ----------------------------------------
def test_full_store_is_fatal_in_process(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                        ) -> None:
    port, raft_port = free_ports(2)
    config = NodeConfig(member_id=1, listen=f"127.0.0.1:{port}",
                        raft_listen=f"127.0.0.1:{raft_port}", data_dir=str(tmp_path),
                        engine_map_size=512 * 1024, election_timeout_ms=200, heartbeat_ms=50)
    failed = threading.Event()
    app = NodeApp(config, on_fatal=failed.set).start()
    ctx = RequestContext()
    try:
        wait_until(lambda: app.member.hello(ctx)["isWritablePrimary"], 15, "a primary")
        replies: list[dict[str, Any]] = []

        def writer(k: int) -> None:
            for i in range(500):
                reply = app.dispatcher.run("app", {"insert": "c", "documents": [
                    {"_id": f"{k}-{i}", "pad": PAD}]}, ctx)
                replies.append(reply)
                if reply.get("ok") != 1.0:
                    return

        writers = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in writers:
            t.start()
        for t in writers:
            t.join(30)
        assert not any(t.is_alive() for t in writers), "a write hung on the failed member"
        assert failed.wait(10)
        assert app.failure is not None and "MapFullError" in app.failure
        hello = app.member.hello(ctx)
        assert not hello["isWritablePrimary"] and not hello["secondary"]
        assert "primary" not in hello
        errors = [r for r in replies if r.get("ok") != 1.0]
        assert len(errors) == 4 and all(r["code"] in RETRYABLE for r in errors), errors
        late = app.dispatcher.run("app", {"insert": "c", "documents": [{"_id": "late"}]}, ctx)
        assert late["code"] in RETRYABLE
        records = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(records) == 1, [r.getMessage() for r in records]
        assert "MapFullError" in records[0].getMessage()
        # nothing was recorded for the entry that could not apply: a restart re-applies it
        assert app.sm.applied_index < app.member.raft.view.commit
    finally:
        app.stop()


# --- real processes ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Member 1 (priority 2: the primary once settled) has a tiny engine map. The tests run in
    order: the last one fills that map, and member 1 exits."""
    c = LocalCluster(3, priorities=[2.0, 1.0, 1.0],
                     member_args={0: ["--engine-map-size", str(1 << 20)]})
    c.start()
    try:
        yield c
    finally:
        for i in range(3):
            c.resume(i)
        c.stop()


def _wait_primary(cluster: LocalCluster, i: int, timeout: float = 30.0) -> None:
    wait_until(lambda: cluster.primary_index() == i, timeout, f"member {i} to be primary")


def test_cut_off_primary_fails_pending_writes_fast(cluster: LocalCluster) -> None:
    _wait_primary(cluster, 0)
    cluster.command(0, {"insert": "c", "documents": [{"_id": "warm"}]}, db="app")
    cluster.pause(1)
    cluster.pause(2)
    try:
        started = time.monotonic()
        reply = cluster.command(0, {"insert": "c", "documents": [{"_id": "cut-off"}]},
                                db="app", timeout=30)
        took = time.monotonic() - started
    finally:
        cluster.resume(1)
        cluster.resume(2)
    assert reply.get("code") == 11602, reply
    assert reply["codeName"] == "InterruptedDueToReplStateChange"
    # check-quorum steps the primary down after an election timeout (400 ms by default)
    assert took < 3.0, took


def test_full_store_primary_exits_and_the_set_goes_on(cluster: LocalCluster) -> None:
    _wait_primary(cluster, 0)
    m = cluster.members[0]
    client = helogale.MongoClient(cluster.uri, serverSelectionTimeoutMS=20000,
                                  socketTimeoutMS=20000)
    acknowledged: list[str] = []
    try:
        coll = client.app.filled
        for i in range(2000):  # 1 MiB fills well before: ~100 of these
            coll.insert_one({"_id": f"d{i}", "pad": PAD})
            acknowledged.append(f"d{i}")
            if not m.alive:
                break
        code = m.proc.wait(30)  # type: ignore[union-attr]
        assert code == FATAL_EXIT_CODE
        new = cluster.wait_for_primary(30)
        assert new != 0
        for i in range(20):  # the set goes on
            coll.insert_one({"_id": f"after{i}", "pad": "y"})
        ids = {d["_id"] for d in coll.find({}, {"_id": 1})}
        assert set(acknowledged) <= ids and {f"after{i}" for i in range(20)} <= ids
    finally:
        client.close()
    with open(os.path.join(cluster.data_dir, "member1.log")) as fh:
        lines = [json.loads(line) for line in fh if line.startswith("{")]
    errors = [line for line in lines if line["level"] in ("ERROR", "CRITICAL")]
    assert len(errors) == 1, errors
    assert "MapFullError" in errors[0]["msg"] and errors[0]["where"] == "persist"

"""Start, kill and restart ``kv_member`` processes on loopback and talk to them.

Shared by the real-process tests (tests/raft_io/test_cluster.py) and ``python -m bench raft``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bson
import grpc

from node.local_cluster import wait_until
from proto import helogale_pb2, helogale_pb2_grpc
from raft.auth import write_keyfile

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MemberClient:
    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address)
        self.stub = helogale_pb2_grpc.CommandStub(self.channel)

    def call(self, cmd: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        reply = self.stub.Run(helogale_pb2.CommandRequest(db="admin", command=bson.encode(cmd)),
                              timeout=timeout)
        return bson.decode(reply.reply)

    def stream_puts(self, items: list[tuple[str, bytes]], timeout: float = 20.0) -> list[bytes]:
        """Puts over one ``/helogale.raftio.KV/Puts`` stream; the raw replies, in order."""
        call = self.channel.stream_stream("/helogale.raftio.KV/Puts", request_serializer=None,
                                          response_deserializer=None)
        return list(call(iter([k.encode() + b"\0" + v for k, v in items]), timeout=timeout))

    def try_call(self, cmd: dict[str, Any], timeout: float = 2.0) -> dict[str, Any] | None:
        try:
            return self.call(cmd, timeout)
        except grpc.RpcError:
            return None

    def close(self) -> None:
        self.channel.close()


class KVCluster:
    def __init__(self, root: Path, n: int = 3, *, extra_args: list[str] | None = None) -> None:
        self.root = Path(root)
        self.ids = list(range(1, n + 1))
        self.raft_addr = {i: f"127.0.0.1:{free_port()}" for i in self.ids}
        self.client_addr = {i: f"127.0.0.1:{free_port()}" for i in self.ids}
        self.extra_args = extra_args or []
        self.root.mkdir(parents=True, exist_ok=True)
        self.keyfile = self.root / "keyfile"
        if not self.keyfile.exists():
            write_keyfile(self.keyfile)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.clients = {i: MemberClient(self.client_addr[i]) for i in self.ids}

    def start(self, i: int) -> None:
        peers = ",".join(f"{k}={v}" for k, v in self.raft_addr.items())
        cmd = [sys.executable, "-m", "tests.raft_io.kv_member", "--id", str(i),
               "--dir", str(self.root / f"m{i}"), "--peers", peers,
               "--client", self.client_addr[i], "--keyfile", str(self.keyfile),
               *self.extra_args]
        log = open(self.root / f"m{i}.log", "ab")  # noqa: SIM115 - handed to the child
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.procs[i] = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=log, env=env)
        log.close()
        wait_until(lambda: self.status(i) is not None, 30, f"member {i} to answer")

    def start_all(self) -> KVCluster:
        for i in self.ids:
            self.start(i)
        return self

    def kill(self, i: int) -> None:
        p = self.procs.pop(i)
        p.send_signal(signal.SIGKILL)
        p.wait()

    def status(self, i: int) -> dict[str, Any] | None:
        if i not in self.procs:
            return None
        return self.clients[i].try_call({"status": 1})

    def leader(self) -> int | None:
        """The member that says it leads, at the highest term (None if nobody does)."""
        best: tuple[int, int] | None = None
        for i in list(self.procs):
            st = self.status(i)
            if st and st["role"] == "LEADER" and (best is None or st["term"] > best[0]):
                best = (st["term"], i)
        return best[1] if best else None

    def wait_leader(self, timeout: float = 15.0, exclude: int | None = None) -> int:
        return wait_until(lambda: (lambda L: L if L and exclude != L else None)(self.leader()),
                          timeout, "a leader")

    def put(self, key: str, value: bytes, timeout: float = 15.0) -> int:
        """Put through whichever member leads, retrying across elections; returns the index."""
        deadline = time.monotonic() + timeout
        while True:
            lead = self.leader()
            if lead is not None:
                r = self.clients[lead].try_call({"put": key, "value": value, "timeout": 3.0},
                                                timeout=5.0)
                if r and r["ok"]:
                    return r["index"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"put {key!r} did not commit")
            time.sleep(0.01)

    def get(self, i: int, key: str) -> bytes | None:
        return self.clients[i].call({"get": key})["value"]

    def stop_all(self) -> None:
        for i in list(self.procs):
            p = self.procs.pop(i)
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for c in self.clients.values():
            c.close()

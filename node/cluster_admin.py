"""Small operator commands for clusters run by something else (containers, systemd):
``helogale ping HOST:PORT`` (is a member or router answering? used by healthchecks) and
``helogale add-shard --router HOST:PORT SPEC...`` (add replica sets as shards through a router,
retrying while the cluster is still starting; adding a shard again changes nothing).

Both speak the gRPC command protocol directly (no client topology, no monitors), so a ping
costs one round trip after the imports (about 0.2 s in all)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import bson
import grpc

from node.local_cluster import CHANNEL_OPTIONS, CODEC
from proto import helogale_pb2, helogale_pb2_grpc

ADD_SHARD_TIMEOUT_S = 120.0
"""How long ``add-shard`` keeps retrying by default (a cold cluster of containers on a loaded
machine takes a minute or more to elect its primaries)."""


def command(address: str, cmd: Mapping[str, Any], db: str = "admin",
            timeout: float = 2.0) -> dict[str, Any]:
    """Run ``cmd`` on the member or router at ``address``; raises grpc.RpcError when it does not
    answer in ``timeout`` seconds."""
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = helogale_pb2_grpc.CommandStub(channel)
        reply = stub.Run(helogale_pb2.CommandRequest(db=db, command=bson.encode(cmd)),
                         timeout=timeout, wait_for_ready=True)
    return bson.decode(reply.reply, codec_options=CODEC)


def ping(address: str, timeout: float = 2.0) -> tuple[bool, str]:
    """(answers ``hello`` with ok: 1, a one-line description) for the process at ``address``."""
    try:
        reply = command(address, {"hello": 1}, timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        return False, f"{address}: no answer ({getattr(code, 'name', code)})"
    if reply.get("ok") != 1.0:
        return False, f"{address}: {reply.get('errmsg', reply)}"
    if reply.get("msg") == "isdbgrid":
        return True, f"{address}: router"
    role = ("primary" if reply.get("isWritablePrimary") else
            "secondary" if reply.get("secondary") else "member")
    return True, f"{address}: {role} of {reply.get('setName', '?')}"


def add_shards(routers: Sequence[str], specs: Sequence[str], *,
               timeout: float = ADD_SHARD_TIMEOUT_S, out: TextIO | None = None,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep,
               run: Callable[..., dict[str, Any]] = command) -> bool:
    """Add each ``SET/HOST:PORT,...`` of ``specs`` as a shard through the first of ``routers``
    that answers, retrying every failure (routers or sets still starting, no primary yet)
    until ``timeout``. True when every shard was added (or already was)."""
    deadline = clock() + timeout
    for spec in specs:
        attempt, last = 0, ""
        while True:
            router = routers[attempt % len(routers)]
            attempt += 1
            try:
                reply = run(router, {"addShard": spec}, timeout=min(30.0, max(
                    1.0, deadline - clock())))
            except grpc.RpcError as exc:
                reply = {"ok": 0.0, "errmsg": f"{router} did not answer "
                         f"({getattr(exc.code(), 'name', '?') if hasattr(exc, 'code') else exc})"}
            if reply.get("ok") == 1.0:
                if out is not None:
                    print(f"add-shard: {reply.get('shardAdded', spec)} added via {router}",
                          file=out, flush=True)
                break
            last = str(reply.get("errmsg", reply))
            if clock() >= deadline:
                if out is not None:
                    print(f"add-shard: {spec}: gave up after {timeout:.0f} s: {last}",
                          file=out, flush=True)
                return False
            sleep(min(2.0, 0.25 * attempt))
    return True

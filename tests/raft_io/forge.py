"""An outsider's (or a misbehaving member's) Raft stream, for tests: open ``RaftTransport.Stream``
on a member's Raft port with hand-made batches and optional credentials, and say how it ended."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from proto import raft_pb2, raft_pb2_grpc
from raft.auth import client_metadata
from raft.transport import message_to_proto
from raft.types import Message


def batch(frm: int, msgs: Sequence[Message | raft_pb2.RaftMessage]) -> raft_pb2.RaftBatch:
    b = raft_pb2.RaftBatch(messages=[m if isinstance(m, raft_pb2.RaftMessage)
                                     else message_to_proto(m) for m in msgs])
    setattr(b, "from", frm)
    return b


def credentials(address: str, key: bytes, sender: int, receiver: int) -> list[tuple[str, str]]:
    """A valid proof for one stream (asks the member for a nonce)."""
    with grpc.insecure_channel(address) as ch:
        reply = raft_pb2_grpc.RaftTransportStub(ch).Challenge(raft_pb2.ChallengeRequest(),
                                                              timeout=5)
    return client_metadata(key, reply.nonce, sender, receiver)


def send(address: str, batches: Sequence[raft_pb2.RaftBatch],
         metadata: Sequence[tuple[str, str]] | None = None) -> grpc.StatusCode:
    """Stream ``batches`` to ``address``; OK if the member took the whole stream."""
    with grpc.insecure_channel(address) as ch:
        try:
            raft_pb2_grpc.RaftTransportStub(ch).Stream(iter(batches), metadata=metadata,
                                                       timeout=10, wait_for_ready=True)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK

"""An outsider's (or a misbehaving member's) Raft stream, for tests: open ``RaftTransport.Stream``
on a member's Raft port (``kind="grpc"``) or a raw connection (``kind="tcp"``,
``raft.tcp_transport``'s handshake) with hand-made batches and optional credentials, and say how
it ended (as a gRPC status code for both: OK, or UNAUTHENTICATED when the member refused)."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Sequence

import grpc

from proto import raft_pb2, raft_pb2_grpc
from raft.auth import client_metadata
from raft.tcp_transport import _LEN, MAGIC, MAX_HANDSHAKE, _frame, _read_frame, split_address
from raft.tls import TLSSettings
from raft.transport import message_to_proto
from raft.types import Message


def batch(frm: int, msgs: Sequence[Message | raft_pb2.RaftMessage]) -> raft_pb2.RaftBatch:
    b = raft_pb2.RaftBatch(messages=[m if isinstance(m, raft_pb2.RaftMessage)
                                     else message_to_proto(m) for m in msgs])
    setattr(b, "from", frm)
    return b


class TcpCredentials(list[tuple[str, str]]):
    """A proof for a raw TCP stream. The member's nonce is good only on the connection it was
    sent on, so the proof is made there, by the first ``send`` that uses these credentials;
    used again, they replay that proof (as an eavesdropper would)."""

    def __init__(self, key: bytes, sender: int, receiver: int) -> None:
        super().__init__()
        self.key, self.sender, self.receiver = key, sender, receiver

    def answer(self, nonce: bytes) -> None:
        if not self:
            self.extend(client_metadata(self.key, nonce, self.sender, self.receiver))


def credentials(address: str, key: bytes, sender: int, receiver: int, kind: str = "grpc"
                ) -> list[tuple[str, str]]:
    """A valid proof for one stream (over gRPC asks the member for a nonce now; over TCP the
    proof is made on the connection that first uses it: ``TcpCredentials``)."""
    if kind == "tcp":
        return TcpCredentials(key, sender, receiver)
    with grpc.insecure_channel(address) as ch:
        reply = raft_pb2_grpc.RaftTransportStub(ch).Challenge(raft_pb2.ChallengeRequest(),
                                                              timeout=5)
    return client_metadata(key, reply.nonce, sender, receiver)


def _tcp_connect(address: str, tls: TLSSettings | None = None) -> socket.socket:
    host, port = split_address(address)
    sock = socket.create_connection((host, port), timeout=10)
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(tls.ca_file)
        ctx.load_cert_chain(tls.certificate_key_file)
        sock = ctx.wrap_socket(sock, server_hostname=host)
    sock.sendall(MAGIC)
    return sock


def hello(address: str, tls: TLSSettings | None = None) -> dict[str, object]:
    """The first frame a member's TCP Raft port sends (its id and a nonce); raises OSError
    when the member refuses the connection (a certificate its CA did not sign)."""
    with _tcp_connect(address, tls) as sock:
        return dict(json.loads(_read_frame(sock.makefile("rb"), MAX_HANDSHAKE)))


def _send_tcp(address: str, batches: Sequence[raft_pb2.RaftBatch],
              metadata: Sequence[tuple[str, str]] | None, tls: TLSSettings | None
              ) -> grpc.StatusCode:
    with _tcp_connect(address, tls) as sock:
        f = sock.makefile("rb")
        hello = json.loads(_read_frame(f, MAX_HANDSHAKE))
        if isinstance(metadata, TcpCredentials):
            metadata.answer(bytes.fromhex(hello["nonce"]))
        sock.sendall(_frame({"metadata": [list(kv) for kv in metadata or ()]}))
        if not json.loads(_read_frame(f, MAX_HANDSHAKE)).get("ok"):
            return grpc.StatusCode.UNAUTHENTICATED
        try:
            for b in batches:
                body = b.SerializeToString()
                sock.sendall(_LEN.pack(len(body)) + body)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the member refused a batch and closed while we were still sending
            return grpc.StatusCode.UNAUTHENTICATED
        try:
            rest = f.read()  # the member closes: silently when it took everything
        except OSError:
            rest = b"refused"
        return grpc.StatusCode.UNAUTHENTICATED if rest else grpc.StatusCode.OK


def send(address: str, batches: Sequence[raft_pb2.RaftBatch],
         metadata: Sequence[tuple[str, str]] | None = None, kind: str = "grpc",
         tls: TLSSettings | None = None) -> grpc.StatusCode:
    """Stream ``batches`` to ``address``; OK if the member took the whole stream."""
    if kind == "tcp":
        return _send_tcp(address, batches, metadata, tls)
    with grpc.insecure_channel(address) as ch:
        try:
            raft_pb2_grpc.RaftTransportStub(ch).Stream(iter(batches), metadata=metadata,
                                                       timeout=10, wait_for_ready=True)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK

"""One gRPC channel per server address: encodes a command document as BSON, runs ``Command.Run``,
decodes the BSON reply. Channels are thread-safe and shared by every thread of a client.

Transport failures become :class:`~helogale.errors.AutoReconnect` (or ``NetworkTimeout``);
this layer does not look inside replies (``ok: 0`` is the caller's business).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import bson
import grpc
from bson.codec_options import DEFAULT_CODEC_OPTIONS, CodecOptions

from helogale.errors import AutoReconnect, DocumentTooLarge, NetworkTimeout, ProtocolError
from proto import helogale_pb2, helogale_pb2_grpc

Address = tuple[str, int]

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_BSON_SIZE = 16 * 1024 * 1024

_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # reconnect quickly after a member restarts (gRPC's default backoff grows to minutes)
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
]


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Channel:
    """The client's channel to one server."""

    def __init__(self, address: Address, timeout: float | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = grpc.insecure_channel(format_address(address), options=_CHANNEL_OPTIONS)
        self._run = helogale_pb2_grpc.CommandStub(self._channel).Run
        self._closed = False
        self._abandoned = False

    def run(
        self,
        db: str,
        command: Mapping[str, Any],
        codec_options: CodecOptions = DEFAULT_CODEC_OPTIONS,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Run ``command`` against database ``db`` and return the decoded reply document."""
        payload = bson.encode(command, codec_options=codec_options)
        if len(payload) > MAX_BSON_SIZE + 16 * 1024:
            raise DocumentTooLarge(
                f"command document too large: {len(payload)} bytes, the limit is {MAX_BSON_SIZE}"
            )
        deadline = timeout if timeout is not None else self.timeout
        request = helogale_pb2.CommandRequest(db=db, command=payload)
        try:
            response = self._run(request, timeout=deadline)
        except grpc.RpcError as exc:
            if self._abandoned:
                raise AutoReconnect(
                    f"{format_address(self.address)}: request abandoned, the server was "
                    "marked unknown",
                    address=self.address,
                ) from None
            raise self._translate(exc) from None
        except ValueError as exc:  # "Cannot invoke RPC on closed channel!"
            raise AutoReconnect(f"{format_address(self.address)}: {exc}", address=self.address) from None
        try:
            return bson.decode(response.reply, codec_options=codec_options)
        except Exception as exc:
            raise ProtocolError(f"{format_address(self.address)} sent an undecodable reply: {exc}") from None

    def _translate(self, exc: grpc.RpcError) -> AutoReconnect:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        message = f"{format_address(self.address)}: {details} ({code.name if code else 'error'})"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return NetworkTimeout(message, address=self.address)
        return AutoReconnect(message, address=self.address)

    def abandon(self) -> None:
        """Close the channel, failing every request still waiting on this server (it was found
        unreachable or deposed): their callers get AutoReconnect and the retry policy takes
        over. The pool makes a fresh channel for later requests."""
        self._abandoned = True
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._channel.close()


class ChannelPool:
    """Channels by address, created on first use; one per server for the whole client."""

    def __init__(self, timeout: float | None = None) -> None:
        self._timeout = timeout
        self._channels: dict[Address, Channel] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, address: Address) -> Channel:
        with self._lock:
            if self._closed:
                raise AutoReconnect("the client is closed", address=address)
            channel = self._channels.get(address)
            if channel is None:
                channel = self._channels[address] = Channel(address, self._timeout)
            return channel

    def cancel_in_flight(self, address: Address) -> bool:
        """Abandon the requests in flight to ``address`` (see :meth:`Channel.abandon`)."""
        with self._lock:
            channel = self._channels.pop(address, None)
        if channel is None:
            return False
        channel.abandon()
        return True

    def discard(self, address: Address) -> None:
        with self._lock:
            channel = self._channels.pop(address, None)
        if channel is not None:
            channel.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()

"""The asyncio client's executor: the same retry policy as :class:`helogale.retry.Executor`
(its decisions are :class:`~helogale.retry.RetryLoop`'s; a write's session fields, the same on
every attempt, are :class:`~helogale.retry.RetryableWrite`'s), with the operation awaited."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bson.codec_options import DEFAULT_CODEC_OPTIONS

from helogale.channel import Address
from helogale.errors import PyMongoError
from helogale.read_preferences import ReadPreference, ServerMode
from helogale.retry import Executor, RetryableWrite, RetryLoop, RetryRefused
from helogale.topology import ServerDescription

T = TypeVar("T")
AsyncOperation = Callable[[ServerDescription, Any], Awaitable[T]]


class AsyncExecutor(Executor):
    """Runs awaitable operations against an :class:`~helogale.asyncio.topology.AsyncTopology`."""

    async def run(  # type: ignore[override]
        self,
        operation: AsyncOperation[T],
        *,
        read_preference: ServerMode = ReadPreference.PRIMARY,
        retryable: bool | Callable[[], bool],
        address: Address | None = None,
    ) -> T:
        """Await ``operation(server, channel)``; retried as :meth:`Executor.run` retries."""
        topology = self.topology
        loop = RetryLoop(topology, retryable, address)
        while True:
            selection = loop.selection()
            if address is not None:
                server = ServerDescription(address)
            else:
                server = await topology.select_server(read_preference, **selection)
            try:
                return await operation(server, topology.channels.get(server.address))
            except RetryRefused:
                raise loop.refused() from None
            except PyMongoError as exc:
                loop.failed(exc, server)
                self._count_retry()

    async def read(  # type: ignore[override]
        self, operation: AsyncOperation[T], read_preference: ServerMode = ReadPreference.PRIMARY
    ) -> T:
        return await self.run(operation, read_preference=read_preference,
                              retryable=self.retry_reads)

    async def write(  # type: ignore[override]
        self,
        build: Callable[[ServerDescription, dict[str, Any] | None], tuple[str, dict[str, Any]]],
        handle: Callable[[dict[str, Any], ServerDescription], T],
        *,
        retryable: bool,
        codec_options: Any = None,
    ) -> T:
        """A write command, retried at most with the session fields of its first run (see
        :meth:`Executor.write`)."""
        write = RetryableWrite(self.sessions, retryable and self.retry_writes)

        async def operation(server: ServerDescription, channel: Any) -> T:
            db, command = build(server, write.session_fields(server))
            reply = await channel.run(db, command, codec_options or DEFAULT_CODEC_OPTIONS)
            return handle(reply, server)

        try:
            return await self.run(operation, retryable=write.may_retry)
        finally:
            write.release()

"""``AsyncMongoClient``: pymongo's asyncio client API (pymongo >= 4.9) on grpc.aio.

The client is made anywhere and used from one event loop: its channels and monitor tasks are
created on that loop when the first operation runs (or at construction, inside a running
loop). Options, URI parsing and database handles are :mod:`helogale.client_common`'s; the
topology rules, retry policy, commands, replies and errors are the threaded client's (see
``docs/client.md``, "The asyncio client"). Not supported yet: tailable cursors,
the classic pymongo 2 calls and map-reduce (GridFS: a small bucket in helogale.asyncio.gridfs).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bson.codec_options import CodecOptions

from helogale.asyncio.channel import AsyncChannelPool
from helogale.asyncio.database import AsyncDatabase
from helogale.asyncio.executor import AsyncExecutor
from helogale.asyncio.topology import AsyncTopology
from helogale.channel import Address
from helogale.client_common import ClientBase, with_read_preference
from helogale.errors import check_reply
from helogale.read_preferences import ReadPreference, ServerMode
from helogale.topology import MONGOS, ServerDescription


class AsyncMongoClient(ClientBase):
    """``AsyncMongoClient(host="helogale://h1:p1,h2:p2/", port=None, **options)``: the options
    of :class:`helogale.MongoClient`. ``await client.close()`` or ``async with
    AsyncMongoClient(...) as client:``."""

    _database_class = AsyncDatabase

    _pool_class = AsyncChannelPool
    _topology_class = AsyncTopology
    _executor_class = AsyncExecutor

    def _connect(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop yet: the monitors start with the first operation
        else:
            self._topology.open()

    # --- state ----------------------------------------------------------------------------------
    async def _writable_server(self) -> ServerDescription:
        return await self._topology.select_server(ReadPreference.PRIMARY)

    @property
    async def address(self) -> Address | None:
        """The server writes go to (``await client.address``, as in pymongo's async client)."""
        return (await self._writable_server()).address

    @property
    async def is_mongos(self) -> bool:
        return (await self._writable_server()).server_type == MONGOS

    async def server_info(self) -> dict[str, Any]:
        return await self.admin.command("hello")

    async def list_databases(self, **kwargs: Any) -> list[dict[str, Any]]:
        reply = await self.admin.command({"listDatabases": 1, **kwargs})
        return list(reply.get("databases", []))

    async def list_database_names(self) -> list[str]:
        return [d["name"] for d in await self.list_databases(nameOnly=True)]

    async def drop_database(self, name_or_database: str | AsyncDatabase) -> None:
        name = getattr(name_or_database, "name", name_or_database)
        if not isinstance(name, str):
            raise TypeError("name_or_database must be an instance of str or a Database")
        await self[name].command("dropDatabase")

    # --- running commands (used by AsyncDatabase, AsyncCollection, the cursors) -----------------
    async def read_command(self, db: str, command: dict[str, Any], read_preference: ServerMode,
                           codec_options: CodecOptions) -> tuple[dict[str, Any], Address]:
        """A read command, retried per the retry policy; returns ``(reply, server address)``."""
        return await self.executor.read(
            self._command_operation(db, command, read_preference, codec_options, True, (),
                                    with_address=True), read_preference)

    async def run_command(self, db: str, command: dict[str, Any], *,
                          read_preference: ServerMode = ReadPreference.PRIMARY,
                          codec_options: CodecOptions | None = None, check: bool = True,
                          allowable_errors: tuple[Any, ...] = ()) -> dict[str, Any]:
        """Any command, passed through unchanged (not retried); the raw reply is returned."""
        operation = self._command_operation(db, command, read_preference,
                                            codec_options or self._codec_options, check,
                                            allowable_errors)
        return await self.executor.run(operation, read_preference=read_preference,
                                       retryable=False)

    def _command_operation(self, db: str, command: dict[str, Any], read_preference: ServerMode,
                           codec_options: CodecOptions, check: bool,
                           allowable_errors: tuple[Any, ...], with_address: bool = False) -> Any:
        direct = self._topology.direct

        async def operation(server: ServerDescription, channel: Any) -> Any:
            document = with_read_preference(command, read_preference, direct, server.is_writable)
            reply = await channel.run(db, document, codec_options)
            if check:
                check_reply(reply, server.address, allowable_errors)
            return (reply, server.address) if with_address else reply

        return operation

    # --- lifecycle ------------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop the monitor tasks and close every channel (nothing in a process forked after
        the client was made: all of that is the parent's)."""
        if self._channels.forked:
            return
        await self._topology.close()
        await self._channels.close()

    async def __aenter__(self) -> AsyncMongoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

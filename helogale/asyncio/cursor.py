"""Async cursors: :class:`AsyncCursor` (``find``) and :class:`AsyncCommandCursor`
(``aggregate``, ``listCollections``, ``listIndexes``). ``async for``, ``await cursor.next()``,
``await cursor.to_list(n)``. Their options, commands and iteration steps are the threaded
cursors' (:class:`~helogale.cursor.FindCursorBase`, :class:`~helogale.cursor._CursorState`);
here the getMore and killCursors are awaited. Tailable cursors are not supported here.
"""

from __future__ import annotations

import contextlib
from typing import Any

from helogale.cursor import (
    DOC,
    FIND,
    KILL,
    MORE,
    STOP,
    CommandCursorBase,
    FindCursorBase,
    _CursorState,
)
from helogale.errors import InvalidOperation, PyMongoError, check_reply
from helogale.topology import ServerDescription


class _AsyncBatches(_CursorState):
    """getMore / killCursors through the asyncio client's executor."""

    async def _get_more(self, batch_size: int | None) -> None:
        command = self._get_more_command(batch_size)
        db, codec = self._db, self._codec_options

        async def operation(server: ServerDescription, channel: Any) -> dict[str, Any]:
            reply = await channel.run(db, command, codec)
            check_reply(reply, server.address)
            return reply

        try:
            reply = await self._client.executor.run(operation, retryable=False,
                                                    address=self._address)
        except PyMongoError:
            self._id = 0
            raise
        self._absorb(reply["cursor"], "nextBatch")

    async def _kill(self) -> None:
        command = self._take_kill_command()
        if command is None:
            return
        db = self._db

        async def operation(server: ServerDescription, channel: Any) -> None:
            await channel.run(db, command)

        # a failure is harmless: the server reaps abandoned cursors itself
        with contextlib.suppress(PyMongoError):
            await self._client.executor.run(operation, retryable=False, address=self._address)

    def __aiter__(self) -> Any:
        return self

    async def next(self) -> Any:
        return await self.__anext__()  # type: ignore[attr-defined]

    async def to_list(self, length: int | None = None) -> list[Any]:
        """The next ``length`` documents (all that are left with None)."""
        documents: list[Any] = []
        async for document in self:
            documents.append(document)
            if length is not None and len(documents) >= length:
                break
        return documents

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()  # type: ignore[attr-defined]


class AsyncCommandCursor(CommandCursorBase, _AsyncBatches):
    """A command's cursor (``aggregate``, ``list_indexes``...), iterated with ``async for``."""

    async def __anext__(self) -> Any:
        if not self._data and self._id:
            await self._get_more(self._batch_size)
        if self._data:
            return self._data.popleft()
        raise StopAsyncIteration

    async def close(self) -> None:
        self._data.clear()
        await self._kill()


class AsyncCursor(FindCursorBase, _AsyncBatches):
    """The result of ``collection.find(...)`` (not awaited): options are set before iteration
    starts; iteration streams."""

    def __init__(self, collection: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(collection, *args, **kwargs)
        if self._tailable:
            raise InvalidOperation("the asyncio client does not support tailable cursors yet")

    async def __anext__(self) -> Any:
        while True:
            action, document = self._step()
            if action == DOC:
                return document
            if action == KILL:
                await self._kill()
                raise StopAsyncIteration
            if action == STOP:
                raise StopAsyncIteration
            if action == FIND:
                self._started = True
                self._opened(*await self._collection.read_command(self.find_command()))
            elif action == MORE:
                await self._get_more(self._next_batch_size())

    async def close(self) -> None:
        self._data.clear()
        await self._kill()
        self._started = True

    def __repr__(self) -> str:
        return f"<helogale.asyncio.AsyncCursor {self._collection.full_name} filter={self._filter!r}>"

"""``AsyncDatabase``: collections by attribute or item, ``await db.command(...)``, collection
management. Options and command documents are :class:`~helogale.database.DatabaseBase`'s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson.codec_options import CodecOptions

from helogale.asyncio.collection import AsyncCollection
from helogale.asyncio.cursor import AsyncCommandCursor
from helogale.database import DatabaseBase
from helogale.read_preferences import ReadPreference, ServerMode


class AsyncDatabase(DatabaseBase):
    """A database of an :class:`~helogale.asyncio.AsyncMongoClient`."""

    _collection_class = AsyncCollection

    async def command(self, command: str | Mapping[str, Any], value: Any = 1, check: bool = True,
                      allowable_errors: list[Any] | None = None,
                      read_preference: ServerMode | None = None,
                      codec_options: CodecOptions | None = None, **kwargs: Any) -> dict[str, Any]:
        """Run any command document; the server's raw reply (``ok: 0`` raises when ``check``)."""
        return await self._client.run_command(
            self._name, self._command_document(command, value, kwargs),
            read_preference=read_preference or ReadPreference.PRIMARY,
            codec_options=codec_options or self._codec_options,
            check=check, allowable_errors=tuple(allowable_errors or ()))

    async def list_collections(self, filter: Mapping[str, Any] | None = None,
                               **kwargs: Any) -> AsyncCommandCursor:
        reply, address = await self._client.read_command(
            self._name, self._list_collections_command(filter, kwargs), ReadPreference.PRIMARY,
            self._codec_options)
        return AsyncCommandCursor(self._client, self._name, reply["cursor"], address,
                                  self._codec_options)

    async def list_collection_names(self, filter: Mapping[str, Any] | None = None,
                                    **kwargs: Any) -> list[str]:
        cursor = await self.list_collections(filter, nameOnly=True, **kwargs)
        return [c["name"] for c in await cursor.to_list()]

    async def create_collection(self, name: str, **kwargs: Any) -> AsyncCollection:
        await self.command({"create": name, **kwargs})
        return AsyncCollection(self, name)

    async def drop_collection(self, name_or_collection: Any) -> dict[str, Any]:
        name = self._drop_target(name_or_collection)
        return self._check_drop(await self.command({"drop": name}, check=False))

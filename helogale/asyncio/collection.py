"""``AsyncCollection``: pymongo's async collection API on the asyncio client. Every method's
command and result are :class:`~helogale.collection.CollectionBase`'s operations (the threaded
:class:`~helogale.collection.Collection` runs the same ones); here they are awaited. The classic
pymongo 2 calls (``insert``, ``save``, ``find_and_modify``...), map-reduce and tailable cursors
are the threaded client's only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from helogale.asyncio.cursor import AsyncCommandCursor, AsyncCursor
from helogale.bulk import Bulk
from helogale.collection import CollectionBase, IndexModel, Op, ReturnDocument, filter_for
from helogale.errors import check_write_reply
from helogale.read_preferences import ReadPreference, ServerMode
from helogale.results import BulkWriteResult, InsertManyResult
from helogale.write_concern import WriteConcern


class AsyncCollection(CollectionBase):
    """A collection of an :class:`~helogale.asyncio.AsyncDatabase`."""

    @property
    def _executor(self) -> Any:
        return self._database.client.executor

    async def read_command(self, command: dict[str, Any],
                           read_preference: ServerMode | None = None) -> tuple[dict[str, Any], Any]:
        """Run a read command as a retryable read; returns ``(reply, server address)``."""
        return await self._database.client.read_command(
            self._database.name, self._with_read_concern(command),
            read_preference or self._read_preference, self._codec_options)

    async def _write(self, command: dict[str, Any], write_concern: WriteConcern,
                     retryable: bool, check: Any = check_write_reply) -> dict[str, Any]:
        build, handle = self._write_steps(command, write_concern, check)
        return await self._executor.write(build, handle, retryable=retryable,
                                          codec_options=self._codec_options)

    async def _run(self, op: Op) -> Any:
        if op.write_concern is None:
            reply, _ = await self.read_command(op.command, op.read_preference)
        else:
            reply = await self._write(op.command, op.write_concern, op.retryable, op.check)
        return op.result(reply)

    async def _execute(self, bulk: Bulk) -> BulkWriteResult:
        """Run a bulk's plan (:meth:`~helogale.bulk.Bulk.plan`), awaiting each batch."""
        plan = bulk.plan()
        try:
            kind, batch = next(plan)
            while True:
                build, handle, retryable = bulk.batch_steps(kind, batch)
                reply = await self._executor.write(build, handle, retryable=retryable,
                                                   codec_options=self._codec_options)
                kind, batch = plan.send(reply)
        except StopIteration as done:
            return done.value

    # --- writes ---------------------------------------------------------------------------------
    async def insert_one(self, document: Mapping[str, Any],
                         bypass_document_validation: bool = False) -> Any:
        return await self._run(self._insert_one_op(document, bypass_document_validation))

    async def insert_many(self, documents: Iterable[Mapping[str, Any]], ordered: bool = True,
                          bypass_document_validation: bool = False) -> InsertManyResult:
        bulk, ids = self._insert_many_bulk(documents, ordered)
        await self._execute(bulk)
        return InsertManyResult(ids, self._write_concern.acknowledged)

    async def update_one(self, filter: Mapping[str, Any], update: Any, upsert: bool = False,
                         **options: Any) -> Any:
        return await self._run(self._update_result_op(filter, update, multi=False,
                                                      upsert=upsert, **options))

    async def update_many(self, filter: Mapping[str, Any], update: Any, upsert: bool = False,
                          **options: Any) -> Any:
        return await self._run(self._update_result_op(filter, update, multi=True,
                                                      upsert=upsert, **options))

    async def replace_one(self, filter: Mapping[str, Any], replacement: Mapping[str, Any],
                          upsert: bool = False, **options: Any) -> Any:
        return await self._run(self._update_result_op(filter, replacement, multi=False,
                                                      replacement=True, upsert=upsert,
                                                      **options))

    async def delete_one(self, filter: Mapping[str, Any], **options: Any) -> Any:
        return await self._run(self._delete_result_op(filter, 1, **options))

    async def delete_many(self, filter: Mapping[str, Any], **options: Any) -> Any:
        return await self._run(self._delete_result_op(filter, 0, **options))

    async def bulk_write(self, requests: Iterable[Any], ordered: bool = True,
                         bypass_document_validation: bool = False) -> BulkWriteResult:
        return await self._execute(self._bulk_write_bulk(requests, ordered))

    async def find_one_and_update(self, filter: Mapping[str, Any], update: Any,
                                  projection: Any = None, sort: Any = None, upsert: bool = False,
                                  return_document: bool = ReturnDocument.BEFORE,
                                  **options: Any) -> Any:
        return await self._run(self._find_one_and_op(
            filter, update=update, projection=projection, sort=sort, upsert=upsert,
            return_document=return_document, **options))

    async def find_one_and_replace(self, filter: Mapping[str, Any],
                                   replacement: Mapping[str, Any], projection: Any = None,
                                   sort: Any = None, upsert: bool = False,
                                   return_document: bool = ReturnDocument.BEFORE,
                                   **options: Any) -> Any:
        return await self._run(self._find_one_and_op(
            filter, update=replacement, replacement=True, projection=projection, sort=sort,
            upsert=upsert, return_document=return_document, **options))

    async def find_one_and_delete(self, filter: Mapping[str, Any], projection: Any = None,
                                  sort: Any = None, **options: Any) -> Any:
        return await self._run(self._find_one_and_op(filter, remove=True, projection=projection,
                                                     sort=sort, **options))

    # --- reads ----------------------------------------------------------------------------------
    def find(self, *args: Any, **kwargs: Any) -> AsyncCursor:
        """``find(filter=None, projection=None, skip=0, limit=0, sort=None, ...)`` -> an
        :class:`~helogale.asyncio.AsyncCursor` (not awaited; iterate it with ``async for``)."""
        return AsyncCursor(self, *args, **kwargs)

    async def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        cursor = self.find(filter_for(filter), *args, **kwargs).limit(-1)
        async for document in cursor:
            return document
        return None

    async def count_documents(self, filter: Mapping[str, Any], **kwargs: Any) -> int:
        return await self._run(self._count_documents_op(filter, **kwargs))

    async def estimated_document_count(self, **kwargs: Any) -> int:
        return await self.count_documents({}, **kwargs)

    async def distinct(self, key: str, filter: Mapping[str, Any] | None = None,
                       **kwargs: Any) -> list[Any]:
        return await self._run(self._distinct_op(key, filter, **kwargs))

    async def aggregate(self, pipeline: list[Mapping[str, Any]], batch_size: int = 0,
                        **kwargs: Any) -> AsyncCommandCursor:
        """Run an aggregation pipeline; returns an :class:`AsyncCommandCursor`."""
        op = self._aggregate_op(pipeline, batch_size, **kwargs)
        reply, address = await self.read_command(op.command, op.read_preference)
        return AsyncCommandCursor(self._database.client, self._database.name, reply["cursor"],
                                  address, self._codec_options,
                                  op.command["cursor"].get("batchSize", 0))

    # --- indexes and the collection -------------------------------------------------------------
    async def create_indexes(self, indexes: list[IndexModel]) -> list[str]:
        return await self._run(self._create_indexes_op(indexes))

    async def create_index(self, keys: Any, **kwargs: Any) -> str:
        return (await self.create_indexes([IndexModel(keys, **kwargs)]))[0]

    async def drop_index(self, index_or_name: Any) -> None:
        await self._run(self._drop_index_op(index_or_name))

    async def drop_indexes(self) -> None:
        await self._run(self._drop_indexes_op())

    async def list_indexes(self) -> AsyncCommandCursor:
        reply, address = await self.read_command({"listIndexes": self._name, "cursor": {}},
                                                 ReadPreference.PRIMARY)
        return AsyncCommandCursor(self._database.client, self._database.name, reply["cursor"],
                                  address, self._codec_options)

    async def drop(self) -> None:
        await self._database.drop_collection(self._name)

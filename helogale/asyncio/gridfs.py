"""``AsyncGridFSBucket``: files larger than a document through the asyncio client, in the
layout of :mod:`helogale.gridfs` (pymongo's; the chunk and file documents, the chunk checks
and the indexes are that module's), so either client reads what the other wrote.

A small subset of pymongo's async bucket: ``upload_from_stream`` (bytes, or anything with an
async or plain ``read(size)``, such as Starlette's ``UploadFile``), ``open_download_stream``
(an :class:`AsyncGridOut`: ``await read()`` or ``async for chunk in``), ``find`` (file
documents), ``delete``. Chunk inserts and reads are the client's retryable writes and reads;
the threaded bucket's extra repairs after a failover (re-sending a chunk batch unordered,
reopening a chunk cursor mid-file) are not here.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from bson.objectid import ObjectId

from helogale.errors import OperationFailure
from helogale.gridfs import (
    BATCH_BYTES,
    CHUNKS_INDEX,
    DEFAULT_CHUNK_SIZE,
    FILES_INDEX,
    NoFile,
    _FileDocument,
    chunk_data,
    chunk_document,
    chunks_index_refused,
    finished_file_document,
)


class AsyncGridOut(_FileDocument):
    """A stored file: its fields as attributes, its data by ``await read()`` or by chunk with
    ``async for``."""

    def __init__(self, chunks: Any, file_document: Mapping[str, Any]) -> None:
        self._chunks = chunks
        self._file = dict(file_document)

    async def __aiter__(self) -> Any:
        per_batch = max(1, BATCH_BYTES // max(1, self.chunk_size))
        n = 0
        async for chunk in self._chunks.find({"files_id": self._id}, sort=[("n", 1)],
                                             batch_size=per_batch):
            yield chunk_data(self._file, chunk, n)
            n += 1
        if self.length and n * self.chunk_size < self.length:
            chunk_data(self._file, None, n)  # raises: a chunk is missing

    async def read(self) -> bytes:
        return b"".join([data async for data in self])


class AsyncGridFSBucket:
    """``AsyncGridFSBucket(db, bucket_name="fs", chunk_size_bytes=255 KiB)`` over an
    :class:`~helogale.asyncio.AsyncDatabase`."""

    def __init__(self, db: Any, bucket_name: str = "fs",
                 chunk_size_bytes: int = DEFAULT_CHUNK_SIZE) -> None:
        self._files = db[f"{bucket_name}.files"]
        self._chunks = db[f"{bucket_name}.chunks"]
        self._chunk_size = chunk_size_bytes
        self._indexed = False

    async def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        await self._files.create_index(FILES_INDEX)
        try:
            await self._chunks.create_index(CHUNKS_INDEX, unique=True)
        except OperationFailure as exc:
            if not chunks_index_refused(exc):
                raise
            await self._chunks.create_index(CHUNKS_INDEX)
        self._indexed = True

    async def upload_from_stream(self, filename: str, source: Any,
                                 metadata: Mapping[str, Any] | None = None,
                                 file_id: Any = None, content_type: str | None = None) -> Any:
        """Store ``source`` (bytes or a readable) as ``filename``; returns the file's id.
        ``content_type`` is kept as the classic ``contentType`` field (what ``GridFS.put``
        writes; ``AsyncGridOut.content_type``)."""
        await self._ensure_indexes()
        file: dict[str, Any] = {"_id": ObjectId() if file_id is None else file_id,
                                "chunkSize": self._chunk_size, "filename": filename}
        if metadata is not None:
            file["metadata"] = dict(metadata)
        if content_type is not None:
            file["contentType"] = content_type
        length, n, batch, batch_bytes = 0, 0, [], 0
        async for data in _pieces(source, self._chunk_size):
            batch.append(chunk_document(file["_id"], n, data))
            n, length, batch_bytes = n + 1, length + len(data), batch_bytes + len(data)
            if batch_bytes >= BATCH_BYTES:
                await self._chunks.insert_many(batch)
                batch, batch_bytes = [], 0
        if batch:
            await self._chunks.insert_many(batch)
        await self._files.insert_one(finished_file_document(file, length))
        return file["_id"]

    async def open_download_stream(self, file_id: Any) -> AsyncGridOut:
        document = await self._files.find_one({"_id": file_id})
        if document is None:
            raise NoFile(f"no file in gridfs collection {self._files.full_name} with _id "
                         f"{file_id!r}")
        return AsyncGridOut(self._chunks, document)

    def find(self, *args: Any, **kwargs: Any) -> Any:
        """The file documents (an :class:`~helogale.asyncio.AsyncCursor`)."""
        return self._files.find(*args, **kwargs)

    async def delete(self, file_id: Any) -> None:
        deleted = await self._files.delete_one({"_id": file_id})
        await self._chunks.delete_many({"files_id": file_id})
        if not deleted.deleted_count:
            raise NoFile(f"no file with _id {file_id!r}")


async def _pieces(source: Any, size: int) -> Any:
    """``source`` in pieces of ``size`` bytes (the last one shorter)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source)
        for start in range(0, len(view), size):
            yield bytes(view[start:start + size])
        return
    pending = b""
    while True:
        piece = source.read(size)
        if inspect.isawaitable(piece):
            piece = await piece
        if not piece:
            break
        pending += piece
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending

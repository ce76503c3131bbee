"""GridFS: files larger than a document, stored in chunks (pymongo's ``gridfs`` API).

:class:`GridFS` (the classic API: ``put``, ``get``, ``get_last_version``, ``find``, ``delete``,
``exists``, ``list``, ``new_file``) and :class:`GridFSBucket` (``open_upload_stream``,
``upload_from_stream``, ``open_download_stream``, ``download_to_stream``, ``*_by_name``,
``find``, ``delete``, ``rename``, ``drop``) over a :class:`helogale.Database`.

The layout is pymongo's exactly, so files written by pymongo's ``gridfs`` over the wire protocol
are read here and back: ``<bucket>.files`` holds ``{_id, length, chunkSize, uploadDate,
filename, metadata, ...}``, ``<bucket>.chunks`` holds ``{_id, files_id, n, data}``; indexes
``{filename: 1, uploadDate: 1}`` and unique ``{files_id: 1, n: 1}`` are created before the first
upload into an empty bucket. No MD5 (as pymongo 4).

Streaming: an upload holds one batch of chunks (about :data:`BATCH_BYTES`) and sends it as one
insert; a download reads chunks with a cursor fetching about :data:`BATCH_BYTES` per batch. A file
is never whole in memory on either side.

Failover: chunk inserts are retryable writes (and an insert that fails with a connection error
is sent again unordered, duplicates of chunks that did land being expected); deletes and index
builds are idempotent and repeated; a chunk cursor that loses its server is reopened at the next
chunk needed.
"""

from __future__ import annotations

import datetime
import io
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

from bson.binary import Binary
from bson.int64 import Int64
from bson.objectid import ObjectId

from helogale.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    CursorNotFound,
    OperationFailure,
    PyMongoError,
)

if TYPE_CHECKING:
    from helogale.collection import Collection
    from helogale.cursor import Cursor
    from helogale.database import Database

DEFAULT_CHUNK_SIZE = 255 * 1024
BATCH_BYTES = 2 * 1024 * 1024
"""Chunk bytes per insert on upload and per cursor batch on download."""
_RETRIES = 8
_RETRY_PAUSE_S = 0.25
_DUPLICATE_KEY = 11000
_NAMESPACE_NOT_FOUND = 26
_INDEX_REFUSED = 67  # a unique index the router cannot enforce (fs.chunks sharded by _id)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "CorruptGridFile",
    "FileExists",
    "GridFS",
    "GridFSBucket",
    "GridIn",
    "GridOut",
    "GridOutCursor",
    "NoFile",
]


class GridFSError(PyMongoError):
    """Base of GridFS errors (pymongo's ``gridfs.errors``)."""


class CorruptGridFile(GridFSError):
    """A file's chunks do not add up: missing, extra or wrongly sized chunks."""


class NoFile(GridFSError):
    """No file matches."""


class FileExists(GridFSError):
    """A file with this ``_id`` exists already."""


FILES_INDEX = [("filename", 1), ("uploadDate", 1)]
CHUNKS_INDEX = [("files_id", 1), ("n", 1)]
"""pymongo's indexes of a bucket (the chunks' unique), built before the first upload."""


def chunks_index_refused(exc: OperationFailure) -> bool:
    """Whether the unique chunks index was refused because ``<bucket>.chunks`` is sharded by
    ``_id``: a unique index on another key cannot be enforced (mongos refuses it too); the
    same index without ``unique`` serves the reads."""
    return exc.code == _INDEX_REFUSED


def chunk_document(files_id: Any, n: int, data: bytes) -> dict[str, Any]:
    """Chunk ``n`` of a file as stored in ``<bucket>.chunks``."""
    return {"_id": ObjectId(), "files_id": files_id, "n": n, "data": Binary(data)}


def finished_file_document(file: dict[str, Any], length: int) -> dict[str, Any]:
    """The ``<bucket>.files`` document of a file whose ``length`` bytes are all stored: the
    length (an Int64 from 2 GiB) and the upload date (milliseconds, as BSON keeps it)."""
    file["length"] = Int64(length) if length >= 1 << 31 else length
    now = datetime.datetime.now(datetime.UTC)
    file["uploadDate"] = now.replace(microsecond=now.microsecond // 1000 * 1000)
    return dict(file)


def chunk_data(file: Mapping[str, Any], chunk: Mapping[str, Any] | None, n: int) -> bytes:
    """Chunk ``n``'s data, checked against the file document (CorruptGridFile when it is
    missing, out of place or of the wrong size)."""
    if chunk is None or chunk.get("n") != n:
        raise CorruptGridFile(f"no chunk #{n} of file {file['_id']!r}")
    data = bytes(chunk["data"])
    size, length = int(file.get("chunkSize", DEFAULT_CHUNK_SIZE)), int(file.get("length", 0))
    count = (length + size - 1) // size if size else 0
    expected = size if n < count - 1 else length - size * (count - 1)
    if len(data) != expected:
        raise CorruptGridFile(f"truncated chunk #{n} of file {file['_id']!r}: expected "
                              f"{expected} bytes, got {len(data)}")
    return data


def _retrying(action: Any, what: str) -> Any:
    """Run an idempotent ``action`` again while its server goes away (failover)."""
    for attempt in range(_RETRIES):
        try:
            return action()
        except (AutoReconnect, ConnectionFailure):
            if attempt == _RETRIES - 1:
                raise
            time.sleep(_RETRY_PAUSE_S * (attempt + 1))
    raise AssertionError(what)


def _ensure_indexes(files: Collection, chunks: Collection) -> None:
    """pymongo's indexes, built before the first upload into an empty bucket."""
    if _retrying(lambda: files.find_one({}, {"_id": 1}), "probe files") is not None:
        return

    def has(coll: Collection, keys: list[tuple[str, int]]) -> bool:
        try:
            return any(list(ix["key"].items()) == keys for ix in coll.list_indexes())
        except OperationFailure as exc:
            if exc.code == _NAMESPACE_NOT_FOUND:
                return False
            raise

    def build() -> None:
        if not has(files, FILES_INDEX):
            files.create_index(FILES_INDEX)
        if not has(chunks, CHUNKS_INDEX):
            try:
                chunks.create_index(CHUNKS_INDEX, unique=True)
            except OperationFailure as exc:
                if not chunks_index_refused(exc):
                    raise
                chunks.create_index(CHUNKS_INDEX)

    _retrying(build, "index build")


class _FileDocument:
    """The attributes GridIn and GridOut read from their file document (``_file``): pymongo's
    names, and any other field of the document by attribute."""

    _file: dict[str, Any]
    _default_length = 0

    @property
    def _id(self) -> Any:
        return self._file["_id"]

    @property
    def filename(self) -> str | None:
        return self._file.get("filename")

    @property
    def name(self) -> str | None:
        return self.filename

    @property
    def content_type(self) -> str | None:
        return self._file.get("contentType")

    @property
    def length(self) -> int:
        return int(self._file.get("length", self._default_length))

    @property
    def chunk_size(self) -> int:
        return int(self._file.get("chunkSize", DEFAULT_CHUNK_SIZE))

    @property
    def upload_date(self) -> datetime.datetime | None:
        return self._file.get("uploadDate")

    @property
    def metadata(self) -> Any:
        return self._file.get("metadata")

    @property
    def aliases(self) -> Any:
        return self._file.get("aliases")

    def __getattr__(self, name: str) -> Any:
        file = self.__dict__.get("_file", {})
        if name in file:
            return file[name]
        raise AttributeError(f"{type(self).__name__} object has no attribute {name!r}")


class GridIn(_FileDocument):
    """A file being written (``GridFS.new_file`` / ``GridFSBucket.open_upload_stream``)."""

    def __init__(self, root_collection: Collection, *, disable_md5: bool = True,
                 **kwargs: Any) -> None:
        self._files = root_collection.database[f"{root_collection.name}.files"]
        self._chunks = root_collection.database[f"{root_collection.name}.chunks"]
        for old, new in (("contentType", "content_type"), ("chunkSize", "chunk_size")):
            if old in kwargs:
                kwargs[new] = kwargs.pop(old)
        chunk_size = int(kwargs.pop("chunk_size", DEFAULT_CHUNK_SIZE))
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self._file: dict[str, Any] = {"_id": kwargs.pop("_id", ObjectId())}
        if "content_type" in kwargs:
            kwargs["contentType"] = kwargs.pop("content_type")
        self._file.update(kwargs)
        self._file["chunkSize"] = chunk_size
        self._buffer = io.BytesIO()
        self._pending: list[dict[str, Any]] = []
        self._pending_bytes = 0
        self._n = 0
        self._position = 0
        self._closed = False
        self._ensured = False

    @property
    def _default_length(self) -> int:  # type: ignore[override]
        return self._position

    @property
    def closed(self) -> bool:
        return self._closed

    # --- writing ----------------------------------------------------------------------------
    def write(self, data: Any) -> None:
        """Write ``bytes`` (or ``str``, encoded with the file's ``encoding``), or everything a
        file-like object's ``read()`` gives."""
        if self._closed:
            raise ValueError("cannot write to a closed file")
        if hasattr(data, "read"):
            while True:
                piece = data.read(self.chunk_size)
                if not piece:
                    return
                self.write(piece)
        if isinstance(data, str):
            encoding = self._file.get("encoding")
            if encoding is None:
                raise TypeError("must specify an encoding for file in order to write str")
            data = data.encode(encoding)
        view = memoryview(data)
        size = self.chunk_size
        while len(view):
            room = size - self._buffer.tell()
            piece, view = view[:room], view[room:]
            self._buffer.write(piece)
            self._position += len(piece)
            if self._buffer.tell() == size:
                self._flush_chunk()

    def writelines(self, sequence: Iterable[Any]) -> None:
        for line in sequence:
            self.write(line)

    def _flush_chunk(self) -> None:
        data = self._buffer.getvalue()
        self._buffer = io.BytesIO()
        if not data:
            return
        self._pending.append(chunk_document(self._id, self._n, data))
        self._n += 1
        self._pending_bytes += len(data)
        if self._pending_bytes >= BATCH_BYTES:
            self._send_pending()

    def _send_pending(self) -> None:
        if not self._pending:
            return
        if not self._ensured:
            _ensure_indexes(self._files, self._chunks)
            self._ensured = True
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        _insert_chunks(self._chunks, batch)

    def close(self) -> None:
        """Send the last chunks and the file document (the file exists from then on)."""
        if self._closed:
            return
        self._flush_chunk()
        if not self._ensured:
            _ensure_indexes(self._files, self._chunks)
            self._ensured = True
        self._send_pending()
        try:
            _insert_files_doc(self._files, finished_file_document(self._file, self._position))
        except OperationFailure as exc:
            if exc.code == _DUPLICATE_KEY:
                raise FileExists(f"file with _id {self._id!r} already exists") from exc
            raise
        self._closed = True

    def abort(self) -> None:
        """Forget the file: delete the chunks sent so far."""
        if self._closed:
            return
        self._pending = []
        _retrying(lambda: self._chunks.delete_many({"files_id": self._id}), "abort")
        self._closed = True

    def __enter__(self) -> GridIn:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # as pymongo: a failed with-block leaves what was sent; only close is skipped
            self._closed = True


def _insert_chunks(chunks: Collection, batch: list[dict[str, Any]]) -> None:
    """Insert ``batch`` (a retryable write); after a connection failure it is sent again
    unordered and chunks that landed the first time (duplicate ``_id``) are fine."""
    try:
        chunks.insert_many(batch)
        return
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if errors and errors[0].get("code") == _DUPLICATE_KEY:
            raise FileExists(f"file with id {batch[0]['files_id']!r} already exists") from exc
        raise
    except (AutoReconnect, ConnectionFailure):
        pass
    for attempt in range(_RETRIES):
        try:
            chunks.insert_many(batch, ordered=False)
            return
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if all(e.get("code") == _DUPLICATE_KEY for e in errors):
                return
            raise
        except (AutoReconnect, ConnectionFailure):
            if attempt == _RETRIES - 1:
                raise
            time.sleep(_RETRY_PAUSE_S * (attempt + 1))


def _insert_files_doc(files: Collection, doc: dict[str, Any]) -> None:
    for attempt in range(_RETRIES):
        try:
            files.insert_one(doc)
            return
        except (AutoReconnect, ConnectionFailure):
            if attempt == _RETRIES - 1:
                raise
            time.sleep(_RETRY_PAUSE_S * (attempt + 1))
            if files.find_one({"_id": doc["_id"]}) == doc:
                return  # the first attempt landed


class GridOut(_FileDocument, io.IOBase):
    """A stored file, read as a stream (``read``, ``readline``, ``readchunk``, ``seek``,
    iteration by chunk); its fields are attributes (``filename``, ``length``, ``metadata``...)."""

    def __init__(self, root_collection: Collection, file_id: Any = None,
                 file_document: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._files = root_collection.database[f"{root_collection.name}.files"]
        self._chunks = root_collection.database[f"{root_collection.name}.chunks"]
        if file_document is None:
            file_document = _retrying(lambda: self._files.find_one({"_id": file_id}), "file")
            if file_document is None:
                raise NoFile(f"no file in gridfs collection {self._files.full_name} with "
                             f"_id {file_id!r}")
        self._file = dict(file_document)
        self._position = 0
        self._buffer = b""
        self._buffer_at = 0  # file offset of self._buffer[0]
        self._cursor: Cursor | None = None
        self._next_n = 0
        self._chunk_count = (self.length + self.chunk_size - 1) // self.chunk_size \
            if self.chunk_size else 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    # --- chunks ------------------------------------------------------------------------------
    def _open_cursor(self, n: int) -> None:
        self._close_cursor()
        per_batch = max(1, BATCH_BYTES // max(1, self.chunk_size))
        self._cursor = self._chunks.find({"files_id": self._id, "n": {"$gte": n}},
                                         sort=[("n", 1)], batch_size=per_batch)
        self._next_n = n

    def _close_cursor(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None

    def _read_chunk(self, n: int) -> bytes:
        """Chunk ``n``'s data, checked; the cursor is reopened when it is not at ``n`` or lost
        its server."""
        if n >= self._chunk_count:
            return b""
        for attempt in range(_RETRIES):
            if self._cursor is None or self._next_n != n:
                self._open_cursor(n)
            assert self._cursor is not None
            try:
                chunk = next(self._cursor, None)
                break
            except (AutoReconnect, ConnectionFailure, CursorNotFound):
                self._cursor = None
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(_RETRY_PAUSE_S * (attempt + 1))
        data = chunk_data(self._file, chunk, n)
        self._next_n = n + 1
        return data

    def readchunk(self) -> bytes:
        """The rest of the current chunk (or the next whole chunk)."""
        if self._position >= self.length:
            return b""
        n = self._position // self.chunk_size
        if not (self._buffer_at <= self._position < self._buffer_at + len(self._buffer)):
            self._buffer = self._read_chunk(n)
            self._buffer_at = n * self.chunk_size
        start = self._position - self._buffer_at
        out = self._buffer[start:]
        self._position += len(out)
        return out

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.length - self._position
        size = min(size, self.length - self._position)
        if size <= 0:
            return b""
        parts: list[bytes] = []
        got = 0
        while got < size:
            piece = self.readchunk()
            if not piece:
                raise CorruptGridFile(f"file {self._id!r} ended early")
            if got + len(piece) > size:
                keep = size - got
                self._position -= len(piece) - keep
                piece = piece[:keep]
            parts.append(piece)
            got += len(piece)
        if self._position >= self.length:
            self._check_no_extra_chunks()
        return b"".join(parts)

    def _check_no_extra_chunks(self) -> None:
        if self._cursor is None or self._next_n != self._chunk_count:
            return
        try:
            extra = next(self._cursor, None)
        except (AutoReconnect, ConnectionFailure, CursorNotFound):
            return
        self._close_cursor()
        if extra is not None:
            raise CorruptGridFile(f"extra chunk #{extra.get('n')} in file {self._id!r}")

    def readline(self, size: int = -1) -> bytes:  # type: ignore[override]
        out = bytearray()
        while size < 0 or len(out) < size:
            piece = self.readchunk()
            if not piece:
                break
            cut = piece.find(b"\n")
            limit = len(piece) if cut < 0 else cut + 1
            if size >= 0:
                limit = min(limit, size - len(out))
            out += piece[:limit]
            self._position -= len(piece) - limit
            if cut >= 0 and limit == cut + 1:
                break
        return bytes(out)

    def tell(self) -> int:
        return self._position

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.length}
        if whence not in base:
            raise OSError(22, "Invalid value for `whence`")
        target = base[whence] + pos
        if target < 0:
            raise OSError(22, "Invalid value for `pos` - must be positive")
        self._position = target
        return target

    def __iter__(self) -> Iterator[bytes]:  # type: ignore[override]
        while True:
            chunk = self.readchunk()
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self._close_cursor()
        super().close()

    def __enter__(self) -> GridOut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GridOutCursor:
    """Files matching a query, each as a :class:`GridOut` (``GridFS.find`` / bucket ``find``)."""

    def __init__(self, root_collection: Collection, filter: Mapping[str, Any] | None = None,
                 *args: Any, **kwargs: Any) -> None:
        self._root = root_collection
        files = root_collection.database[f"{root_collection.name}.files"]
        self._cursor = files.find(filter or {}, *args, **kwargs)

    def __iter__(self) -> GridOutCursor:
        return self

    def __next__(self) -> GridOut:
        return GridOut(self._root, file_document=next(self._cursor))

    next = __next__

    def sort(self, *args: Any, **kwargs: Any) -> GridOutCursor:
        self._cursor.sort(*args, **kwargs)
        return self

    def limit(self, n: int) -> GridOutCursor:
        self._cursor.limit(n)
        return self

    def skip(self, n: int) -> GridOutCursor:
        self._cursor.skip(n)
        return self

    def close(self) -> None:
        self._cursor.close()

    def __enter__(self) -> GridOutCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _root(database: Database, name: str) -> Collection:
    from helogale.database import Database as _Database

    if not isinstance(database, _Database):
        raise TypeError("database must be an instance of helogale.Database")
    return database[name]


def _version_query(filename: str | None, version: int, root: Collection, kwargs: Mapping[str, Any]
                   ) -> GridOut:
    query: dict[str, Any] = dict(kwargs)
    if filename is not None:
        query["filename"] = filename
    files = root.database[f"{root.name}.files"]
    cursor = files.find(query)
    if version < 0:
        skip = abs(version) - 1
        cursor.limit(-1).skip(skip).sort("uploadDate", -1)
    else:
        cursor.limit(-1).skip(version).sort("uploadDate", 1)
    for doc in cursor:
        return GridOut(root, file_document=doc)
    raise NoFile(f"no version {version} for filename {filename!r}")


class GridFS:
    """pymongo's classic ``gridfs.GridFS``."""

    def __init__(self, database: Database, collection: str = "fs",
                 disable_md5: bool = True) -> None:
        self._root = _root(database, collection)
        self._files = database[f"{collection}.files"]
        self._chunks = database[f"{collection}.chunks"]

    def new_file(self, **kwargs: Any) -> GridIn:
        return GridIn(self._root, **kwargs)

    def put(self, data: Any, **kwargs: Any) -> Any:
        """Store ``data`` (bytes, str with ``encoding=``, or a file-like object); its ``_id``."""
        grid_in = GridIn(self._root, **kwargs)
        try:
            grid_in.write(data)
            grid_in.close()
        except FileExists:
            raise  # the chunks under this id are the existing file's
        except BaseException:
            grid_in.abort()
            raise
        return grid_in._id

    def get(self, file_id: Any) -> GridOut:
        return GridOut(self._root, file_id)

    def get_version(self, filename: str | None = None, version: int = -1,
                    **kwargs: Any) -> GridOut:
        return _version_query(filename, version, self._root, kwargs)

    def get_last_version(self, filename: str | None = None, **kwargs: Any) -> GridOut:
        return self.get_version(filename=filename, **kwargs)

    def delete(self, file_id: Any) -> None:
        """Delete the file document, then its chunks (both idempotent, repeated on failover)."""
        _retrying(lambda: self._files.delete_one({"_id": file_id}), "delete file")
        _retrying(lambda: self._chunks.delete_many({"files_id": file_id}), "delete chunks")

    def list(self) -> list[str]:
        return [name for name in self._files.distinct("filename") if name is not None]

    def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> GridOut | None:
        if filter is not None and not isinstance(filter, Mapping):
            filter = {"_id": filter}
        for grid_out in self.find(filter, *args, **kwargs).limit(-1):
            return grid_out
        return None

    def find(self, *args: Any, **kwargs: Any) -> GridOutCursor:
        return GridOutCursor(self._root, *args, **kwargs)

    def exists(self, document_or_id: Any = None, **kwargs: Any) -> bool:
        if kwargs:
            query = kwargs
        elif isinstance(document_or_id, Mapping):
            query = dict(document_or_id)
        else:
            query = {"_id": document_or_id}
        return self._files.find_one(query, {"_id": 1}) is not None


class GridFSBucket:
    """pymongo's ``gridfs.GridFSBucket``."""

    def __init__(self, db: Database, bucket_name: str = "fs",
                 chunk_size_bytes: int = DEFAULT_CHUNK_SIZE, write_concern: Any = None,
                 read_preference: Any = None) -> None:
        if write_concern is not None or read_preference is not None:
            db = db.client.get_database(db.name, write_concern=write_concern,
                                        read_preference=read_preference)
        self._root = _root(db, bucket_name)
        self._files = db[f"{bucket_name}.files"]
        self._chunks = db[f"{bucket_name}.chunks"]
        self._chunk_size = chunk_size_bytes

    def open_upload_stream(self, filename: str, chunk_size_bytes: int | None = None,
                           metadata: Mapping[str, Any] | None = None) -> GridIn:
        return self.open_upload_stream_with_id(ObjectId(), filename, chunk_size_bytes, metadata)

    def open_upload_stream_with_id(self, file_id: Any, filename: str,
                                   chunk_size_bytes: int | None = None,
                                   metadata: Mapping[str, Any] | None = None) -> GridIn:
        kwargs: dict[str, Any] = {"_id": file_id, "filename": filename,
                                  "chunk_size": chunk_size_bytes or self._chunk_size}
        if metadata is not None:
            kwargs["metadata"] = metadata
        return GridIn(self._root, **kwargs)

    def upload_from_stream(self, filename: str, source: Any, chunk_size_bytes: int | None = None,
                           metadata: Mapping[str, Any] | None = None) -> ObjectId:
        file_id = ObjectId()
        self.upload_from_stream_with_id(file_id, filename, source, chunk_size_bytes, metadata)
        return file_id

    def upload_from_stream_with_id(self, file_id: Any, filename: str, source: Any,
                                   chunk_size_bytes: int | None = None,
                                   metadata: Mapping[str, Any] | None = None) -> None:
        grid_in = self.open_upload_stream_with_id(file_id, filename, chunk_size_bytes, metadata)
        try:
            grid_in.write(source)
            grid_in.close()
        except FileExists:
            raise
        except BaseException:
            grid_in.abort()
            raise

    def open_download_stream(self, file_id: Any) -> GridOut:
        return GridOut(self._root, file_id)

    def download_to_stream(self, file_id: Any, destination: IO[bytes]) -> None:
        with self.open_download_stream(file_id) as grid_out:
            for chunk in grid_out:
                destination.write(chunk)

    def open_download_stream_by_name(self, filename: str, revision: int = -1) -> GridOut:
        try:
            return _version_query(filename, revision, self._root, {})
        except NoFile:
            raise NoFile(f"no version {revision} for filename {filename!r}") from None

    def download_to_stream_by_name(self, filename: str, destination: IO[bytes],
                                   revision: int = -1) -> None:
        with self.open_download_stream_by_name(filename, revision) as grid_out:
            for chunk in grid_out:
                destination.write(chunk)

    def delete(self, file_id: Any) -> None:
        """Delete the file and its chunks; NoFile when there was no such file (the chunks of a
        half-written file are deleted all the same)."""
        result = _retrying(lambda: self._files.delete_one({"_id": file_id}), "delete file")
        _retrying(lambda: self._chunks.delete_many({"files_id": file_id}), "delete chunks")
        if not result.deleted_count:
            raise NoFile(f"file_id {file_id!r} was not found")

    def find(self, *args: Any, **kwargs: Any) -> GridOutCursor:
        return GridOutCursor(self._root, *args, **kwargs)

    def rename(self, file_id: Any, new_filename: str) -> None:
        result = _retrying(lambda: self._files.update_one(
            {"_id": file_id}, {"$set": {"filename": new_filename}}), "rename")
        if not result.matched_count:
            raise NoFile(f"no files could be renamed {new_filename!r} because none matched "
                         f"file_id {file_id!r}")

    def drop(self) -> None:
        _retrying(self._files.drop, "drop files")
        _retrying(self._chunks.drop, "drop chunks")


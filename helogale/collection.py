"""``Collection``: builds MongoDB command documents for every collection method (modern and the
classic calls of pymongo 2 that "MongoDB and Python" uses) and turns replies into results.

Nothing here retries or picks servers: reads go through the client's executor as retryable
reads, writes as retryable writes when each statement touches at most one document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from bson.codec_options import CodecOptions
from bson.son import SON

from helogale.bulk import (
    Bulk,
    DeleteMany,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    UpdateMany,
    UpdateOne,
    validate_replacement,
    validate_update_document,
    with_id,
)
from helogale.client_common import HasOptions
from helogale.cursor import CommandCursor, Cursor, normalize_sort
from helogale.errors import (
    BulkWriteError,
    InvalidName,
    check_reply,
    check_write_reply,
    write_error_for,
)
from helogale.read_concern import ReadConcern
from helogale.read_preferences import ReadPreference, ServerMode
from helogale.results import DeleteResult, InsertManyResult, InsertOneResult, UpdateResult
from helogale.write_concern import WriteConcern, from_legacy

if TYPE_CHECKING:
    from helogale.database import Database
    from helogale.topology import ServerDescription

ASCENDING = 1
DESCENDING = -1
GEO2D = "2d"
GEOSPHERE = "2dsphere"
HASHED = "hashed"
TEXT = "text"
NAMESPACE_NOT_FOUND = 26


class ReturnDocument:
    """Which document ``find_one_and_*`` returns: the one BEFORE or AFTER the change."""

    BEFORE = False
    AFTER = True


def index_keys(key_or_list: Any, direction: Any = None) -> list[tuple[str, Any]]:
    """``"a"`` / ``[("a", 1), ("b", -1)]`` / ``{"a": 1}`` -> a list of ``(field, direction)``."""
    if direction is not None:
        return [(key_or_list, direction)]
    if isinstance(key_or_list, str):
        return [(key_or_list, ASCENDING)]
    if isinstance(key_or_list, Mapping):
        return list(key_or_list.items())
    if isinstance(key_or_list, (list, tuple)):
        keys = []
        for item in key_or_list:
            if isinstance(item, str):
                keys.append((item, ASCENDING))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                keys.append((item[0], item[1]))
            else:
                raise TypeError("index keys must be (field, direction) pairs")
        if not keys:
            raise ValueError("key_or_list must not be empty")
        return keys
    raise TypeError("key_or_list must be a string, a mapping or a list of (field, direction)")


def index_name(keys: list[tuple[str, Any]]) -> str:
    """MongoDB's default index name: ``field_direction`` joined by ``_``."""
    return "_".join(f"{field}_{direction}" for field, direction in keys)


class IndexModel:
    """One index for :meth:`Collection.create_indexes`: keys plus options (``name``, ``unique``,
    ``sparse``, ``expireAfterSeconds``, ...)."""

    def __init__(self, keys: Any, **kwargs: Any) -> None:
        pairs = index_keys(keys)
        document: dict[str, Any] = {"key": SON(pairs)}
        name = kwargs.pop("name", None) or index_name(pairs)
        document["name"] = name
        document.update(kwargs)
        self._document = document

    @property
    def document(self) -> dict[str, Any]:
        return self._document


def _check_collection_name(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError("name must be an instance of str")
    if not name or ".." in name:
        raise InvalidName("collection names cannot be empty")
    if "$" in name:
        raise InvalidName(f"collection names must not contain '$': {name!r}")
    if name[0] == "." or name[-1] == ".":
        raise InvalidName(f"collection names must not start or end with '.': {name!r}")
    if "\x00" in name:
        raise InvalidName("collection names must not contain the null character")


def filter_for(spec_or_id: Any) -> Mapping[str, Any]:
    if spec_or_id is None:
        return {}
    if isinstance(spec_or_id, Mapping):
        return spec_or_id
    return {"_id": spec_or_id}


_READ_CONCERN_COMMANDS = frozenset({"find", "count", "distinct", "aggregate"})


@dataclass
class Op:
    """One collection method without I/O: the command it sends and how the reply becomes its
    result. A write has a ``write_concern`` (and is retried when ``retryable``, its reply
    checked by ``check``); a read has none and goes to ``read_preference``."""

    command: dict[str, Any]
    result: Callable[[dict[str, Any]], Any] = lambda reply: reply
    write_concern: WriteConcern | None = None
    retryable: bool = True
    check: Callable[[Mapping[str, Any], Any], None] = check_write_reply
    read_preference: ServerMode | None = None

    def then(self, result: Callable[[Any], Any]) -> Op:
        """This operation with ``result`` applied to what it returned."""
        first = self.result
        return replace(self, result=lambda reply: result(first(reply)))


class CollectionBase(HasOptions):
    """A collection of one database: options, and the :class:`Op` of every method; cheap to
    create, holds no state but options. :class:`Collection` runs the operations with the
    threaded client, ``helogale.asyncio.AsyncCollection`` with the asyncio one."""

    def __init__(
        self,
        database: Database,
        name: str,
        codec_options: CodecOptions | None = None,
        read_preference: ServerMode | None = None,
        write_concern: WriteConcern | None = None,
        read_concern: ReadConcern | None = None,
    ) -> None:
        _check_collection_name(name)
        self._database = database
        self._name = name
        self._codec_options = codec_options or database.codec_options
        self._read_preference = read_preference or database.read_preference
        self._write_concern = write_concern or database.write_concern
        self._read_concern = read_concern or database.read_concern

    # --- identity and options ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def full_name(self) -> str:
        return f"{self._database.name}.{self._name}"

    @property
    def database(self) -> Database:
        return self._database

    def with_options(
        self,
        codec_options: CodecOptions | None = None,
        read_preference: ServerMode | None = None,
        write_concern: WriteConcern | None = None,
        read_concern: ReadConcern | None = None,
    ) -> Any:
        return type(self)(
            self._database,
            self._name,
            codec_options or self._codec_options,
            read_preference or self._read_preference,
            write_concern or self._write_concern,
            read_concern or self._read_concern,
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(
                f"Collection has no attribute {name!r}. To access the {self._name}.{name} "
                f"collection, use database['{self._name}.{name}']."
            )
        return self[name]

    def __getitem__(self, name: str) -> Any:
        return type(self)(
            self._database, f"{self._name}.{name}", self._codec_options,
            self._read_preference, self._write_concern, self._read_concern,
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CollectionBase):
            return self._database == other._database and self._name == other._name
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._database.name, self._name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._database!r}, {self._name!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        method = self._name.rsplit(".", 1)[-1]
        raise TypeError(
            f"'{type(self).__name__}' object is not callable. If you meant to call the "
            f"'{method}' method on a '{type(self).__name__}' object it is failing because no "
            "such method exists."
        )

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> None:
        raise TypeError(f"'{type(self).__name__}' object is not iterable")

    # --- plumbing (no I/O) ----------------------------------------------------------------------
    def write_concern_fields(self, write_concern: WriteConcern) -> dict[str, Any]:
        """The ``writeConcern`` field for a write command (w=0 waits for the primary only and
        reports nothing)."""
        if write_concern.is_server_default:
            return {}
        if not write_concern.acknowledged:
            return {"writeConcern": {"w": 1}}
        return {"writeConcern": write_concern.document}

    def _with_read_concern(self, command: dict[str, Any]) -> dict[str, Any]:
        if self._read_concern.level and next(iter(command)) in _READ_CONCERN_COMMANDS:
            command.setdefault("readConcern", self._read_concern.document)
        return command

    def _write_steps(self, command: dict[str, Any], write_concern: WriteConcern,
                     check: Any = check_write_reply) -> tuple[Any, Any]:
        """``(build, handle)`` for the executor's ``write``: the command with the session
        fields of the attempt, and the reply checked (raising mapped errors) unless the write
        is unacknowledged."""
        command.update(self.write_concern_fields(write_concern))
        db_name = self._database.name

        def build(server: ServerDescription, session: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
            return db_name, {**command, **(session or {})}

        def handle(reply: dict[str, Any], server: ServerDescription) -> dict[str, Any]:
            if write_concern.acknowledged:
                check(reply, server.address)
            return reply

        return build, handle

    # --- operations (no I/O) ----------------------------------------------------------------------
    def _insert_one_op(self, document: Mapping[str, Any], bypass_document_validation: bool) -> Op:
        doc = with_id(document)
        command: dict[str, Any] = {"insert": self._name, "documents": [doc], "ordered": True}
        if bypass_document_validation:
            command["bypassDocumentValidation"] = True
        acknowledged = self._write_concern.acknowledged
        return Op(command, lambda reply: InsertOneResult(doc["_id"], acknowledged),
                  self._write_concern)

    def _insert_many_bulk(self, documents: Iterable[Mapping[str, Any]], ordered: bool
                          ) -> tuple[Bulk, list[Any]]:
        if isinstance(documents, Mapping) or not isinstance(documents, Iterable):
            raise TypeError("documents must be a non-empty list")
        bulk = Bulk(self, ordered, self._write_concern)
        ids = [bulk.add_insert(doc) for doc in documents]
        if not ids:
            raise TypeError("documents must be a non-empty list")
        return bulk, ids

    def _bulk_write_bulk(self, requests: Iterable[Any], ordered: bool) -> Bulk:
        bulk = Bulk(self, ordered, self._write_concern)
        for request in requests:
            if not isinstance(request, (InsertOne, UpdateOne, UpdateMany, ReplaceOne, DeleteOne, DeleteMany)):
                raise TypeError(f"{request!r} is not a valid request")
            request._add_to_bulk(bulk)
        return bulk

    def _update_op(
        self,
        filter: Mapping[str, Any],
        update: Any,
        *,
        multi: bool,
        upsert: bool,
        write_concern: WriteConcern,
        array_filters: Any = None,
        hint: Any = None,
        collation: Any = None,
    ) -> Op:
        """An update; its result is the classic ``{n, nModified, upserted?, updatedExisting,
        ok}``."""
        statement: dict[str, Any] = {"q": filter, "u": update, "multi": multi, "upsert": upsert}
        if array_filters is not None:
            statement["arrayFilters"] = array_filters
        if hint is not None:
            statement["hint"] = hint
        if collation is not None:
            statement["collation"] = collation
        command = {"update": self._name, "updates": [statement], "ordered": True}

        def raw(reply: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {"n": int(reply.get("n", 0)),
                                   "nModified": int(reply.get("nModified", 0))}
            upserted = reply.get("upserted")
            if upserted:
                out["upserted"] = upserted[0]["_id"]
            out["updatedExisting"] = bool(out["n"]) and not upserted
            out["ok"] = reply.get("ok", 1.0)
            return out

        return Op(command, raw, write_concern, retryable=not multi)

    def _update_result_op(self, filter: Mapping[str, Any], update: Any, *, multi: bool,
                          replacement: bool = False, **options: Any) -> Op:
        """``update_one`` / ``update_many`` / ``replace_one``: an :class:`UpdateResult`."""
        if replacement:
            validate_replacement(update)
        else:
            validate_update_document(update)
        acknowledged = self._write_concern.acknowledged
        op = self._update_op(filter, update, multi=multi, write_concern=self._write_concern,
                             **options)
        return op.then(lambda raw: UpdateResult(raw, acknowledged))

    def _delete_op(self, filter: Mapping[str, Any], limit: int, write_concern: WriteConcern,
                   hint: Any = None, collation: Any = None) -> Op:
        statement: dict[str, Any] = {"q": filter, "limit": limit}
        if hint is not None:
            statement["hint"] = hint
        if collation is not None:
            statement["collation"] = collation
        command = {"delete": self._name, "deletes": [statement], "ordered": True}
        return Op(command, lambda reply: {"n": int(reply.get("n", 0)), "ok": reply.get("ok", 1.0)},
                  write_concern, retryable=limit == 1)

    def _delete_result_op(self, filter: Mapping[str, Any], limit: int, hint: Any = None,
                          collation: Any = None) -> Op:
        acknowledged = self._write_concern.acknowledged
        op = self._delete_op(filter, limit, self._write_concern, hint, collation)
        return op.then(lambda raw: DeleteResult(raw, acknowledged))

    def _find_and_modify_op(
        self,
        filter: Mapping[str, Any],
        *,
        update: Any = None,
        remove: bool = False,
        new: bool = False,
        upsert: bool = False,
        sort: Any = None,
        projection: Any = None,
        array_filters: Any = None,
        hint: Any = None,
        write_concern: WriteConcern | None = None,
    ) -> Op:
        """``findAndModify``; its result is the whole reply (``value``: the document)."""
        command: dict[str, Any] = {"findAndModify": self._name, "query": filter}
        if sort is not None:
            command["sort"] = SON(normalize_sort(sort))
        if remove:
            command["remove"] = True
        else:
            command["update"] = update
            command["new"] = bool(new)
            command["upsert"] = bool(upsert)
        if projection is not None:
            command["fields"] = _projection(projection)
        if array_filters is not None:
            command["arrayFilters"] = array_filters
        if hint is not None:
            command["hint"] = hint
        return Op(command, write_concern=write_concern or self._write_concern, check=_check_fam)

    def _find_one_and_op(self, filter: Mapping[str, Any], *, replacement: bool = False,
                         return_document: bool = ReturnDocument.BEFORE, **options: Any) -> Op:
        """``find_one_and_update`` / ``_replace`` / ``_delete``: the document (or None)."""
        update = options.get("update")
        if update is not None:
            if replacement:
                validate_replacement(update)
            else:
                validate_update_document(update)
        op = self._find_and_modify_op(filter, new=return_document, **options)
        return op.then(lambda reply: reply.get("value"))

    def _count_documents_op(self, filter: Mapping[str, Any], skip: int = 0, limit: int = 0,
                            hint: Any = None, **kwargs: Any) -> Op:
        command: dict[str, Any] = {"count": self._name, "query": filter}
        if skip:
            command["skip"] = skip
        if limit:
            command["limit"] = limit
        if hint is not None:
            command["hint"] = hint
        command.update(kwargs)
        return Op(command, _count)

    def _distinct_op(self, key: str, filter: Mapping[str, Any] | None, **kwargs: Any) -> Op:
        if not isinstance(key, str):
            raise TypeError("key must be an instance of str")
        command: dict[str, Any] = {"distinct": self._name, "key": key}
        if filter:
            command["query"] = filter
        command.update(kwargs)
        return Op(command, lambda reply: list(reply.get("values", [])))

    def _aggregate_op(self, pipeline: list[Mapping[str, Any]], batch_size: int,
                      **kwargs: Any) -> Op:
        """``aggregate``; its result is the reply (the cursor opens from ``reply["cursor"]``)."""
        if not isinstance(pipeline, list):
            raise TypeError("pipeline must be a list")
        batch_size = kwargs.pop("batchSize", batch_size)  # pymongo's spelling: a cursor option
        cursor_opts: dict[str, Any] = {"batchSize": batch_size} if batch_size else {}
        command: dict[str, Any] = {"aggregate": self._name, "pipeline": pipeline, "cursor": cursor_opts}
        command.update(kwargs)
        writes = any(("$out" in stage or "$merge" in stage) for stage in pipeline)
        return Op(command, read_preference=ReadPreference.PRIMARY if writes else None)

    def _create_indexes_op(self, indexes: list[IndexModel]) -> Op:
        documents = []
        for index in indexes:
            if not isinstance(index, IndexModel):
                raise TypeError(f"{index!r} is not an instance of IndexModel")
            documents.append(index.document)
        command = {"createIndexes": self._name, "indexes": documents}
        return Op(command, lambda reply: [d["name"] for d in documents], self._write_concern,
                  retryable=False, check=check_reply)

    def _drop_index_op(self, index_or_name: Any) -> Op:
        name = index_or_name
        if not isinstance(name, str):
            name = index_name(index_keys(name))
        return Op({"dropIndexes": self._name, "index": name}, write_concern=self._write_concern,
                  retryable=False, check=check_reply)

    def _drop_indexes_op(self) -> Op:
        return Op({"dropIndexes": self._name, "index": "*"}, write_concern=self._write_concern,
                  retryable=False, check=_allow_ns_not_found)


class Collection(CollectionBase):
    """A collection, run with the threaded client: reads go through the client's executor as
    retryable reads, writes as retryable writes when each statement touches at most one
    document."""

    @property
    def _executor(self) -> Any:
        return self._database.client.executor

    def read_command(
        self, command: dict[str, Any], read_preference: ServerMode | None = None
    ) -> tuple[dict[str, Any], Any]:
        """Run a read command as a retryable read; returns ``(reply, server address)``."""
        return self._database.client.read_command(
            self._database.name, self._with_read_concern(command),
            read_preference or self._read_preference, self._codec_options,
        )

    def _write(
        self,
        command: dict[str, Any],
        write_concern: WriteConcern,
        retryable: bool,
        check: Any = check_write_reply,
    ) -> dict[str, Any]:
        """Run a single write command; the reply is checked (raising mapped errors) unless
        the write is unacknowledged."""
        build, handle = self._write_steps(command, write_concern, check)
        return self._executor.write(
            build, handle, retryable=retryable, codec_options=self._codec_options
        )

    def _run(self, op: Op) -> Any:
        if op.write_concern is None:
            reply, _ = self.read_command(op.command, op.read_preference)
        else:
            reply = self._write(op.command, op.write_concern, op.retryable, op.check)
        return op.result(reply)

    # --- inserts ----------------------------------------------------------------------------------
    def insert_one(self, document: Mapping[str, Any], bypass_document_validation: bool = False) -> InsertOneResult:
        return self._run(self._insert_one_op(document, bypass_document_validation))

    def insert_many(
        self,
        documents: Iterable[Mapping[str, Any]],
        ordered: bool = True,
        bypass_document_validation: bool = False,
    ) -> InsertManyResult:
        bulk, ids = self._insert_many_bulk(documents, ordered)
        bulk.execute()
        return InsertManyResult(ids, self._write_concern.acknowledged)

    # --- updates and deletes ------------------------------------------------------------------------
    def _update(self, filter: Mapping[str, Any], update: Any, **options: Any) -> dict[str, Any]:
        return self._run(self._update_op(filter, update, **options))

    def update_one(
        self, filter: Mapping[str, Any], update: Any, upsert: bool = False,
        array_filters: Any = None, hint: Any = None, collation: Any = None,
    ) -> UpdateResult:
        return self._run(self._update_result_op(
            filter, update, multi=False, upsert=upsert, array_filters=array_filters, hint=hint,
            collation=collation))

    def update_many(
        self, filter: Mapping[str, Any], update: Any, upsert: bool = False,
        array_filters: Any = None, hint: Any = None, collation: Any = None,
    ) -> UpdateResult:
        return self._run(self._update_result_op(
            filter, update, multi=True, upsert=upsert, array_filters=array_filters, hint=hint,
            collation=collation))

    def replace_one(
        self, filter: Mapping[str, Any], replacement: Mapping[str, Any], upsert: bool = False,
        hint: Any = None, collation: Any = None,
    ) -> UpdateResult:
        return self._run(self._update_result_op(
            filter, replacement, multi=False, replacement=True, upsert=upsert, hint=hint,
            collation=collation))

    def delete_one(self, filter: Mapping[str, Any], hint: Any = None, collation: Any = None) -> DeleteResult:
        return self._run(self._delete_result_op(filter, 1, hint, collation))

    def delete_many(self, filter: Mapping[str, Any], hint: Any = None, collation: Any = None) -> DeleteResult:
        return self._run(self._delete_result_op(filter, 0, hint, collation))

    def bulk_write(self, requests: Iterable[Any], ordered: bool = True,
                   bypass_document_validation: bool = False) -> Any:
        return self._bulk_write_bulk(requests, ordered).execute()

    # --- findAndModify ---------------------------------------------------------------------------------
    def find_one_and_update(
        self, filter: Mapping[str, Any], update: Any, projection: Any = None, sort: Any = None,
        upsert: bool = False, return_document: bool = ReturnDocument.BEFORE,
        array_filters: Any = None, hint: Any = None,
    ) -> Any:
        return self._run(self._find_one_and_op(
            filter, update=update, return_document=return_document, upsert=upsert, sort=sort,
            projection=projection, array_filters=array_filters, hint=hint))

    def find_one_and_replace(
        self, filter: Mapping[str, Any], replacement: Mapping[str, Any], projection: Any = None,
        sort: Any = None, upsert: bool = False, return_document: bool = ReturnDocument.BEFORE,
        hint: Any = None,
    ) -> Any:
        return self._run(self._find_one_and_op(
            filter, update=replacement, replacement=True, return_document=return_document,
            upsert=upsert, sort=sort, projection=projection, hint=hint))

    def find_one_and_delete(
        self, filter: Mapping[str, Any], projection: Any = None, sort: Any = None, hint: Any = None
    ) -> Any:
        return self._run(self._find_one_and_op(filter, remove=True, sort=sort,
                                               projection=projection, hint=hint))

    # --- reads --------------------------------------------------------------------------------------------
    def find(self, *args: Any, **kwargs: Any) -> Cursor:
        """``find(filter=None, projection=None, skip=0, limit=0, sort=None, batch_size=0,
        snapshot=False, ...)`` -> a :class:`~helogale.cursor.Cursor`."""
        return Cursor(self, *args, **kwargs)

    def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        cursor = self.find(filter_for(filter), *args, **kwargs).limit(-1)
        for document in cursor:
            return document
        return None

    def count_documents(self, filter: Mapping[str, Any], skip: int = 0, limit: int = 0,
                        hint: Any = None, **kwargs: Any) -> int:
        return self._run(self._count_documents_op(filter, skip, limit, hint, **kwargs))

    def estimated_document_count(self, **kwargs: Any) -> int:
        return self._run(Op({"count": self._name, **kwargs}, _count))

    def count(self, filter: Mapping[str, Any] | None = None, **kwargs: Any) -> int:
        """Classic ``Collection.count()``: the number of documents matching ``filter``."""
        return self.count_documents(filter or {}, **kwargs)

    def distinct(self, key: str, filter: Mapping[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        return self._run(self._distinct_op(key, filter, **kwargs))

    def aggregate(self, pipeline: list[Mapping[str, Any]], batch_size: int = 0,
                  **kwargs: Any) -> CommandCursor:
        """Run an aggregation pipeline; returns a streaming :class:`CommandCursor`."""
        op = self._aggregate_op(pipeline, batch_size, **kwargs)
        reply, address = self.read_command(op.command, op.read_preference)
        return CommandCursor(self._database.client, self._database.name, reply["cursor"], address,
                             self._codec_options, op.command["cursor"].get("batchSize", 0))

    def map_reduce(self, map: Any, reduce: Any, out: Any, full_response: bool = False,
                   **kwargs: Any) -> Any:
        """Map-reduce with Python functions (see :mod:`helogale.map_reduce`): ``map(doc)``
        yields ``(key, value)`` pairs, ``reduce(key, values)`` folds them; ``out`` is a
        collection name or ``{replace|merge|reduce|inline: name}``; ``query``, ``sort``,
        ``limit`` and ``finalize`` as in MongoDB. Returns the output collection (or, with
        ``full_response``, a summary document)."""
        from helogale.map_reduce import run_map_reduce, write_results

        if not callable(map) or not callable(reduce):
            raise TypeError("map and reduce must be Python callables (JavaScript map-reduce "
                            "is not supported; see docs/aggregation.md)")
        results = run_map_reduce(self, map, reduce, query=kwargs.get("query"),
                                 sort=kwargs.get("sort"), limit=kwargs.get("limit", 0),
                                 finalize=kwargs.get("finalize"))
        target = write_results(self, results, out, reduce)
        if full_response:
            reply: dict[str, Any] = {"ok": 1.0, "counts": {"output": len(results)}}
            if isinstance(target, list):
                reply["results"] = target
            else:
                reply["result"] = target.name
            return reply
        return target

    def inline_map_reduce(self, map: Any, reduce: Any, full_response: bool = False,
                          **kwargs: Any) -> Any:
        """:meth:`map_reduce` with the results returned: a list of ``{_id, value}``."""
        return self.map_reduce(map, reduce, {"inline": 1}, full_response=full_response,
                               **kwargs)

    # --- indexes ------------------------------------------------------------------------------------------------
    def create_indexes(self, indexes: list[IndexModel]) -> list[str]:
        return self._run(self._create_indexes_op(indexes))

    def create_index(self, keys: Any, **kwargs: Any) -> str:
        return self.create_indexes([IndexModel(keys, **kwargs)])[0]

    def ensure_index(self, key_or_list: Any, cache_for: int = 300, **kwargs: Any) -> str:
        """Classic ``ensure_index``: create the index unless it exists; returns its name."""
        del cache_for
        if "drop_dups" in kwargs or "dropDups" in kwargs:
            kwargs.pop("drop_dups", None)
            kwargs.pop("dropDups", None)
        if "ttl" in kwargs:
            kwargs["expireAfterSeconds"] = kwargs.pop("ttl")
        return self.create_index(key_or_list, **kwargs)

    def drop_index(self, index_or_name: Any) -> None:
        self._run(self._drop_index_op(index_or_name))

    def drop_indexes(self) -> None:
        self._run(self._drop_indexes_op())

    def list_indexes(self) -> CommandCursor:
        reply, address = self.read_command({"listIndexes": self._name, "cursor": {}},
                                           ReadPreference.PRIMARY)
        return CommandCursor(self._database.client, self._database.name, reply["cursor"], address,
                             self._codec_options)

    def index_information(self) -> dict[str, dict[str, Any]]:
        info: dict[str, dict[str, Any]] = {}
        for index in self.list_indexes():
            entry = {k: v for k, v in index.items() if k not in ("name", "ns")}
            entry["key"] = list(index["key"].items())
            info[index["name"]] = entry
        return info

    # --- collection-level --------------------------------------------------------------------------------
    def drop(self) -> None:
        self._database.drop_collection(self._name)

    def rename(self, new_name: str, dropTarget: bool = False, **kwargs: Any) -> dict[str, Any]:
        _check_collection_name(new_name)
        command = {
            "renameCollection": self.full_name,
            "to": f"{self._database.name}.{new_name}",
            "dropTarget": bool(dropTarget or kwargs.pop("drop_target", False)),
        }
        return self._database.client.admin.command(command)

    def options(self) -> dict[str, Any]:
        for info in self._database.list_collections(filter={"name": self._name}):
            return dict(info.get("options", {}))
        return {}

    # --- classic pymongo 2 calls ("MongoDB and Python") ---------------------------------------------------
    def insert(self, doc_or_docs: Any, manipulate: bool = True, safe: bool | None = None,
               check_keys: bool = True, continue_on_error: bool = False, **kwargs: Any) -> Any:
        """Insert one document (returns its ``_id``) or a list (returns the list of ``_id``s).
        ``safe=True`` / ``w=`` choose the write concern; errors raise ``DuplicateKeyError`` etc."""
        write_concern = from_legacy(self._write_concern, safe, kwargs)
        collection = self.with_options(write_concern=write_concern)
        if isinstance(doc_or_docs, Mapping):
            return collection.insert_one(doc_or_docs).inserted_id
        bulk = Bulk(collection, not continue_on_error, write_concern)
        ids = [bulk.add_insert(doc) for doc in doc_or_docs]
        if not ids:
            raise TypeError("insert needs a document or a non-empty list of documents")
        try:
            bulk.execute()
        except BulkWriteError as exc:
            details = exc.details or {}
            if details.get("writeErrors"):
                raise write_error_for(details["writeErrors"][0]) from None
            raise
        return ids

    def save(self, to_save: Mapping[str, Any], manipulate: bool = True, safe: bool | None = None,
             **kwargs: Any) -> Any:
        """Insert ``to_save``, or replace the document with its ``_id`` (upsert)."""
        if not isinstance(to_save, Mapping):
            raise TypeError("to_save must be a mapping")
        if "_id" not in to_save:
            return self.insert(to_save, manipulate, safe, **kwargs)
        write_concern = from_legacy(self._write_concern, safe, kwargs)
        self._update({"_id": to_save["_id"]}, dict(to_save), multi=False, upsert=True,
                     write_concern=write_concern)
        return to_save["_id"]

    def update(self, spec: Mapping[str, Any], document: Mapping[str, Any], upsert: bool = False,
               manipulate: bool = False, safe: bool | None = None, multi: bool = False,
               check_keys: bool = True, **kwargs: Any) -> dict[str, Any] | None:
        """Classic update: modifiers or a replacement; returns the ``getLastError``-style
        ``{n, nModified, updatedExisting, upserted?, ok, err}`` (None when unacknowledged)."""
        if not isinstance(spec, Mapping) or not isinstance(document, Mapping):
            raise TypeError("spec and document must be mappings")
        write_concern = from_legacy(self._write_concern, safe, kwargs)
        raw = self._update(spec, document, multi=multi, upsert=upsert, write_concern=write_concern)
        if not write_concern.acknowledged:
            return None
        raw["err"] = None
        return raw

    def remove(self, spec_or_id: Any = None, safe: bool | None = None, multi: bool = True,
               **kwargs: Any) -> dict[str, Any] | None:
        """Classic remove: ``remove(None)`` removes every document; a non-mapping is an ``_id``."""
        write_concern = from_legacy(self._write_concern, safe, kwargs)
        if spec_or_id is not None and not isinstance(spec_or_id, Mapping):
            multi = False
        raw = self._run(self._delete_op(filter_for(spec_or_id), 0 if multi else 1, write_concern))
        if not write_concern.acknowledged:
            return None
        raw["err"] = None
        return raw

    def find_and_modify(self, query: Mapping[str, Any] | None = None, update: Any = None,
                        upsert: bool = False, sort: Any = None, full_response: bool = False,
                        manipulate: bool = False, new: bool = False, fields: Any = None,
                        remove: bool = False, safe: bool | None = None, **kwargs: Any) -> Any:
        """Classic ``find_and_modify``: returns the document before (or, with ``new=True``,
        after) the change, or the full command reply with ``full_response=True``."""
        if not update and not remove:
            raise ValueError("Must either update or remove")
        if update and remove:
            raise ValueError("Can't do both update and remove")
        write_concern = from_legacy(self._write_concern, safe, kwargs)
        reply = self._run(self._find_and_modify_op(
            query or {}, update=update, remove=remove, new=new, upsert=upsert, sort=sort,
            projection=fields, write_concern=write_concern))
        return reply if full_response else reply.get("value")


def _projection(projection: Any) -> Mapping[str, Any]:
    if isinstance(projection, Mapping):
        return projection
    if isinstance(projection, (list, tuple, set)):
        return {field: 1 for field in projection}
    raise TypeError("projection must be a mapping or a list of field names")


def _check_fam(reply: Mapping[str, Any], address: Any) -> None:
    check_write_reply(reply, address)


def _count(reply: Mapping[str, Any]) -> int:
    return int(reply.get("n", 0))


def _allow_ns_not_found(reply: Mapping[str, Any], address: Any) -> None:
    check_reply(reply, address, allowable_errors=(NAMESPACE_NOT_FOUND, "ns not found"))

"""Bulk writes: the request classes (``InsertOne``, ``UpdateOne``, ``UpdateMany``, ``ReplaceOne``,
``DeleteOne``, ``DeleteMany``) and the runner that groups them into ``insert`` / ``update`` /
``delete`` commands, in batches, and merges the replies into one bulk result.

Ordered bulks run consecutive operations of one kind together and stop at the first write
error; unordered bulks run all operations of each kind together and report every error. Batches
whose statements all touch at most one document are retryable writes.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

from bson.objectid import ObjectId

from helogale.channel import encode
from helogale.errors import (
    BulkWriteError,
    InvalidOperation,
    NotPrimaryError,
    check_reply,
    write_concern_error_for,
)
from helogale.results import BulkWriteResult
from helogale.write_concern import WriteConcern

if TYPE_CHECKING:
    from helogale.collection import CollectionBase as Collection
    from helogale.topology import ServerDescription

MAX_BATCH_COUNT = 1000
MAX_BATCH_BYTES = 12 * 1024 * 1024

INSERT, UPDATE, DELETE = "insert", "update", "delete"
_LIST_FIELD = {INSERT: "documents", UPDATE: "updates", DELETE: "deletes"}


def validate_update_document(update: Any) -> None:
    """An update must be a non-empty modifier document (every key starting with ``$``) or a
    pipeline (list)."""
    if isinstance(update, list):
        if not update:
            raise ValueError("update cannot be an empty list")
        return
    if not isinstance(update, Mapping):
        raise TypeError("update must be a mapping or a list")
    if not update:
        raise ValueError("update cannot be empty")
    if not next(iter(update)).startswith("$"):
        raise ValueError("update only works with $ operators")


def validate_replacement(replacement: Any) -> None:
    """A replacement must be a document without ``$`` operators."""
    if not isinstance(replacement, Mapping):
        raise TypeError("replacement must be a mapping")
    if replacement and next(iter(replacement)).startswith("$"):
        raise ValueError("replacement can not include $ operators")


def with_id(document: Any) -> dict[str, Any]:
    """The document to send for an insert: ``_id`` first, generated (and set on the caller's
    document, as pymongo does) when missing."""
    if not isinstance(document, Mapping):
        raise TypeError(f"document must be a mapping, not {type(document).__name__}")
    if "_id" not in document:
        if not isinstance(document, dict):
            raise TypeError("cannot add an _id to an immutable mapping")
        document["_id"] = ObjectId()
    return {"_id": document["_id"], **{k: v for k, v in document.items() if k != "_id"}}


class _Request:
    def _add_to_bulk(self, bulk: Bulk) -> None:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            return vars(self) == vars(other)
        return NotImplemented

    def __repr__(self) -> str:
        inner = ", ".join(f"{k.lstrip('_')}={v!r}" for k, v in vars(self).items() if v is not None)
        return f"{type(self).__name__}({inner})"


class InsertOne(_Request):
    def __init__(self, document: Mapping[str, Any]) -> None:
        self._doc = document

    def _add_to_bulk(self, bulk: Bulk) -> None:
        bulk.add_insert(self._doc)


class _UpdateRequest(_Request):
    _multi = False
    _replace = False

    def __init__(
        self,
        filter: Mapping[str, Any],
        update: Any,
        upsert: bool = False,
        collation: Mapping[str, Any] | None = None,
        array_filters: list[Mapping[str, Any]] | None = None,
        hint: Any = None,
    ) -> None:
        if self._replace:
            validate_replacement(update)
        else:
            validate_update_document(update)
        self._filter = filter
        self._doc = update
        self._upsert = upsert
        self._collation = collation
        self._array_filters = array_filters
        self._hint = hint

    def _add_to_bulk(self, bulk: Bulk) -> None:
        bulk.add_update(
            self._filter, self._doc, multi=self._multi, upsert=self._upsert,
            collation=self._collation, array_filters=self._array_filters, hint=self._hint,
        )


class UpdateOne(_UpdateRequest):
    pass


class UpdateMany(_UpdateRequest):
    _multi = True


class ReplaceOne(_UpdateRequest):
    _replace = True

    def __init__(
        self,
        filter: Mapping[str, Any],
        replacement: Mapping[str, Any],
        upsert: bool = False,
        collation: Mapping[str, Any] | None = None,
        hint: Any = None,
    ) -> None:
        super().__init__(filter, replacement, upsert, collation, None, hint)


class _DeleteRequest(_Request):
    _limit = 1

    def __init__(
        self, filter: Mapping[str, Any], collation: Mapping[str, Any] | None = None, hint: Any = None
    ) -> None:
        self._filter = filter
        self._collation = collation
        self._hint = hint

    def _add_to_bulk(self, bulk: Bulk) -> None:
        bulk.add_delete(self._filter, self._limit, collation=self._collation, hint=self._hint)


class DeleteOne(_DeleteRequest):
    pass


class DeleteMany(_DeleteRequest):
    _limit = 0


class Bulk:
    """Operations queued for one ``bulk_write`` / ``insert_many`` call on one collection."""

    def __init__(self, collection: Collection, ordered: bool, write_concern: WriteConcern) -> None:
        self.collection = collection
        self.ordered = ordered
        self.write_concern = write_concern
        # (kind, statement, retryable)
        self.ops: list[tuple[str, dict[str, Any], bool]] = []

    def add_insert(self, document: Mapping[str, Any]) -> Any:
        doc = with_id(document)
        self.ops.append((INSERT, doc, True))
        return doc["_id"]

    def add_update(
        self, filter: Mapping[str, Any], update: Any, *, multi: bool, upsert: bool,
        collation: Any = None, array_filters: Any = None, hint: Any = None,
    ) -> None:
        stmt: dict[str, Any] = {"q": filter, "u": update, "multi": multi, "upsert": upsert}
        if collation is not None:
            stmt["collation"] = collation
        if array_filters is not None:
            stmt["arrayFilters"] = array_filters
        if hint is not None:
            stmt["hint"] = hint
        self.ops.append((UPDATE, stmt, not multi))

    def add_delete(self, filter: Mapping[str, Any], limit: int, *, collation: Any = None, hint: Any = None) -> None:
        stmt: dict[str, Any] = {"q": filter, "limit": limit}
        if collation is not None:
            stmt["collation"] = collation
        if hint is not None:
            stmt["hint"] = hint
        self.ops.append((DELETE, stmt, limit == 1))

    def _runs(self) -> list[tuple[str, list[int]]]:
        """Groups of op indexes that go into the same kind of command, in execution order."""
        runs: list[tuple[str, list[int]]] = []
        if self.ordered:
            for index, (kind, _, _) in enumerate(self.ops):
                if runs and runs[-1][0] == kind:
                    runs[-1][1].append(index)
                else:
                    runs.append((kind, [index]))
            return runs
        for kind in (INSERT, UPDATE, DELETE):
            indexes = [i for i, op in enumerate(self.ops) if op[0] == kind]
            if indexes:
                runs.append((kind, indexes))
        return runs

    def _batches(self, indexes: list[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        size = 0
        for index in indexes:
            op_size = len(encode(self.ops[index][1]))
            if current and (len(current) >= MAX_BATCH_COUNT or size + op_size > MAX_BATCH_BYTES):
                batches.append(current)
                current, size = [], 0
            current.append(index)
            size += op_size
        if current:
            batches.append(current)
        return batches

    def plan(self) -> Generator[tuple[str, list[int]], dict[str, Any], BulkWriteResult]:
        """The bulk without I/O: yields ``(kind, op indexes)`` for each batch to run, is sent
        each batch's reply, returns the result (raises BulkWriteError). :meth:`execute` drives
        it with the threaded client, the asyncio client with awaits."""
        if not self.ops:
            raise InvalidOperation("No operations to execute")
        acknowledged = self.write_concern.acknowledged
        result: dict[str, Any] = {
            "writeErrors": [], "writeConcernErrors": [], "nInserted": 0, "nUpserted": 0,
            "nMatched": 0, "nModified": 0, "nRemoved": 0, "upserted": [],
        }
        for kind, indexes in self._runs():
            for batch in self._batches(indexes):
                reply = yield kind, batch
                if acknowledged:
                    self._merge(result, kind, batch, reply)
                if self.ordered and result["writeErrors"]:
                    break
            if self.ordered and result["writeErrors"]:
                break
        if acknowledged and (result["writeErrors"] or result["writeConcernErrors"]):
            result["writeErrors"].sort(key=lambda e: e["index"])
            raise BulkWriteError(result)
        return BulkWriteResult(result, acknowledged)

    def execute(self) -> BulkWriteResult:
        plan = self.plan()
        try:
            kind, batch = next(plan)
            while True:
                build, handle, retryable = self.batch_steps(kind, batch)
                reply = self.collection.database.client.executor.write(
                    build, handle, retryable=retryable,
                    codec_options=self.collection.codec_options)
                kind, batch = plan.send(reply)
        except StopIteration as done:
            return done.value

    def batch_steps(self, kind: str, batch: list[int]) -> tuple[Any, Any, bool]:
        """``(build, handle, retryable)`` of one batch's write command for the executor."""
        coll = self.collection
        statements = [self.ops[i][1] for i in batch]
        retryable = all(self.ops[i][2] for i in batch)
        wc = self.write_concern

        def build(server: ServerDescription, session: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
            command: dict[str, Any] = {kind: coll.name, _LIST_FIELD[kind]: statements, "ordered": self.ordered}
            command.update(coll.write_concern_fields(wc))
            if session:
                command.update(session)
            return coll.database.name, command

        def handle(reply: dict[str, Any], server: ServerDescription) -> dict[str, Any]:
            if not wc.acknowledged:
                return reply
            check_reply(reply, server.address)
            wce = reply.get("writeConcernError")
            if wce and retryable:
                error = write_concern_error_for(wce)
                if isinstance(error, NotPrimaryError):
                    raise error  # run the batch again (same txnNumber) on the new primary
            return reply

        return build, handle, retryable

    def _merge(self, result: dict[str, Any], kind: str, batch: list[int], reply: Mapping[str, Any]) -> None:
        n = int(reply.get("n", 0))
        if kind == INSERT:
            result["nInserted"] += n
        elif kind == DELETE:
            result["nRemoved"] += n
        else:
            upserted = reply.get("upserted") or []
            result["nMatched"] += n - len(upserted)
            result["nModified"] += int(reply.get("nModified", 0))
            result["nUpserted"] += len(upserted)
            for entry in upserted:
                result["upserted"].append({"index": batch[int(entry["index"])], "_id": entry["_id"]})
        for error in reply.get("writeErrors") or []:
            entry = dict(error)
            entry["index"] = batch[int(error.get("index", 0))]
            entry["op"] = self.ops[entry["index"]][1]
            result["writeErrors"].append(entry)
        wce = reply.get("writeConcernError")
        if wce:
            result["writeConcernErrors"].append(dict(wce))

"""Cursors: :class:`Cursor` (``find``) and :class:`CommandCursor` (``listIndexes``,
``listCollections``). Both stream: they hold one batch at a time and fetch the next with
``getMore`` from the server that opened the cursor, and ``killCursors`` it when closed early.

``snapshot=True`` (the classic mode that returns each document once even while documents are
modified and move) walks the collection in ``_id`` order and skips any ``_id`` already returned.
"""

from __future__ import annotations

import contextlib
import copy
from collections import deque
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Self

from bson.codec_options import CodecOptions
from bson.int64 import Int64
from bson.son import SON

from helogale.errors import (
    AutoReconnect,
    ConnectionFailure,
    CursorNotFound,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
    check_reply,
)

DEFAULT_BATCH = 101
DOC, KILL, STOP, FIND, MORE, TAIL, SKIP = "doc", "kill", "stop", "find", "more", "tail", "skip"
"""The steps of a find cursor's iteration (:meth:`FindCursorBase._step`)."""
_REOPEN_CODES = frozenset({43, 175, 10107, 13435, 11600, 11602, 189, 91})
"""getMore failures after which a tailable cursor reopens itself from its resume token:
cursor gone with its server (CursorNotFound, QueryPlanKilled), not primary, shutting down."""
_REOPEN_ATTEMPTS = 5


class CursorType:
    """pymongo's cursor types (``find(cursor_type=...)``)."""

    NON_TAILABLE = 0
    TAILABLE = 2
    """Stays open at the end of a capped collection; iteration stops, ``alive`` stays true."""
    TAILABLE_AWAIT = 34
    """TAILABLE, and each getMore waits (``max_await_time_ms``, 1 s by default) for data."""
    EXHAUST = 64

if TYPE_CHECKING:
    from helogale.channel import Address, Channel
    from helogale.topology import ServerDescription


def normalize_sort(key_or_list: Any, direction: Any = None) -> list[tuple[str, Any]]:
    """Sort specs in all of pymongo's spellings -> ``[(field, direction), ...]``:
    ``sort("a")``, ``sort("a", -1)``, ``sort(("a", -1))`` (the book's form), ``sort([("a", 1),
    ("b", -1)])``, ``sort({"a": 1})``."""
    if direction is not None:
        if not isinstance(key_or_list, str):
            raise TypeError("sort key must be a string when a direction is given")
        return [(key_or_list, direction)]
    if isinstance(key_or_list, str):
        return [(key_or_list, 1)]
    if isinstance(key_or_list, Mapping):
        return list(key_or_list.items())
    if isinstance(key_or_list, tuple) and len(key_or_list) == 2 and isinstance(key_or_list[0], str) \
            and not isinstance(key_or_list[1], (tuple, list)):
        return [(key_or_list[0], key_or_list[1])]
    if isinstance(key_or_list, (list, tuple)):
        pairs = []
        for item in key_or_list:
            if isinstance(item, str):
                pairs.append((item, 1))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((item[0], item[1]))
            else:
                raise TypeError("sort must be a list of (key, direction) pairs")
        return pairs
    raise TypeError("sort must be a string, a (key, direction) pair, a list of pairs or a mapping")


class _CursorState:
    """A server-side cursor pinned to one address, without I/O: the batch held, the cursor id,
    and the ``getMore`` / ``killCursors`` commands that continue or end it."""

    def __init__(self, client: Any, codec_options: CodecOptions) -> None:
        self._client = client
        self._codec_options = codec_options
        self._data: deque[Any] = deque()
        self._id: int | None = None
        self._address: Address | None = None
        self._db = ""
        self._coll = ""
        self._resume_token: Any = None

    def _absorb(self, cursor: Mapping[str, Any], batch_key: str) -> None:
        self._data.extend(cursor.get(batch_key) or [])
        if cursor.get("postBatchResumeToken") is not None:
            self._resume_token = cursor["postBatchResumeToken"]
        self._id = int(cursor.get("id") or 0)
        ns = str(cursor.get("ns") or "")
        if ns and "." in ns:
            self._db, self._coll = ns.split(".", 1)

    def _get_more_command(self, batch_size: int | None,
                          max_time_ms: int | None = None) -> dict[str, Any]:
        assert self._address is not None and self._id
        command: dict[str, Any] = {"getMore": Int64(self._id), "collection": self._coll}
        if batch_size:
            command["batchSize"] = batch_size
        if max_time_ms is not None:
            command["maxTimeMS"] = max_time_ms
        return command

    def _take_kill_command(self) -> dict[str, Any] | None:
        """The ``killCursors`` that ends the open cursor (None: none is open); the cursor is
        forgotten either way."""
        command = None
        if self._id and self._address is not None:
            command = {"killCursors": self._coll, "cursors": [Int64(self._id)]}
        self._id = 0
        return command

    @property
    def cursor_id(self) -> int | None:
        return self._id

    @property
    def address(self) -> Address | None:
        return self._address


class _Batches(_CursorState):
    """getMore / killCursors through the threaded client's executor."""

    def _get_more(self, batch_size: int | None, max_time_ms: int | None = None) -> None:
        command = self._get_more_command(batch_size, max_time_ms)
        db, codec = self._db, self._codec_options

        def operation(server: ServerDescription, channel: Channel) -> dict[str, Any]:
            reply = channel.run(db, command, codec)
            check_reply(reply, server.address)
            return reply

        try:
            reply = self._client.executor.run(operation, retryable=False, address=self._address)
        except PyMongoError:
            self._id = 0
            raise
        self._absorb(reply["cursor"], "nextBatch")

    def _kill(self) -> None:
        command = self._take_kill_command()
        if command is not None:
            db = self._db

            def operation(server: ServerDescription, channel: Channel) -> None:
                channel.run(db, command)

            # a failure is harmless: the server reaps abandoned cursors itself
            with contextlib.suppress(PyMongoError):
                self._client.executor.run(operation, retryable=False, address=self._address)


class CommandCursorBase(_CursorState):
    """A cursor returned inside a command reply (``{cursor: {firstBatch, id, ns}}``), without
    I/O."""

    def __init__(
        self,
        client: Any,
        db: str,
        cursor: Mapping[str, Any],
        address: Address,
        codec_options: CodecOptions,
        batch_size: int = 0,
    ) -> None:
        super().__init__(client, codec_options)
        self._db = db
        self._address = address
        self._batch_size = batch_size
        self._absorb(cursor, "firstBatch")

    @property
    def alive(self) -> bool:
        return bool(self._data) or bool(self._id)


class CommandCursor(CommandCursorBase, _Batches):
    """A command's cursor, iterated with the threaded client."""

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if not self._data and self._id:
            self._get_more(self._batch_size)
        if self._data:
            return self._data.popleft()
        raise StopIteration

    next = __next__

    def close(self) -> None:
        self._data.clear()
        self._kill()

    def __enter__(self) -> CommandCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FindCursorBase(_CursorState):
    """A ``find`` cursor without I/O: its options (set before iteration starts), the ``find``
    command, and what iteration does next (:meth:`_step`). :class:`Cursor` runs it with the
    threaded client, ``helogale.asyncio.AsyncCursor`` with the asyncio one."""

    def __init__(
        self,
        collection: Any,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        skip: int = 0,
        limit: int = 0,
        sort: Any = None,
        batch_size: int = 0,
        snapshot: bool = False,
        hint: Any = None,
        max_time_ms: int | None = None,
        comment: Any = None,
        no_cursor_timeout: bool = False,
        allow_partial_results: bool = False,
        collation: Mapping[str, Any] | None = None,
        min: Any = None,
        max: Any = None,
        return_key: bool = False,
        show_record_id: bool = False,
        cursor_type: int = CursorType.NON_TAILABLE,
        *,
        fields: Any = None,
        spec: Mapping[str, Any] | None = None,
        timeout: bool = True,
        tailable: bool = False,
        await_data: bool = False,
        max_await_time_ms: int | None = None,
    ) -> None:
        super().__init__(collection.database.client, collection.codec_options)
        if spec is not None:
            filter = spec
        if fields is not None:
            projection = fields
        if filter is not None and not isinstance(filter, Mapping):
            raise TypeError("filter must be a mapping")
        self._collection = collection
        self._db = collection.database.name
        self._coll = collection.name
        self._filter: Mapping[str, Any] = filter or {}
        self._projection = _projection_doc(projection)
        self._skip = _int("skip", skip)
        self._limit = _int("limit", limit, allow_negative=True)
        self._sort: list[tuple[str, Any]] | None = normalize_sort(sort) if sort is not None else None
        self._batch_size = _int("batch_size", batch_size)
        self._snapshot = bool(snapshot)
        self._hint = hint
        self._max_time_ms = max_time_ms
        self._comment = comment
        self._no_cursor_timeout = no_cursor_timeout or not timeout
        self._allow_partial = allow_partial_results
        self._collation = collation
        self._min, self._max = min, max
        self._return_key, self._show_record_id = return_key, show_record_id
        if cursor_type not in (CursorType.NON_TAILABLE, CursorType.TAILABLE,
                               CursorType.TAILABLE_AWAIT):
            raise ValueError("not a valid value for cursor_type (EXHAUST is not supported)")
        self._tailable = bool(tailable) or cursor_type in (CursorType.TAILABLE,
                                                           CursorType.TAILABLE_AWAIT)
        self._await_data = bool(await_data) or cursor_type == CursorType.TAILABLE_AWAIT
        self._max_await_time_ms = max_await_time_ms
        self._started = False
        self._retrieved = 0
        self._seen: set[Any] = set()

    # --- options (only before iteration) ---------------------------------------------------
    def _check_okay_to_chain(self) -> None:
        if self._started:
            raise InvalidOperation("cannot set options after executing query")

    def sort(self, key_or_list: Any, direction: Any = None) -> Self:
        self._check_okay_to_chain()
        self._sort = normalize_sort(key_or_list, direction)
        return self

    def limit(self, limit: int) -> Self:
        self._check_okay_to_chain()
        self._limit = _int("limit", limit, allow_negative=True)
        return self

    def skip(self, skip: int) -> Self:
        self._check_okay_to_chain()
        self._skip = _int("skip", skip)
        return self

    def batch_size(self, batch_size: int) -> Self:
        self._check_okay_to_chain()
        self._batch_size = _int("batch_size", batch_size)
        return self

    def hint(self, index: Any) -> Self:
        self._check_okay_to_chain()
        self._hint = index if isinstance(index, str) or index is None else SON(normalize_sort(index))
        return self

    def max_time_ms(self, max_time_ms: int | None) -> Self:
        self._check_okay_to_chain()
        self._max_time_ms = max_time_ms
        return self

    def max_await_time_ms(self, max_await_time_ms: int | None) -> Self:
        """How long each getMore of a TAILABLE_AWAIT cursor waits for new documents."""
        self._check_okay_to_chain()
        self._max_await_time_ms = max_await_time_ms
        return self

    def comment(self, comment: Any) -> Self:
        self._check_okay_to_chain()
        self._comment = comment
        return self

    def collation(self, collation: Mapping[str, Any]) -> Self:
        self._check_okay_to_chain()
        self._collation = collation
        return self

    # --- commands --------------------------------------------------------------------------------
    def _effective_sort(self) -> list[tuple[str, Any]] | None:
        if self._snapshot:
            if self._sort:
                raise InvalidOperation("snapshot=True cannot be combined with sort")
            return [("_id", 1)]
        return self._sort

    def find_command(self) -> dict[str, Any]:
        """The ``find`` command this cursor sends first."""
        command: dict[str, Any] = {"find": self._coll, "filter": self._filter}
        sort = self._effective_sort()
        if sort:
            command["sort"] = SON(sort)
        if self._projection is not None:
            command["projection"] = self._projection
        if self._skip:
            command["skip"] = self._skip
        if self._limit:
            command["limit"] = abs(self._limit)
            if self._limit < 0:
                command["singleBatch"] = True
        batch = self._next_batch_size()
        if batch:
            command["batchSize"] = batch
        for key, value in (("hint", self._hint), ("maxTimeMS", self._max_time_ms),
                           ("comment", self._comment), ("collation", self._collation),
                           ("min", self._min), ("max", self._max)):
            if value is not None:
                command[key] = value
        if self._no_cursor_timeout:
            command["noCursorTimeout"] = True
        if self._allow_partial:
            command["allowPartialResults"] = True
        if self._return_key:
            command["returnKey"] = True
        if self._show_record_id:
            command["showRecordId"] = True
        if self._tailable:
            command["tailable"] = True
            if self._await_data:
                command["awaitData"] = True
        return command

    def _next_batch_size(self) -> int:
        """``batchSize`` for the next find/getMore (0: the server's default), never more than
        the documents the limit still allows."""
        size = self._batch_size
        if self._limit:
            remaining = abs(self._limit) - self._retrieved
            if size:
                return min(size, remaining)
            if self._limit < 0 or remaining < DEFAULT_BATCH:
                return remaining
        return size

    def _limit_reached(self) -> bool:
        return bool(self._limit) and self._retrieved >= abs(self._limit)

    def _step(self) -> tuple[str, Any]:
        """What iteration does next: ``(DOC, document)``, or an action without a document:
        ``KILL`` (the limit is reached: kill the cursor, then stop), ``STOP``, ``FIND`` (send
        the query), ``MORE`` (getMore), ``TAIL`` (a tailable cursor's getMore; stop if it
        brings nothing) or ``SKIP`` (a snapshot duplicate: step again)."""
        if self._limit_reached():
            self._data.clear()
            return KILL, None
        if not self._data:
            if not self._started:
                return FIND, None
            if self._id:
                return (TAIL if self._tailable else MORE), None
            return STOP, None
        document = self._data.popleft()
        if self._snapshot and isinstance(document, Mapping) and "_id" in document:
            key = _hashable(document["_id"])
            if key in self._seen:
                return SKIP, None
            self._seen.add(key)
        self._retrieved += 1
        return DOC, document

    def _opened(self, reply: Mapping[str, Any], address: Address) -> None:
        """The ``find`` reply came from ``address``: the first batch."""
        self._address = address
        self._absorb(reply["cursor"], "firstBatch")

    @property
    def alive(self) -> bool:
        return not self._started or bool(self._data) or bool(self._id)

    @property
    def resume_token(self) -> Any:
        """The ``postBatchResumeToken`` of the last batch (tailable cursors)."""
        return self._resume_token

    @property
    def retrieved(self) -> int:
        return self._retrieved

    @property
    def collection(self) -> Any:
        return self._collection

    def clone(self) -> Self:
        """An unevaluated copy with the same options."""
        other = copy.copy(self)
        other._data = deque()
        other._id = None
        other._address = None
        other._started = False
        other._retrieved = 0
        other._seen = set()
        other._resume_token = None
        return other


class Cursor(FindCursorBase, _Batches):
    """The result of ``find``: options are set before iteration starts; iteration streams."""

    def _send_find(self) -> None:
        self._started = True
        self._opened(*self._collection.read_command(self.find_command()))

    def _tail_more(self) -> None:
        """A tailable cursor's next batch; if its server went away (failover), the cursor
        reopens from its resume token on the server now selected, so no document is seen
        twice or skipped."""
        await_ms = self._max_await_time_ms if self._await_data else None
        try:
            self._get_more(self._next_batch_size(), await_ms)
            return
        except (ConnectionFailure, CursorNotFound) as exc:
            error: PyMongoError = exc
        except OperationFailure as exc:
            if exc.code not in _REOPEN_CODES or self._resume_token is None:
                raise
            error = exc
        if self._resume_token is None:
            raise error
        for attempt in range(_REOPEN_ATTEMPTS):
            command = self.find_command()
            command["$_resumeAfter"] = self._resume_token
            try:
                reply, address = self._collection.read_command(command)
            except AutoReconnect:
                if attempt == _REOPEN_ATTEMPTS - 1:
                    raise
                continue
            self._address = address
            self._absorb(reply["cursor"], "firstBatch")
            return

    # --- iteration -----------------------------------------------------------------------------------
    def __iter__(self) -> Cursor:
        return self

    def __next__(self) -> Any:
        while True:
            action, document = self._step()
            if action == DOC:
                return document
            if action == KILL:
                self._kill()
                raise StopIteration
            if action == STOP:
                raise StopIteration
            if action == FIND:
                self._send_find()
            elif action == MORE:
                self._get_more(self._next_batch_size())
            elif action == TAIL:
                self._tail_more()
                if not self._data:
                    raise StopIteration  # nothing new yet; the cursor stays alive

    next = __next__

    def __getitem__(self, index: int | slice) -> Any:
        self._check_okay_to_chain()
        if isinstance(index, slice):
            if index.step is not None:
                raise IndexError("Cursor instances do not support slice steps")
            start = index.start or 0
            if start < 0 or (index.stop is not None and index.stop < 0):
                raise IndexError("Cursor instances do not support negative indices")
            self._skip = start
            if index.stop is not None:
                if index.stop <= start:
                    raise IndexError("stop index must be greater than start index for slice")
                self._limit = index.stop - start
            return self
        if not isinstance(index, int) or index < 0:
            raise IndexError("Cursor instances support non-negative integer indices")
        clone = self.clone()
        clone._skip = self._skip + index
        clone._limit = -1
        for document in clone:
            return document
        raise IndexError("no such item for Cursor instance")

    def close(self) -> None:
        self._data.clear()
        self._kill()
        self._started = True

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rewind(self) -> Cursor:
        """Forget the results: the next iteration runs the query again."""
        self._data.clear()
        self._kill()
        self._id = None
        self._address = None
        self._started = False
        self._retrieved = 0
        self._seen = set()
        return self

    # --- cursor-level helpers -------------------------------------------------------------------
    def count(self, with_limit_and_skip: bool = False) -> int:
        """Classic ``Cursor.count()``: matching documents (ignoring skip/limit unless asked)."""
        command: dict[str, Any] = {"count": self._coll, "query": self._filter}
        if with_limit_and_skip:
            if self._skip:
                command["skip"] = self._skip
            if self._limit:
                command["limit"] = abs(self._limit)
        if self._hint is not None:
            command["hint"] = self._hint
        reply, _ = self._collection.read_command(command)
        return int(reply.get("n", 0))

    def distinct(self, key: str) -> list[Any]:
        return self._collection.distinct(key, self._filter)

    def explain(self, verbosity: str = "queryPlanner") -> dict[str, Any]:
        find = self.find_command()
        find.pop("singleBatch", None)
        find.pop("batchSize", None)
        reply, _ = self._collection.read_command({"explain": find, "verbosity": verbosity})
        return reply

    def __repr__(self) -> str:
        return f"<helogale.cursor.Cursor {self._collection.full_name} filter={self._filter!r}>"


def _int(name: str, value: Any, allow_negative: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer")
    if value < 0 and not allow_negative:
        raise ValueError(f"{name} must be >= 0")
    return value


def _projection_doc(projection: Any) -> Mapping[str, Any] | None:
    if projection is None:
        return None
    if isinstance(projection, Mapping):
        return projection
    if isinstance(projection, (list, tuple, set)):
        return {field: 1 for field in projection}
    raise TypeError("projection must be a mapping or a list of field names")


def _hashable(value: Any) -> Any:
    try:
        hash(value)
        return (type(value).__name__, value)
    except TypeError:
        return (type(value).__name__, repr(value))

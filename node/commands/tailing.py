"""Tailable and ``awaitData`` cursors on capped collections (``find`` with ``tailable``).

A tailable cursor keeps only its place: the natural position of the last document it looked at.
Every batch is read from a fresh store snapshot strictly after that place, so an open tailable
cursor pins no store reader however long it stays open. Each reply carries
``postBatchResumeToken: {$recordId: <position>}``; a ``find`` with ``$_resumeAfter`` set to it
continues from there (a client or router reopening a cursor after a failover: positions are
replicated state, the same on every member).

Errors are MongoDB's: a tailable find on a collection that is not capped is BadValue; when the
documents after the cursor's place were removed to stay within the bounds, the read fails with
CappedPositionLost (136) and the cursor is closed; a dropped collection closes it with
QueryPlanKilled (175). A tailable find on an empty collection returns cursor id 0, as mongod.

``awaitData``: a getMore that finds nothing waits for a write to the collection, at most its
``maxTimeMS`` (1 s by default), then answers (possibly an empty batch; the cursor stays open).
On the gRPC command stream (``ctx.deferred_replies``) the wait holds no thread: the reply is a
:class:`~node.commands.pending.PendingReply` completed by :class:`TailWaits` (one timer thread
per member and a small pool for the re-reads). Elsewhere (wire protocol, unary gRPC) the
connection's own thread waits, as in mongod.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import bson
from bson import Int64

from node.commands.context import RequestContext
from node.commands.cursors import MAX_BATCH_BYTES
from node.commands.pending import PendingReply
from node.engine import capped
from node.engine.collection import _projector, decode_doc
from node.engine.errors import (
    BAD_VALUE,
    CAPPED_POSITION_LOST,
    QUERY_PLAN_KILLED,
    MongoError,
)
from node.engine.matcher import Matcher

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices
    from node.commands.requests import FindRequest, GetMoreRequest

DEFAULT_AWAIT_MS = 1000
FIRST_BATCH = 101


@dataclass
class Tail:
    """A tailable cursor's query and place."""

    db: str
    coll: str
    matcher: Matcher
    project: Any
    last: int | None
    """The natural position of the last document looked at (None: not started)."""
    await_data: bool

    @property
    def ns(self) -> str:
        return f"{self.db}.{self.coll}"


def resume_token(last: int) -> dict[str, Any]:
    return {"$recordId": Int64(last)}


def _resume_position(token: Any) -> int:
    if not isinstance(token, Mapping) or not isinstance(token.get("$recordId"), int):
        raise MongoError(BAD_VALUE, "$_resumeAfter must be {$recordId: <long>}")
    return int(token["$recordId"])


def read_batch(engine: Any, tail: Tail, limit: int | None) -> list[dict[str, Any]]:
    """Up to ``limit`` matches after ``tail.last`` from a fresh snapshot (advancing the place
    past every document looked at, matching or not)."""
    out: list[dict[str, Any]] = []
    size = 0
    collection = engine.collection(tail.db, tail.coll)
    with engine.store.read() as reader:
        state = engine.capped_state(reader, tail.ns)
        if state is None:
            raise MongoError(QUERY_PLAN_KILLED,
                             f"collection dropped or no longer capped: {tail.ns}")
        if tail.last is None:  # a new cursor starts at the oldest document held
            tail.last = state.trimmed
        if tail.last < state.trimmed:
            raise MongoError(CAPPED_POSITION_LOST,
                             f"CollectionScan died due to position in capped collection "
                             f"{tail.ns} being deleted. Last seen record id: {tail.last}")
        for pos, _, raw in capped.natural_rows(reader, tail.ns, collection.table,
                                               after=tail.last):
            doc = decode_doc(raw)
            matched, mpos = tail.matcher.match_position(doc)
            if matched:
                shaped = tail.project(doc, mpos) if tail.project else doc
                doc_size = len(bson.encode(shaped))
                if out and size + doc_size > MAX_BATCH_BYTES:
                    break
                size += doc_size
                out.append(shaped)
            tail.last = pos
            if limit and len(out) >= limit:
                break
    return out


def reply(ns: str, batch: list[dict[str, Any]], cursor_id: int, last: int, first: bool
          ) -> dict[str, Any]:
    key = "firstBatch" if first else "nextBatch"
    return {"cursor": {key: batch, "id": Int64(cursor_id), "ns": ns,
                       "postBatchResumeToken": resume_token(last)}}


def find(node: NodeServices, req: FindRequest, ctx: RequestContext) -> dict[str, Any]:
    """A tailable ``find`` (or one resuming with ``$_resumeAfter``): first batch and cursor."""
    engine = node.engine
    collection = engine.collection(req.db, req.coll)
    if not collection.is_capped():
        raise MongoError(BAD_VALUE, "error processing query: tailable cursor requested on "
                         f"non capped collection {req.ns}")
    token = req.raw.get("$_resumeAfter")
    after = _resume_position(token) if token is not None else None
    from node.commands.query import let_values  # query imports this module

    variables = let_values(req.let) if req.let else None
    tail = Tail(req.db, req.coll, Matcher(req.filter, variables=variables),
                _projector(req.projection, variables=variables), after,
                bool(req.raw.get("awaitData")))
    limit = req.batch_size if req.batch_size is not None else FIRST_BATCH
    batch = read_batch(engine, tail, limit)
    assert tail.last is not None
    if token is None and not batch and collection.count(limit=1) == 0:
        return reply(req.ns, batch, 0, tail.last, True)  # empty: mongod returns no cursor
    if not req.raw.get("tailable"):  # a plain resumed natural-order read
        rest = read_batch(engine, tail, 0)
        return reply(req.ns, batch + rest, 0, tail.last, True)
    cursor_id = node.cursors.open_tail(req.ns, tail, ctx.connection_id, ctx.auth)
    return reply(req.ns, batch, cursor_id, tail.last, True)


def get_more(node: NodeServices, req: GetMoreRequest, cursor: Any, ctx: RequestContext
             ) -> dict[str, Any] | PendingReply:
    """The next batch of tailable ``cursor``; with ``awaitData`` and nothing new, waits."""
    tail: Tail = cursor.tail
    if req.max_time_ms and not tail.await_data:
        raise MongoError(BAD_VALUE, "cannot set maxTimeMS on getMore command for a "
                         "non-awaitData cursor")
    waits: TailWaits = node.tail_waits
    deadline = time.monotonic() + (req.max_time_ms or DEFAULT_AWAIT_MS) / 1000.0

    def attempt() -> tuple[list[dict[str, Any]], int]:
        version = waits.version(tail.ns)
        with cursor.lock:
            try:
                batch = read_batch(node.engine, tail, req.batch_size)
            except MongoError:
                node.cursors.close(cursor.cursor_id)
                raise
        return batch, version

    def answer(batch: list[dict[str, Any]]) -> dict[str, Any]:
        return reply(req.ns, batch, cursor.cursor_id, tail.last or 0, False)

    batch, version = attempt()
    if batch or not tail.await_data:
        return answer(batch)
    if not ctx.deferred_replies:
        while time.monotonic() < deadline:
            waits.wait(tail.ns, version, deadline)
            batch, version = attempt()
            if batch:
                break
        return answer(batch)
    future: Future[dict[str, Any]] = Future()

    def retry() -> None:
        try:
            got, seen = attempt()
        except BaseException as exc:
            future.set_exception(exc)
            return
        if got or time.monotonic() >= deadline:
            future.set_result(answer(got))
        else:
            waits.defer(tail.ns, seen, deadline, retry)

    waits.defer(tail.ns, version, deadline, retry)
    return PendingReply(future, lambda result: result)


@dataclass(eq=False)
class _Deferred:
    deadline: float
    ns: str
    fire: Callable[[], None]


class TailWaits:
    """Where ``awaitData`` getMores wait for writes to capped collections.

    ``notify(namespaces)`` is called after the writes commit (the state machine's apply
    callback); it bumps each namespace's version, wakes blocking waiters and runs the deferred
    ones (in a small pool, never on the applying thread). A deferred waiter also runs once at its
    deadline (one timer thread). Each waiter runs exactly once per registration.
    """

    def __init__(self, workers: int = 2) -> None:
        self._cond = threading.Condition()
        self._versions: dict[str, int] = {}
        self._by_ns: dict[str, list[_Deferred]] = {}
        self._heap: list[tuple[float, int, _Deferred]] = []
        self._seq = itertools.count()
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._timer: threading.Thread | None = None
        self._closed = False

    def attach(self, engine: Any, state_machine: Any) -> None:
        """Hear of every committed write to a capped collection of ``engine``."""
        state_machine.on_apply.append(lambda _index, _reply: self.notify(
            engine.take_capped_writes()))

    @property
    def deferred(self) -> int:
        with self._cond:
            return sum(len(v) for v in self._by_ns.values())

    def version(self, ns: str) -> int:
        with self._cond:
            return self._versions.get(ns, 0)

    def notify(self, namespaces: Iterable[str]) -> None:
        if isinstance(namespaces, set | list | tuple) and not namespaces:
            return  # the common case: the entries applied wrote no capped collection
        fire: list[Callable[[], None]] = []
        with self._cond:
            touched = False
            for ns in namespaces:
                touched = True
                self._versions[ns] = self._versions.get(ns, 0) + 1
                for item in self._by_ns.pop(ns, ()):
                    fire.append(item.fire)
                    item.fire = _NOTHING  # the timer must not run it again
            if touched:
                self._cond.notify_all()
        for run in fire:
            self._run(run)

    def wait(self, ns: str, version: int, deadline: float) -> None:
        """Block until ``ns`` moves past ``version`` or ``deadline`` (monotonic) passes."""
        with self._cond:
            while self._versions.get(ns, 0) == version and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def defer(self, ns: str, version: int, deadline: float, fire: Callable[[], None]) -> None:
        """Run ``fire`` once: when ``ns`` moves past ``version``, or at ``deadline``."""
        with self._cond:
            if self._versions.get(ns, 0) != version or self._closed:
                now = True
            else:
                now = False
                item = _Deferred(deadline, ns, fire)
                self._by_ns.setdefault(ns, []).append(item)
                heapq.heappush(self._heap, (deadline, next(self._seq), item))
                if self._timer is None:
                    self._timer = threading.Thread(target=self._time, name="tail-waits",
                                                   daemon=True)
                    self._timer.start()
                self._cond.notify_all()
        if now:
            self._run(fire)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            pending = [i for items in self._by_ns.values() for i in items]
            self._by_ns.clear()
            self._heap.clear()
            self._cond.notify_all()
        for item in pending:
            item.fire()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def _run(self, fire: Callable[[], None]) -> None:
        if fire is _NOTHING:
            return
        with self._cond:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="tail-read")
            pool = self._pool
        try:
            pool.submit(fire)
        except RuntimeError:  # shut down: answer from here
            fire()

    def _time(self) -> None:
        while True:
            due: list[_Deferred] = []
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                while self._heap and (self._heap[0][0] <= now
                                      or self._heap[0][2].fire is _NOTHING):
                    item = heapq.heappop(self._heap)[2]
                    if item.fire is _NOTHING:
                        continue
                    waiting = self._by_ns.get(item.ns)
                    if waiting is not None:
                        waiting[:] = [w for w in waiting if w is not item]
                        if not waiting:
                            del self._by_ns[item.ns]
                    due.append(item.fire)
                    item.fire = _NOTHING
                if not due:
                    timeout = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(timeout)
            for run in due:
                self._run(run)


def _nothing() -> None:
    return None


_NOTHING: Callable[[], None] = _nothing

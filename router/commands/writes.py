"""The router's writes: ``insert``, ``update``, ``delete`` and ``findAndModify``.

Each statement of a batch is targeted on its own:

* an insert by its document's ``_id`` (the router gives an ObjectId to a document without
  one), so a batch reaches each shard as ONE insert of its documents;
* an update or delete by its query: ``_id`` equality / ``$in`` / ranges reach the owning
  shards only; a multi-write otherwise reaches every shard of the collection; a single-
  document write (``update_one``, ``delete_one``, ``findAndModify``) that could touch several
  shards first asks them which holds a match, then runs there as it is (the shard picks the
  document, atomically), and looks again if that shard's matches went away meanwhile; with a
  sort (``findAndModify``) it is pinned to the first document in sort order over all shards.
  Each of those attempts carries its own statement id (:func:`attempt_stmt_id`): a shard
  records an attempt that matched nothing as that statement's result, so reusing the id
  would answer every later attempt on that shard with the same nothing;
* an upsert must pin ``_id`` by equality on a sharded collection (ShardKeyNotFound, 61).

An ordered batch runs as consecutive runs of statements going to the same shard, stopping at
the first error; an unordered batch sends each shard its statements at once. Statements keep
their positions: ``stmtIds`` go to the shards with ``lsid``/``txnNumber``, so a retried
batch split differently (a chunk moved) still applies each statement once, and ``writeErrors``
and ``upserted`` indexes are the client's. A shard's StaleConfig means nothing of that
sub-batch applied: its statements are targeted again with a fresh routing table.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bson import ObjectId

from node.commands import requests
from node.commands.context import RequestContext
from node.engine.errors import MongoError
from node.sharding.shard_state import SHARD_KEY_NOT_FOUND
from router.catalog import CONFIG_DBS, Route
from router.cursors import raise_for
from router.services import forwardable
from router.shards import StaleRetries, StaleRouting, is_stale, versioned
from router.targeting import exact_id, id_ranges, note_targets

if TYPE_CHECKING:
    from router.services import RouterServices

log = logging.getLogger("helogale.router.writes")
TWO_PHASE_ATTEMPTS = 20
ATTEMPT_STRIDE = 1 << 17
"""Statement ids of a single write's later attempts lie ``ATTEMPT_STRIDE`` apart (above
any batch's 100,000 statement ids)."""


def attempt_stmt_id(stmt_id: int, attempt: int) -> int:
    """The statement id attempt ``attempt`` of a found-first single write is sent with: the
    client's for the first, then ids no other statement uses. A retried command makes the
    same attempts in turn, so a shard that applied one answers it from its records."""
    return stmt_id + attempt * ATTEMPT_STRIDE


WRITE_FIELDS = ("documents", "updates", "deletes", "ordered", "stmtIds", "stmtId")


@dataclass
class Outcome:
    """The merged reply of a write batch, in the client's statement positions."""

    n: int = 0
    n_modified: int = 0
    upserted: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    wce: dict[str, Any] | None = None
    kind: str = "insert"

    def add(self, reply: Mapping[str, Any], positions: Sequence[int]) -> bool:
        """Fold a shard's reply for the statements at ``positions``; False if it failed."""
        self.n += int(reply.get("n", 0))
        self.n_modified += int(reply.get("nModified", 0))
        for up in reply.get("upserted", ()):
            self.upserted.append({**up, "index": positions[int(up["index"])]})
        errors = reply.get("writeErrors") or []
        for err in errors:
            self._error({**err, "index": positions[int(err["index"])]})
        if reply.get("writeConcernError") and self.wce is None:
            self.wce = dict(reply["writeConcernError"])
        return not errors

    def _error(self, err: dict[str, Any]) -> None:
        """One error per statement: a statement sent to several shards that failed on more
        than one reports the first failure only, as mongos does."""
        if all(e["index"] != err["index"] for e in self.errors):
            self.errors.append(err)

    def fail(self, positions: Sequence[int], reply: Mapping[str, Any], *,
             every: bool = False) -> None:
        """A shard failed a whole sub-batch (not StaleConfig): an error at its first
        statement (an ordered batch stops there), or at ``every`` one of them."""
        for i in positions if every else positions[:1]:
            self._error({"index": i, "code": int(reply.get("code", 1)),
                         "codeName": reply.get("codeName"), "errmsg": str(reply.get("errmsg"))})

    def reply(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n}
        if self.kind == "update":
            out["nModified"] = self.n_modified
            if self.upserted:
                out["upserted"] = sorted(self.upserted, key=lambda u: u["index"])
        if self.errors:
            out["writeErrors"] = sorted(self.errors, key=lambda e: e["index"])
        if self.wce is not None:
            out["writeConcernError"] = self.wce
        return out


class BatchWriter:
    """One write command over the shards (see module docstring)."""

    def __init__(self, svc: RouterServices, db: str, coll: str, kind: str,
                 statements: list[Any], ordered: bool, stmt_ids: list[int] | None,
                 cmd: Mapping[str, Any]) -> None:
        self.svc = svc
        self.db = db
        self.coll = coll
        self.ns = f"{db}.{coll}"
        self.kind = kind
        self.statements = statements
        self.ordered = ordered
        self.stmt_ids = stmt_ids or list(range(len(statements)))
        self.base = forwardable(cmd, *WRITE_FIELDS)
        self.out = Outcome(kind=kind)

    # --- targeting ---------------------------------------------------------------------
    def _target(self, route: Route, i: int) -> list[str] | None:
        """The shards statement ``i`` goes to; None: a single write to find first."""
        if route.table is None:
            return note_targets([route.primary], 1)
        st = self.statements[i]
        if self.kind == "insert":
            return note_targets([route.table.shard_for_id(st["_id"])], 1)
        query = st["q"]
        single = (self.kind == "update" and not st.get("multi")) or (
            self.kind == "delete" and st.get("limit") == 1)
        if self.kind == "update" and st.get("upsert") and not exact_id(query)[0]:
            raise MongoError(SHARD_KEY_NOT_FOUND, "Failed to target upsert by query :: "
                             "could not extract exact shard key", code_name="ShardKeyNotFound")
        shards = route.table.shards_in(id_ranges(query))
        if single and len(shards) > 1:
            return None
        return note_targets(shards or [], len(route.table.shards()))

    def _body(self, positions: Sequence[int], statements: Sequence[Any] | None = None,
              attempt: int = 0) -> dict[str, Any]:
        key = {"insert": "documents", "update": "updates", "delete": "deletes"}[self.kind]
        stmts = statements if statements is not None else [self.statements[i] for i in positions]
        cmd = {self.kind: self.coll, **{k: v for k, v in self.base.items() if k != self.kind},
               key: list(stmts), "ordered": self.ordered}
        if "lsid" in self.base:
            cmd["stmtIds"] = [attempt_stmt_id(self.stmt_ids[i], attempt) for i in positions]
        return cmd

    # --- running -----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        pending = list(range(len(self.statements)))
        retries = StaleRetries(self.ns)
        while pending:
            route = self.svc.catalog.route(self.db, self.coll, create_db=True)
            assert route is not None
            try:
                pending = self._round(route, pending)
            except StaleRouting as exc:
                self.svc.shards.stale_retries += 1
                self.svc.catalog.mark_stale(self.ns, database=route.table is None)
                pending = exc.reply.pop("__pending")
                retries.again(exc)
                continue
            if self.ordered and self.out.errors:
                break
        if self.ordered and len(self.out.errors) > 1:  # an ordered batch stops at its first
            self.out.errors = [min(self.out.errors, key=lambda e: e["index"])]
        return self.out.reply()

    def _round(self, route: Route, pending: list[int]) -> list[int]:
        """Send every pending statement once; returns those to send again (StaleConfig).
        A statement that cannot be targeted (an upsert without ``_id``) is its write error."""
        targets: dict[int, list[str] | None] = {}
        for k, i in enumerate(pending):
            try:
                targets[i] = self._target(route, i)
            except MongoError as exc:
                self.out.errors.append({"index": i, "code": exc.code,
                                        "codeName": exc.code_name, "errmsg": exc.errmsg})
                if self.ordered:
                    pending = pending[:k]
                    break
        pending = [i for i in pending if i in targets]
        if self.ordered:
            return self._ordered(route, pending, targets)
        return self._unordered(route, pending, targets)

    def _ordered(self, route: Route, pending: list[int],
                 targets: dict[int, list[str] | None]) -> list[int]:
        k = 0
        while k < len(pending):
            i = pending[k]
            shards = targets[i]
            if shards is None or len(shards) != 1:
                stale = self._statement_everywhere(route, i, shards)
                if stale:
                    self._stale(pending[k:])
                if self.out.errors:
                    return []
                k += 1
                continue
            run = [i]
            while k + len(run) < len(pending) and targets[pending[k + len(run)]] == shards:
                run.append(pending[k + len(run)])
            reply = self._send(route, shards[0], run)
            if is_stale(reply):
                self._stale(pending[k:], reply)
            if reply.get("ok") != 1.0:
                self.out.fail(run, reply)
                return []
            if not self.out.add(reply, run):
                return []
            k += len(run)
        return []

    def _unordered(self, route: Route, pending: list[int],
                   targets: dict[int, list[str] | None]) -> list[int]:
        """Each shard gets its statements in the batch's order (a multi-shard statement in
        every one of its shards' sub-batches), all shards at once; a single write found
        first (``update_one`` without ``_id``) runs alone between the statements before and
        after it."""
        again: list[int] = []
        segment: list[int] = []
        for i in pending:
            if targets[i] is not None:
                segment.append(i)
                continue
            again += self._segment(route, segment, targets)
            segment = []
            if self._single_by_search(route, i):
                again.append(i)
        again += self._segment(route, segment, targets)
        if again:
            self._stale(sorted(set(again)))
        return []

    def _segment(self, route: Route, segment: list[int],
                 targets: dict[int, list[str] | None]) -> list[int]:
        """Send ``segment`` (unordered, every statement targeted); returns the statements a
        shard said StaleConfig for."""
        by_shard: dict[str, list[int]] = {}
        for i in segment:
            shards = targets[i] or []
            if not shards:
                self.out.add({"n": 0}, [i])
            for shard in shards:
                by_shard.setdefault(shard, []).append(i)
        groups = list(by_shard.items())
        if not groups:
            return []
        replies = self.svc.shards.call_many(
            [(shard, self.db, versioned(self._body(run), route, shard)) for shard, run in groups],
            retry=self._retry())
        again: list[int] = []
        for (_, run), reply in zip(groups, replies, strict=True):
            if is_stale(reply):
                again.extend(run)
            elif reply.get("ok") != 1.0:
                self.out.fail(run, reply, every=True)
            else:
                self.out.add(reply, run)
        return again

    def _retry(self) -> Any:
        return "safe" if "lsid" in self.base and "txnNumber" in self.base else "refused"

    def _send(self, route: Route, shard: str, positions: Sequence[int],
              statements: Sequence[Any] | None = None, attempt: int = 0) -> dict[str, Any]:
        return self.svc.shards.call(shard, self.db, versioned(
            self._body(positions, statements, attempt), route, shard), retry=self._retry())

    def _stale(self, pending: list[int], reply: Mapping[str, Any] | None = None) -> None:
        exc = StaleRouting(self.ns, dict(reply or {"errmsg": "stale routing"}))
        exc.reply["__pending"] = pending
        raise exc

    def _statement_everywhere(self, route: Route, i: int, shards: list[str] | None) -> bool:
        """A multi-write on several shards (or a single write found first); True when a
        shard said StaleConfig (the statement must be targeted again)."""
        if shards is None:
            return self._single_by_search(route, i)
        if not shards:
            self.out.add({"n": 0}, [i])
            return False
        replies = self.svc.shards.call_many(
            [(s, self.db, versioned(self._body([i]), route, s)) for s in shards],
            retry=self._retry())
        stale = False
        for reply in replies:
            if is_stale(reply):
                stale = True
            elif reply.get("ok") != 1.0:
                self.out.fail([i], reply)
            else:
                self.out.add(reply, [i])
        return stale

    def _single_by_search(self, route: Route, i: int) -> bool:
        """``update_one``/``delete_one`` that could touch several shards: find a shard holding
        a match, run the statement there, look again if that shard's matches went away."""
        st = self.statements[i]
        assert route.table is not None
        for attempt in range(TWO_PHASE_ATTEMPTS):
            try:
                found = find_match(self.svc, route, self.db, self.coll, st["q"],
                                   st.get("sort") if self.kind == "update" else None)
            except MongoError as exc:  # its query fails (a bad operator): its write error
                self.out.fail([i], exc.to_reply())
                return False
            if found is None:
                if self.kind == "update" and st.get("upsert"):
                    raise MongoError(SHARD_KEY_NOT_FOUND, "Failed to target upsert by "
                                     "query :: could not extract exact shard key",
                                     code_name="ShardKeyNotFound")
                self.out.add({"n": 0, "nModified": 0}, [i])
                return False
            reply = self._send(route, found[0], [i], attempt=attempt)
            if is_stale(reply):
                return True
            if reply.get("ok") != 1.0:
                self.out.fail([i], reply)
                return False
            if int(reply.get("n", 0)) or reply.get("writeErrors"):
                self.out.add(reply, [i])
                return False
        self.out.add({"n": 0, "nModified": 0}, [i])
        return False


def find_match(svc: RouterServices, route: Route, db: str, coll: str,
               query: Mapping[str, Any], sort: Mapping[str, Any] | None
               ) -> tuple[str, Any] | None:
    """``(shard, _id)`` of a document matching ``query``, asking every shard it can be on
    (with ``sort``, the first in sort order over all of them; without, the first of a shard
    chosen at random among those holding a match, so racing writers spread out); None when
    nothing matches."""
    assert route.table is not None
    shards = route.table.shards_in(id_ranges(query))
    cmd: dict[str, Any] = {"find": coll, "filter": dict(query), "limit": 1,
                           "singleBatch": True}
    if sort:
        cmd["sort"] = dict(sort)
        cmd["$_requestSortKey"] = True
    else:
        cmd["projection"] = {"_id": 1}
    replies = svc.shards.call_many([(s, db, versioned(cmd, route, s)) for s in shards])
    for reply in replies:
        if is_stale(reply):
            raise StaleRouting(route.ns, reply)
        raise_for(reply, "shard")
    found = [(s, d) for s, r in zip(shards, replies, strict=True)
             for d in r["cursor"]["firstBatch"]]
    if not found:
        return None
    if sort:
        shard, doc = min(found, key=lambda p: bytes(p[1]["$sortKey"]))
    else:
        shard, doc = random.choice(found)
    return shard, doc["_id"]


# --- handlers ----------------------------------------------------------------------------------


SETTINGS = "settings"
"""``config.settings`` (the balancer and chunk size): writable through a router, as in
MongoDB; the rest of ``config`` and ``admin`` is not."""


def _config_write(svc: RouterServices, db: str, coll: str, cmd: Mapping[str, Any]
                  ) -> dict[str, Any] | None:
    """The config servers' reply to a write of ``config.settings``; None for other
    namespaces (IllegalOperation in ``config``/``admin``)."""
    if db not in CONFIG_DBS:
        return None
    if db == "config" and coll == SETTINGS:
        return svc.config.command(db, forwardable(cmd), retry="refused")
    raise MongoError(20, f"writes to the {db} database through a router are not allowed",
                     code_name="IllegalOperation")


def insert(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
           ) -> dict[str, Any]:
    req = requests.parse_insert(db, cmd)
    if (settings := _config_write(svc, db, req.coll, cmd)) is not None:
        return settings
    docs = [dict(d) if "_id" in d else {"_id": ObjectId(), **d} for d in req.documents]
    return BatchWriter(svc, db, req.coll, "insert", docs, req.ordered, req.stmt_ids,
                       cmd).run()


def update(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
           ) -> dict[str, Any]:
    req = requests.parse_update(db, cmd)
    if (settings := _config_write(svc, db, req.coll, cmd)) is not None:
        return settings
    return BatchWriter(svc, db, req.coll, "update", [st.to_doc() for st in req.updates],
                       req.ordered, req.stmt_ids, cmd).run()


def delete(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
           ) -> dict[str, Any]:
    req = requests.parse_delete(db, cmd)
    if (settings := _config_write(svc, db, req.coll, cmd)) is not None:
        return settings
    return BatchWriter(svc, db, req.coll, "delete", [st.to_doc() for st in req.deletes],
                       req.ordered, req.stmt_ids, cmd).run()


def find_and_modify(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                    ) -> dict[str, Any]:
    req = requests.parse_find_and_modify(db, cmd)
    if (settings := _config_write(svc, db, req.coll, cmd)) is not None:
        return settings
    base = forwardable(cmd)
    if "lsid" in base and req.stmt_id is None:
        base["stmtId"] = 0
    retry = "safe" if "lsid" in base and "txnNumber" in base else "refused"

    def attempt(route: Route) -> dict[str, Any]:
        if route.table is None:
            return _answer(svc.shards.call(route.primary, db, versioned(base, route,
                                                                       route.primary),
                                           retry=retry), route)
        pinned, value = exact_id(req.query)
        if pinned:
            shard = route.table.shard_for_id(value)
            return _answer(svc.shards.call(shard, db, versioned(base, route, shard),
                                           retry=retry), route)
        if req.upsert:
            raise MongoError(SHARD_KEY_NOT_FOUND, "Failed to target upsert by query :: could "
                             "not extract exact shard key", code_name="ShardKeyNotFound")
        for attempt in range(TWO_PHASE_ATTEMPTS):
            found = find_match(svc, route, db, req.coll, req.query, req.sort or None)
            if found is None:
                return {"lastErrorObject": {"n": 0, **({} if req.remove else {
                    "updatedExisting": False})}, "value": None}
            shard, doc_id = found
            cmd = dict(base)
            if req.sort:  # the first in sort order over all shards, not this shard's first
                cmd["query"] = {"$and": [dict(req.query), {"_id": doc_id}]}
            if "stmtId" in cmd:
                cmd["stmtId"] = attempt_stmt_id(int(cmd["stmtId"]), attempt)
            reply = _answer(svc.shards.call(shard, db, versioned(cmd, route, shard),
                                            retry=retry), route)
            if reply.get("value") is not None or reply.get("ok") != 1.0:
                return reply
        return {"lastErrorObject": {"n": 0}, "value": None}

    return svc.shards.routed(db, req.coll, attempt, create_db=True)


def _answer(reply: dict[str, Any], route: Route) -> dict[str, Any]:
    if is_stale(reply):
        raise StaleRouting(route.ns, reply)
    return reply

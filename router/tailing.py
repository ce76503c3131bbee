"""Tailable cursors through the router: passed through to the one shard that holds the
collection (a capped collection is never sharded, so it lives on its database's primary shard).

The router's cursor forwards each ``getMore`` (with the client's ``batchSize`` and
``maxTimeMS``) to the shard cursor and hands back the shard's ``postBatchResumeToken``. When the
shard's cursor is lost with its primary (failover: CursorNotFound, not primary, unreachable), the
router reopens it on the shard's new primary with ``$_resumeAfter`` and the last token it
returned, so the client's cursor carries on and sees no document twice: natural positions are
replicated state, the same on every member of the shard.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bson import Int64

from helogale.channel import Address
from node.commands import requests
from node.commands.context import RequestContext
from node.engine.errors import BAD_VALUE, MongoError
from router.catalog import Route
from router.cursors import raise_for
from router.services import forwardable
from router.shards import check_stale, versioned

if TYPE_CHECKING:
    from router.services import RouterServices

REOPEN_CODES = frozenset({6, 43, 91, 175, 189, 10107, 11600, 11602, 13435})
"""Shard answers after which the router reopens its shard cursor from the resume token."""
REOPEN_FOR_S = 30.0
_PAUSE_S = 0.2


def is_tailing(cmd: Mapping[str, Any]) -> bool:
    return bool(cmd.get("tailable") or cmd.get("awaitData") or "$_resumeAfter" in cmd)


class RouterTail:
    """The router side of one tailable cursor: the shard, its cursor and the last token."""

    def __init__(self, svc: RouterServices, db: str, shard: str, find_cmd: dict[str, Any],
                 reply: Mapping[str, Any], address: Address | None) -> None:
        self.svc = svc
        self.db = db
        self.shard = shard
        self.find_cmd = find_cmd
        self.address = address
        cursor = reply["cursor"]
        self.ns = str(cursor["ns"])
        self.coll = self.ns.partition(".")[2]
        self.cursor_id = int(cursor["id"])
        self.token = cursor.get("postBatchResumeToken")
        self.reopened = 0

    def _reopen(self) -> list[dict[str, Any]]:
        """Open the shard cursor again after the last token; its first batch."""
        deadline = time.monotonic() + REOPEN_FOR_S
        while True:
            reply, address = self.svc.shards.call_member(
                self.shard, self.db, {**self.find_cmd, "$_resumeAfter": self.token})
            if reply.get("ok") == 1.0:
                break
            if reply.get("code") not in REOPEN_CODES or time.monotonic() >= deadline:
                raise_for(reply, f"shard {self.shard} tailable cursor")
            time.sleep(_PAUSE_S)
        self.reopened += 1
        self.address = address
        cursor = reply["cursor"]
        self.cursor_id = int(cursor["id"])
        self.token = cursor.get("postBatchResumeToken", self.token)
        return list(cursor.get("firstBatch", []))

    def get_more(self, req: requests.GetMoreRequest, cursor: Any, ctx: RequestContext
                 ) -> dict[str, Any]:
        with cursor.lock:
            cmd: dict[str, Any] = {"getMore": Int64(self.cursor_id), "collection": self.coll}
            if req.batch_size:
                cmd["batchSize"] = req.batch_size
            if req.max_time_ms:
                cmd["maxTimeMS"] = req.max_time_ms
            reply, _ = self.svc.shards.call_member(self.shard, self.db, cmd, retry="never",
                                                   address=self.address)
            try:
                if reply.get("ok") == 1.0:
                    shard_cursor = reply["cursor"]
                    self.cursor_id = int(shard_cursor["id"])
                    self.token = shard_cursor.get("postBatchResumeToken", self.token)
                    batch = list(shard_cursor.get("nextBatch", []))
                elif reply.get("code") in REOPEN_CODES and self.token is not None:
                    batch = self._reopen()
                else:
                    raise_for(reply, f"shard {self.shard} tailable cursor")
            except MongoError:
                self.cursor_id = 0
                self.svc.cursors.close(cursor.cursor_id)
                raise
        router_id = cursor.cursor_id
        if not self.cursor_id:
            self.svc.cursors.close(router_id)
            router_id = 0
        return {"cursor": {"nextBatch": batch, "id": Int64(router_id), "ns": self.ns,
                           "postBatchResumeToken": self.token}}

    def close(self) -> None:
        if self.cursor_id:
            cid, self.cursor_id = self.cursor_id, 0
            try:
                self.svc.shards.call_member(self.shard, self.db,
                                            {"killCursors": self.coll, "cursors": [Int64(cid)]},
                                            retry="never", address=self.address)
            except Exception:  # the shard reaps it after its idle timeout
                return


def find(svc: RouterServices, db: str, req: requests.FindRequest, cmd: Mapping[str, Any],
         ctx: RequestContext) -> dict[str, Any]:
    """A tailable (or resuming) ``find``: to the collection's shard, as a router cursor."""

    def attempt(route: Route) -> dict[str, Any]:
        if route.table is not None:
            raise MongoError(BAD_VALUE, "error processing query: tailable cursor requested on "
                             f"non capped collection {req.ns}")
        shard_cmd = versioned(forwardable(cmd), route, route.primary)
        reply, address = svc.shards.call_member(route.primary, db, shard_cmd)
        check_stale(route.ns, [reply])
        raise_for(reply, "shard")
        tail = RouterTail(svc, db, route.primary, shard_cmd, reply, address)
        out = dict(reply["cursor"])
        out.setdefault("ns", req.ns)
        if tail.cursor_id:
            out["id"] = Int64(svc.cursors.open_tail(req.ns, tail, ctx.connection_id, ctx.auth))
        return {"cursor": out}

    return svc.shards.routed(db, req.coll, attempt,
                             missing=lambda: MongoError(
                                 26, f"database {db} not found",
                                 code_name="NamespaceNotFound").to_reply())

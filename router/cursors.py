"""Router cursors: a client's cursor over the cursors its query opened on shards.

:class:`ShardStream` is one shard's cursor: its first batch, then ``getMore``s sent to the
member that holds it, as the merge asks for more. :class:`RouterCursor` is the merged stream
the router's :class:`~node.commands.cursors.CursorRegistry` pages through (the registry the
node uses, so router cursors batch, expire and die the same way); closing it (exhausted,
``killCursors``, idle timeout) kills what is still open on the shards. A shard whose primary
changed under an open cursor answers CursorNotFound: the client's cursor fails with that
error, and nothing it returned is returned again.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from helogale.channel import Address
from helogale.read_preferences import ReadPreference, ServerMode
from node.engine.errors import MongoError
from router.shards import Shards

log = logging.getLogger("helogale.router.cursors")

GET_MORE_BATCH = 1000


def raise_for(reply: dict[str, Any], what: str) -> None:
    if reply.get("ok") != 1.0:
        raise MongoError(int(reply.get("code", 1)), f"{what}: {reply.get('errmsg')}",
                         code_name=reply.get("codeName"))


Runner = Callable[[str, dict[str, Any], Address | None], tuple[dict[str, Any], Address | None]]
"""``run(db, cmd, address) -> (reply, address)``: a command on the member holding a cursor."""


def shard_runner(shards: Shards, shard: str,
                 read_preference: ServerMode = ReadPreference.PRIMARY) -> Runner:
    def run(db: str, cmd: dict[str, Any], address: Address | None
            ) -> tuple[dict[str, Any], Address | None]:
        return shards.call_member(shard, db, cmd, retry="never",
                                  read_preference=read_preference, address=address)
    return run


class ShardStream:
    """The documents of one shard (or config server) cursor, from its first reply on."""

    def __init__(self, shard: str, run: Runner, db: str, first: dict[str, Any],
                 address: Address | None, *, batch_size: int = GET_MORE_BATCH) -> None:
        cursor = first["cursor"]
        self.shard = shard
        self.run = run
        self.db = db
        self.coll = str(cursor["ns"]).partition(".")[2]
        self.cursor_id = int(cursor["id"])
        self.buffer: list[dict[str, Any]] = list(cursor.get("firstBatch", []))
        self.address = address
        self.batch_size = batch_size
        self._pos = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            while self._pos < len(self.buffer):
                doc = self.buffer[self._pos]
                self._pos += 1
                yield doc
            if not self.cursor_id:
                return
            self._get_more()

    def _get_more(self) -> None:
        reply, _ = self.run(self.db, {"getMore": self.cursor_id, "collection": self.coll,
                                      "batchSize": self.batch_size}, self.address)
        if reply.get("ok") != 1.0:
            self.cursor_id = 0
            raise_for(reply, f"shard {self.shard} cursor")
        cursor = reply["cursor"]
        self.cursor_id = int(cursor["id"])
        self.buffer = list(cursor.get("nextBatch", []))
        self._pos = 0

    def close(self) -> None:
        if self.cursor_id:
            cid, self.cursor_id = self.cursor_id, 0
            try:
                self.run(self.db, {"killCursors": self.coll, "cursors": [cid]}, self.address)
            except Exception:  # the shard reaps it after its idle timeout
                log.debug("killCursors on shard %s failed", self.shard, exc_info=True)


class RouterCursor:
    """The merged documents of several shard streams (``merge(streams)`` orders them), after
    ``skip`` and at most ``limit`` (0: all) of them."""

    def __init__(self, streams: Sequence[ShardStream],
                 merge: Callable[[Sequence[ShardStream]], Iterator[dict[str, Any]]],
                 skip: int = 0, limit: int = 0) -> None:
        self.streams = list(streams)
        self._it = itertools.islice(merge(self.streams), skip, skip + limit if limit else None)
        self._closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._closed:
            raise StopIteration
        try:
            return next(self._it)
        except StopIteration:
            self.close()
            raise
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for stream in self.streams:
                stream.close()

"""What the command handlers need from the replica-set member, and write-concern parsing.

The handlers never touch Raft: they ask the :class:`Member` whether this node may write or read,
hand it a fully resolved write (an *entry*, a plain dict the state machine applies
deterministically) with a :class:`WriteConcern`, and ask it for topology and status.
``node.server.replica.Replica`` is the replicated member; ``node.server.standalone`` is the
single in-process member used by tests and embedded use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from node.commands.context import RequestContext
from node.commands.generic_args import parse_write_concern_fields
from node.commands.write_modes import TagRule, tag_rule
from node.engine.errors import MongoError

UNSATISFIABLE_WRITE_CONCERN = 100
WRITE_CONCERN_FAILED = 64


@dataclass(frozen=True)
class WriteConcern:
    """``w`` (int, ``"majority"``, a mode name or a tag set; ``rule`` is the resolved tag
    requirement of the last two), ``wtimeout`` in ms (0: wait forever), ``j``, and the
    command's ``maxTimeMS``, which bounds the same wait: when it passes first, a write not yet
    applied fails with MaxTimeMSExpired (50), one applied but short of ``w`` copies gets a
    writeConcernError with that code. Neither undoes the write."""

    w: int | str | dict[str, int] = 1
    wtimeout_ms: int = 0
    j: bool | None = None
    max_time_ms: int = 0
    rule: TagRule | None = None

    @property
    def acknowledged(self) -> bool:
        return self.w != 0

    @property
    def settles_on_apply(self) -> bool:
        """Satisfied once the entry has applied here (w 0, 1 or majority; no wtimeout), with
        no further wait."""
        return (not self.wtimeout_ms and not self.max_time_ms and self.rule is None
                and not (isinstance(self.w, int) and self.w > 1))

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"w": self.w, "wtimeout": self.wtimeout_ms}
        if self.j is not None:
            doc["j"] = self.j
        return doc


def parse_write_concern(cmd: Mapping[str, Any], set_size: int, max_time_ms: int = 0,
                        config: Callable[[], Mapping[str, Any]] | None = None) -> WriteConcern:
    """The command's ``writeConcern`` (default ``{w: 1}``), checked against the set's size;
    ``max_time_ms`` is the command's (already parsed) ``maxTimeMS``; ``config`` gives the
    replica-set configuration a mode name or tag set is resolved against (only read for
    those; none, or one that raises, names no modes and tags no member)."""
    fields = parse_write_concern_fields(cmd.get("writeConcern"))
    w: int | str | dict[str, int] = 1 if fields is None or fields.w is None else fields.w
    rule = None
    if isinstance(w, dict) or (isinstance(w, str) and w != "majority"):
        rule = tag_rule(w, _config_or_empty(config))
    wtimeout = fields.wtimeout_ms if fields is not None else 0
    if isinstance(w, int) and w <= 1:
        # MongoDB ignores wtimeout for w 0 and 1: the write itself is the whole wait. Here w: 1
        # still waits for the entry to commit and apply, and a wtimeout passing first would
        # answer n: 0 with a writeConcernError for a write that then applies.
        wtimeout = 0
    j = fields.j if fields is not None else None
    if isinstance(w, int) and w > set_size:
        raise MongoError(
            UNSATISFIABLE_WRITE_CONCERN,
            f"Not enough data-bearing nodes: write concern w={w} is larger than the replica "
            f"set's {set_size} member(s)",
            code_name="UnsatisfiableWriteConcern",
        )
    return WriteConcern(w=w, wtimeout_ms=max(0, wtimeout), j=j, max_time_ms=max_time_ms,
                        rule=rule)


def _config_or_empty(config: Callable[[], Mapping[str, Any]] | None) -> Mapping[str, Any]:
    if config is None:
        return {}
    try:
        return config()
    except MongoError:  # not a replica set: no modes, no tags
        return {}


def write_concern_error(errmsg: str, wc: WriteConcern, *, max_time: bool = False
                        ) -> dict[str, Any]:
    """MongoDB's ``writeConcernError`` subdocument for a wait that timed out: ``wtimeout``
    (code 64), or the command's ``maxTimeMS`` (code 50)."""
    if max_time:
        return {"code": 50, "codeName": "MaxTimeMSExpired",
                "errmsg": "operation exceeded time limit",
                "errInfo": {"writeConcern": wc.to_doc()}}
    return {
        "code": WRITE_CONCERN_FAILED,
        "codeName": "WriteConcernFailed",
        "errmsg": errmsg,
        "errInfo": {"wtimeout": True, "writeConcern": wc.to_doc()},
    }


class Member(Protocol):
    """The replica-set member as the command handlers see it."""

    def set_size(self) -> int:
        """Number of voting members (bounds ``w``)."""
        ...

    def require_writable(self) -> None:
        """Raise NotWritablePrimary (10107, with the primary's address) unless primary."""
        ...

    def check_readable(self, cmd: Mapping[str, Any], ctx: RequestContext) -> None:
        """Enforce read preference / secondaryOk and, for ``readConcern: linearizable``,
        wait until this node has applied everything committed when the read began."""
        ...

    def submit(
        self, entry: dict[str, Any], wc: WriteConcern
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Replicate and apply ``entry``; returns (result of applying it, writeConcernError)."""
        ...

    def submit_async(
        self, entry: dict[str, Any], wc: WriteConcern
    ) -> Future[tuple[dict[str, Any], dict[str, Any] | None]]:
        """:meth:`submit` without blocking: the future completes with what ``submit`` would
        return, or fails with the MongoError it would raise (for a write concern that settles
        on apply, in the thread that applies the entry). Raises at once what fails before
        proposing (not primary)."""
        ...

    def cluster_time(self) -> Any:
        """The cluster time (a bson Timestamp) of the last entry applied here."""
        ...

    def applied_index(self) -> int:
        """The last log index applied here."""
        ...

    def log_index(self) -> int:
        """The highest log index this member knows exists (applied or not)."""
        ...

    def follower_grace_s(self) -> float:
        """How long a cluster time beyond :meth:`log_index` may take to arrive here (0 when
        this member holds every committed entry: a primary, a standalone member)."""
        ...

    def wait_for(self, pred: Callable[[], bool], timeout: float) -> bool:
        """Block until ``pred()`` holds (re-checked as entries arrive and apply) or the
        timeout; whether it holds."""
        ...

    def hello(self, ctx: RequestContext) -> dict[str, Any]:
        """Topology fields of ``hello`` for a client on ``ctx.transport``."""
        ...

    def repl_set_get_status(self) -> dict[str, Any]: ...

    def repl_set_get_config(self) -> dict[str, Any]: ...

    def step_down(self, step_down_secs: float, catch_up_secs: float) -> None: ...

    def reconfig(self, config: Mapping[str, Any], force: bool) -> None: ...

"""The ``migrate`` nemesis: moves chunks continuously during a sharded chaos run, beside the
scheduled faults (which may kill, pause or cut off the donor, the recipient or the config
primary in the middle of a move).

Each step picks a random chunk of the collection and moves it to another shard through a
router (``moveChunk`` with its exact bounds); about one step in seven splits a chunk at one
of the workload's split points instead, so chunks keep changing shape as well as place.
Every attempt is recorded as a :class:`MigrationEvent`. A move whose reply was lost (a
router, the config primary or the donor died) may still have committed: :meth:`Migrator.settle`
decides it afterwards from where the chunk ended up.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from helogale import MongoClient
from helogale.errors import PyMongoError
from node.engine.values import compare

SPLIT_SHARE = 0.15


@dataclass
class MigrationEvent:
    kind: str  # "move" or "split"
    start: float
    end: float
    lo: Any
    hi: Any
    source: str  # the donor (for a split: the owner)
    target: str  # the recipient (for a split: the split point, as text)
    outcome: str  # "ok", "committed" (the reply was lost, the chunk moved), "failed", "unknown"
    error: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": round(self.start, 3), "end": round(self.end, 3),
                "min": repr(self.lo), "max": repr(self.hi), "from": self.source,
                "to": self.target, "outcome": self.outcome, "error": self.error}


class Migrator:
    """Moves and splits chunks of ``ns`` until ``stop`` is set (see module docstring)."""

    def __init__(self, uri: str, ns: str, split_candidates: list[Any], seed: int,
                 clock_origin: float, *, timeout_s: float = 60.0,
                 pause_s: tuple[float, float] = (0.2, 0.8)) -> None:
        self.ns = ns
        self.db, _, self.coll = ns.partition(".")
        self.candidates = list(split_candidates)
        self.rng = random.Random(seed * 7919 + 13)
        self.t0 = clock_origin
        self.pause_s = pause_s
        ms = int(timeout_s * 1000)
        self.client: MongoClient[dict[str, Any]] = MongoClient(
            uri, serverSelectionTimeoutMS=ms, socketTimeoutMS=ms * 3)
        self.events: list[MigrationEvent] = []
        self._lock = threading.Lock()

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def chunks(self) -> list[dict[str, Any]]:
        return list(self.client["config"]["chunks"].find({"ns": self.ns}))

    def shards(self) -> list[str]:
        return sorted(str(d["_id"]) for d in self.client["config"]["shards"].find({}))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(PyMongoError):  # no chunks read: a router or config down
                self.step()
            stop.wait(self.rng.uniform(*self.pause_s))

    def step(self) -> MigrationEvent | None:
        chunks = self.chunks()
        shards = self.shards()
        if not chunks or len(shards) < 2:
            return None
        chunk = self.rng.choice(chunks)
        lo, hi, owner = chunk["min"]["_id"], chunk["max"]["_id"], str(chunk["shard"])
        if self.rng.random() < SPLIT_SHARE:
            inside = [p for p in self.candidates
                      if compare(lo, p) < 0 and compare(p, hi) < 0]
            if inside:
                point = self.rng.choice(inside)
                return self._attempt("split", lo, hi, owner, repr(point), {
                    "split": self.ns, "middle": {"_id": point}})
        to = self.rng.choice([s for s in shards if s != owner])
        return self._attempt("move", lo, hi, owner, to, {
            "moveChunk": self.ns, "bounds": [{"_id": lo}, {"_id": hi}], "to": to})

    def _attempt(self, kind: str, lo: Any, hi: Any, source: str, target: str,
                 cmd: dict[str, Any]) -> MigrationEvent:
        start = self._now()
        outcome, error = "ok", None
        try:
            reply = self.client.admin.command(cmd, check=False)
            if reply.get("ok") != 1.0:
                outcome = "failed" if kind == "split" else "unknown"
                error = f"{reply.get('codeName')}: {reply.get('errmsg')}"
        except PyMongoError as exc:
            outcome = "failed" if kind == "split" else "unknown"
            error = f"{type(exc).__name__}: {exc}"
        event = MigrationEvent(kind, start, self._now(), lo, hi, source, target, outcome, error)
        with self._lock:
            self.events.append(event)
        return event

    def settle(self) -> None:
        """Decide the moves that ended in an error: ``committed`` when the chunk is now on
        the recipient and no later move of it succeeded (so it can only have got there by
        this one), else ``failed``."""
        try:
            final = {repr(c["min"]["_id"]): str(c["shard"]) for c in self.chunks()}
        except PyMongoError:
            return
        for i, e in enumerate(self.events):
            if e.outcome != "unknown":
                continue
            later = any(o.kind == "move" and o.outcome == "ok" and compare(o.lo, e.lo) == 0
                        for o in self.events[i + 1:])
            if not later:
                e.outcome = "committed" if final.get(repr(e.lo)) == e.target else "failed"

    def counts(self) -> dict[str, int]:
        """Moves by outcome and successful splits: ``moved`` counts acknowledged and
        lost-reply-but-committed moves."""
        by = Counter((e.kind, e.outcome) for e in self.events)
        return {"moved": by[("move", "ok")] + by[("move", "committed")],
                "moved_reply_lost": by[("move", "committed")],
                "move_failed": by[("move", "failed")], "move_unknown": by[("move", "unknown")],
                "split": by[("split", "ok")], "split_failed": by[("split", "failed")]}

    def close(self) -> None:
        self.client.close()

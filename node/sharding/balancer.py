"""The balancer: on the config servers' primary, rounds that split chunks grown past the
chunk size and move chunks from the shard holding the most data to the one holding the least.

A round, for every sharded collection:

1. asks each shard owning chunks how many documents and bytes each chunk holds
   (``_shardsvrChunkSizes``);
2. splits every chunk past the chunk size (``config.settings`` ``{_id: "chunksize", value:
   MiB, maxDocs}``, default 128 MiB) at the points its owner proposes (``_shardsvrSplitVector``,
   halves of the size); a chunk with one ``_id`` value that is too big is marked ``jumbo`` and
   left where it is;
3. takes care of the ObjectId hot spot: monotonically growing ``_id``s all land in the chunk
   ending at ``MaxKey``. Once that chunk holds an eighth of a chunk size and its shard is not
   the one with the least data, it is split at its highest ``_id`` and the new top chunk (that
   one document) moves, at almost no cost, to the shard with the least data, so new inserts
   go there;
4. moves chunks off draining shards (``removeShard``), then from the shard with the most data
   to the one with the least while the difference is more than three chunk sizes (MongoDB's
   rule), one migration at a time per shard.

A round that moved or split something is followed by the next one after
:data:`BUSY_INTERVAL_S` (1 s, as MongoDB's balancer does) rather than the full interval
(``--balancer-interval-secs``). It resumes on a new config primary by itself (the thread runs on every config member and
works only while that member is primary); ``balancerStop``/``balancerStart`` set
``config.settings`` ``{_id: "balancer", stopped}``, and an ``activeWindow: {start: "HH:MM",
stop: "HH:MM"}`` (UTC) limits when rounds run.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bson import MaxKey

from node.engine.errors import MongoError
from node.ops.counters import COUNTERS

log = logging.getLogger("helogale.balancer")

DEFAULT_CHUNK_MB = 128
MIB = 1024 * 1024
HOT_TOP_FRACTION = 8
"""The top chunk is split off for another shard once it holds this fraction of a chunk."""
IMBALANCE_CHUNKS = 3
"""Balanced while the largest and smallest shard differ by less than this many chunk sizes."""
BUSY_INTERVAL_S = 1.0
"""Seconds to the next round after one that moved or split something (MongoDB's short
interval), instead of the full interval."""


class Balancer:
    """The balancer of one config member (see module docstring)."""

    def __init__(self, config: Any, is_primary: Callable[[], bool],
                 interval_s: float = 10.0) -> None:
        self.config = config
        self.is_primary = is_primary
        self.interval_s = interval_s
        self.rounds = 0
        self.chunks_moved = 0
        self.splits = 0
        self.in_round = False
        self.current: dict[str, Any] | None = None
        """The migration this balancer is running now (namespace, bounds, shards)."""
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="balancer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    # --- settings --------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return self.config._one("settings", {"_id": "balancer"}) or {}

    def chunk_limits(self) -> tuple[int, int]:
        """(bytes, documents) past which a chunk splits (documents 0: no count limit)."""
        doc = self.config._one("settings", {"_id": "chunksize"}) or {}
        mb = doc.get("value") or DEFAULT_CHUNK_MB
        return max(1, int(float(mb) * MIB)), int(doc.get("maxDocs") or 0)

    def enabled(self, now: _dt.datetime | None = None) -> bool:
        doc = self.settings()
        if doc.get("stopped") or doc.get("mode") == "off":
            return False
        window = doc.get("activeWindow")
        if isinstance(window, Mapping) and window.get("start") and window.get("stop"):
            return in_window(now or _dt.datetime.now(_dt.UTC), str(window["start"]),
                             str(window["stop"]))
        return True

    def status(self) -> dict[str, Any]:
        """``balancerStatus``: MongoDB's fields and this balancer's counters."""
        doc = self.settings()
        mode = "off" if doc.get("stopped") or doc.get("mode") == "off" else "full"
        out: dict[str, Any] = {"mode": mode, "inBalancerRound": self.in_round,
                               "numBalancerRounds": self.rounds,
                               "chunksMoved": self.chunks_moved, "splits": self.splits}
        if self.current is not None:
            out["migration"] = dict(self.current)
            donor = self.current.get("from")
            if donor:
                try:
                    shard = self.config.shard(donor)
                    live = self.config.remotes.get(shard["grpcHost"]).command(
                        "admin", {"_shardsvrMigrationStatus": 1})
                    out["migration"].update({k: v for k, v in live.items()
                                             if k in ("phase", "docsCloned", "modsSent")})
                except Exception:  # the donor is busy or down: the counters wait
                    pass
        if self.last_error:
            out["lastError"] = self.last_error
        return out

    # --- the loop --------------------------------------------------------------------------
    def _loop(self) -> None:
        wait = self.interval_s
        while not self._stop.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            wait = self.interval_s
            if self._stop.is_set() or not self.is_primary():
                continue
            before = self.chunks_moved + self.splits
            try:
                if self.enabled():
                    self.run_round()
            except Exception as exc:  # a shard or migration failed: the next round retries
                self.last_error = str(exc)
                log.info("balancer round stopped: %s", exc)
            if self.chunks_moved + self.splits != before:  # more to do, likely: soon again
                wait = min(self.interval_s, BUSY_INTERVAL_S)

    def run_round(self) -> None:
        """One round over every sharded collection (see module docstring)."""
        self.in_round = True
        self.rounds += 1
        COUNTERS.inc("balancer_rounds")
        try:
            max_bytes, max_docs = self.chunk_limits()
            busy: set[str] = set()  # shards already in a migration this round
            for coll in self.config._find("collections", {}):
                if coll.get("dropped") or self._stop.is_set() or not self.enabled():
                    continue
                try:  # one collection's trouble (a shard down) does not stop the others
                    self._collection(str(coll["_id"]), max_bytes, max_docs, busy)
                except Exception as exc:
                    self.last_error = f"{coll['_id']}: {exc}"
                    log.info("balancer skipped a collection this round", extra={"fields": {
                        "ns": coll["_id"], "error": str(exc)}})
        finally:
            self.in_round = False

    # --- one collection --------------------------------------------------------------------
    def _sizes(self, ns: str) -> dict[str, dict[Any, dict[str, Any]]]:
        """Per shard, its chunks' sizes by lower bound (as the shard measured them), only for
        the chunks whose bounds match the config servers' (the authority).

        A split is committed on the config servers only, so the owning shard may still hold
        the old, whole chunk in its cache and measure the whole range under its lower bound:
        a shard whose chunk list differs from the config servers' is told to refresh
        (``_shardsvrRefresh``) and measured again; a chunk still measured under other bounds
        (a migration in flight) is left out of this round."""
        by_shard: dict[str, set[tuple[Any, Any]]] = {}
        for c in self.config.chunks(ns):
            by_shard.setdefault(c["shard"], set()).add((_key(c["min"]["_id"]),
                                                        _key(c["max"]["_id"])))
        out: dict[str, dict[Any, dict[str, Any]]] = {}
        for name in sorted(by_shard):
            remote = self.config.remotes.get(self.config.shard(name)["grpcHost"])
            measured = self._measure(remote, ns, name)
            if {(_key(c["min"]), _key(c["max"])) for c in measured} != by_shard[name]:
                refreshed = remote.command("admin", {"_shardsvrRefresh": ns})
                if refreshed.get("ok") == 1.0:
                    measured = self._measure(remote, ns, name)
            out[name] = {_key(c["min"]): c for c in measured
                         if (_key(c["min"]), _key(c["max"])) in by_shard[name]}
        return out

    @staticmethod
    def _measure(remote: Any, ns: str, name: str) -> list[dict[str, Any]]:
        reply = remote.command("admin", {"_shardsvrChunkSizes": ns})
        if reply.get("ok") != 1.0:
            raise MongoError(int(reply.get("code", 1)), f"chunk sizes of {ns} on {name}: "
                             f"{reply.get('errmsg')}")
        return list(reply["chunks"])

    def _collection(self, ns: str, max_bytes: int, max_docs: int, busy: set[str]) -> None:
        sizes = self._sizes(ns)
        if self._split_big(ns, sizes, max_bytes, max_docs):
            sizes = self._sizes(ns)
        shards = {s["_id"]: s for s in self.config._find("shards", {})}
        targets = [n for n, s in shards.items() if not s.get("draining")]
        if not targets:
            return
        load = {n: 0 for n in targets}
        for name, chunks in sizes.items():
            load[name] = load.get(name, 0) + sum(int(c["bytes"]) for c in chunks.values())
        self._hot_top_chunk(ns, sizes, load, targets, busy, max_bytes)
        for chunk in self.config.chunks(ns):  # draining shards give everything away
            if chunk["shard"] in shards and shards[chunk["shard"]].get("draining") \
                    and chunk["shard"] not in busy and not chunk.get("jumbo"):
                free = [n for n in targets if n not in busy]
                if not free:
                    break
                to = min(free, key=lambda n: (load.get(n, 0), n))
                self._move(ns, chunk, to)
                busy.update((chunk["shard"], to))
        while True:
            ranked = sorted(targets, key=lambda n: (load.get(n, 0), n))
            low, high = ranked[0], ranked[-1]
            if load[high] - load[low] <= IMBALANCE_CHUNKS * max_bytes or high in busy \
                    or low in busy:
                return
            chunk = self._pick(ns, high, sizes.get(high, {}), (load[high] - load[low]) // 2)
            if chunk is None:
                return
            moved = int(sizes.get(high, {}).get(_key(chunk["min"]["_id"]), {}).get("bytes", 0))
            self._move(ns, chunk, low)
            load[high] -= moved
            load[low] += moved
            busy.update((high, low))

    def _split_big(self, ns: str, sizes: Mapping[str, Mapping[Any, Mapping[str, Any]]],
                   max_bytes: int, max_docs: int) -> bool:
        split_any = False
        for chunk in self.config.chunks(ns):
            measured = sizes.get(chunk["shard"], {}).get(_key(chunk["min"]["_id"]))
            if measured is None or chunk.get("jumbo"):
                continue
            if int(measured["bytes"]) <= max_bytes and (
                    not max_docs or int(measured["count"]) <= max_docs):
                continue
            lo, hi = chunk["min"]["_id"], chunk["max"]["_id"]
            shard = self.config.shard(chunk["shard"])
            reply = self.config.remotes.get(shard["grpcHost"]).command("admin", {
                "_shardsvrSplitVector": ns, "min": lo, "max": hi, "maxChunkBytes": max_bytes,
                "maxChunkDocs": max_docs})
            points = list(reply.get("splitKeys") or []) if reply.get("ok") == 1.0 else []
            if not points:
                self.config.mark_jumbo(ns, chunk)
                continue
            self.config.split_chunk(ns, lo, hi, points)
            self.splits += 1
            split_any = True
        return split_any

    def _hot_top_chunk(self, ns: str, sizes: Mapping[str, Mapping[Any, Mapping[str, Any]]],
                       load: dict[str, int], targets: list[str], busy: set[str],
                       max_bytes: int) -> None:
        """Split off an empty top chunk for the shard with the least data, once the top chunk
        holds an eighth of a chunk (so growing ``_id``s spread without many tiny chunks)."""
        chunks = self.config.chunks(ns)
        top = chunks[-1]
        if not isinstance(top["max"]["_id"], MaxKey) or len(targets) < 2 or top.get("jumbo"):
            return
        measured = sizes.get(top["shard"], {}).get(_key(top["min"]["_id"]))
        least = min(targets, key=lambda n: (load.get(n, 0), n))
        if measured is None or int(measured["bytes"]) < max_bytes // HOT_TOP_FRACTION \
                or int(measured["count"]) < 2 or top["shard"] == least \
                or top["shard"] in busy or least in busy:
            return
        shard = self.config.shard(top["shard"])
        reply = self.config.remotes.get(shard["grpcHost"]).command("admin", {
            "_shardsvrSplitVector": ns, "min": top["min"]["_id"], "max": MaxKey(),
            "top": True})
        if reply.get("ok") != 1.0 or not reply.get("splitKeys"):
            return
        (point,) = reply["splitKeys"]
        self.config.split_chunk(ns, top["min"]["_id"], MaxKey(), [point])
        self.splits += 1
        new_top = self.config.chunks(ns)[-1]
        self._move(ns, new_top, least)
        busy.update((top["shard"], least))

    def _pick(self, ns: str, shard: str, sizes: Mapping[Any, Mapping[str, Any]],
              most: int) -> dict[str, Any] | None:
        """A chunk of ``shard`` to move: the largest one holding at most ``most`` bytes (so
        the move does not overshoot), else its smallest non-empty one."""
        candidates = [c for c in self.config.chunks(ns)
                      if c["shard"] == shard and not c.get("jumbo")]
        measured = [(int(sizes.get(_key(c["min"]["_id"]), {}).get("bytes", 0)), c)
                    for c in candidates]
        fitting = [m for m in measured if 0 < m[0] <= most]
        if fitting:
            return max(fitting, key=lambda m: m[0])[1]
        nonempty = [m for m in measured if m[0] > 0]
        return min(nonempty, key=lambda m: m[0])[1] if nonempty else None

    def _move(self, ns: str, chunk: Mapping[str, Any], to: str) -> None:
        lo, hi = chunk["min"]["_id"], chunk["max"]["_id"]
        self.current = {"ns": ns, "min": lo, "max": hi, "from": chunk["shard"], "to": to,
                        "started": _dt.datetime.now(_dt.UTC)}
        started = time.monotonic()
        try:
            self.config.move_chunk(ns, lo, hi, to, False)
        finally:
            self.current = None
        self.chunks_moved += 1
        COUNTERS.inc("balancer_moves")
        log.info("balancer moved a chunk", extra={"fields": {
            "ns": ns, "from": chunk["shard"], "to": to,
            "ms": int((time.monotonic() - started) * 1000)}})


def _key(value: Any) -> Any:
    """A hashable key for a chunk bound (its memcomparable bytes)."""
    from node.sharding.chunks import key_bytes

    return key_bytes(value)


def in_window(now: _dt.datetime, start: str, stop: str) -> bool:
    """Whether ``now`` (UTC) is inside the daily window ``start``-``stop`` (``HH:MM``; a
    window may run past midnight)."""
    def minutes(text: str) -> int:
        h, _, m = text.partition(":")
        return int(h) * 60 + int(m or 0)

    t, a, b = now.hour * 60 + now.minute, minutes(start), minutes(stop)
    return a <= t < b if a <= b else t >= a or t < b

"""Counters of the commands a dispatcher served: by name and outcome, latency histograms,
MongoDB's ``opcounters``, ``opLatencies`` and ``top`` (time per namespace).

Plain integers under one lock: ``serverStatus`` and ``top`` read them, and the Prometheus
endpoint (:mod:`node.ops.metrics`) turns them into metric families at scrape time.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping
from typing import Any

from bson import Int64

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
           0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the latency histograms (+Inf implied)."""

OPCOUNTER_OF = {"insert": "insert", "update": "update", "delete": "delete", "find": "query",
                "getMore": "getmore", "findAndModify": "command", "aggregate": "command"}
"""Command name -> MongoDB's opcounters field (everything else is ``command``)."""
_STATEMENTS = {"insert": "documents", "update": "updates", "delete": "deletes"}
READS = frozenset({"find", "getMore", "count", "distinct", "aggregate"})
WRITES = frozenset({"insert", "update", "delete", "findAndModify", "findandmodify"})
_TOP_FIELD = {"find": "queries", "getMore": "getmore", "insert": "insert", "update": "update",
              "delete": "remove"}


MAX_TOP_NAMESPACES = 10_000
"""Namespaces ``top`` keeps rows for: commands name any namespace they like (refused ones
and reads of missing collections included), so the table is bounded; past it, new namespaces
are not counted."""


class Histogram:
    """Cumulative-on-export bucket counts plus sum and count."""

    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        acc = 0
        for bound, n in zip((*map(str, BUCKETS), "+Inf"), self.counts, strict=True):
            acc += n
            out.append((bound, acc))
        return out


class CommandStats:
    """Everything counted about served commands."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.opcounters: dict[str, int] = dict.fromkeys(
            ("insert", "query", "update", "delete", "getmore", "command"), 0)
        self.outcomes: dict[tuple[str, str], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.op_latencies: dict[str, list[int]] = {k: [0, 0] for k in
                                                   ("reads", "writes", "commands")}
        """class -> [total micros, ops]"""
        self.top: dict[str, dict[str, list[int]]] = {}
        self.slow_ops = 0

    def record(self, name: str, command: Mapping[str, Any], ns: str, outcome: str,
               seconds: float) -> None:
        micros = int(seconds * 1e6)
        stmts = command.get(_STATEMENTS[name]) if name in _STATEMENTS else None
        n = len(stmts) if isinstance(stmts, list) and outcome == "ok" else 1
        cls = "reads" if name in READS else "writes" if name in WRITES else "commands"
        with self._lock:
            self.opcounters[OPCOUNTER_OF.get(name, "command")] += n
            key = (name, outcome)
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            hist = self.latency.get(name)
            if hist is None:
                hist = self.latency[name] = Histogram()
            hist.observe(seconds)
            lat = self.op_latencies[cls]
            lat[0] += micros
            lat[1] += 1
            row = self.top.get(ns) if ns else None
            if row is None and ns and "\x00" not in ns and len(self.top) < MAX_TOP_NAMESPACES:
                row = self.top[ns] = {}  # (a NUL cannot be a BSON key: top could not answer)
            if row is not None:
                for field in ("total", "readLock" if cls == "reads" else "writeLock"
                              if cls == "writes" else "commands", _TOP_FIELD.get(name)):
                    if field is None:
                        continue
                    cell = row.get(field)
                    if cell is None:
                        cell = row[field] = [0, 0]
                    cell[0] += micros
                    cell[1] += 1

    def opcounters_doc(self) -> dict[str, Any]:
        with self._lock:
            return {k: Int64(v) for k, v in self.opcounters.items()}

    def op_latencies_doc(self) -> dict[str, Any]:
        with self._lock:
            return {k: {"latency": Int64(v[0]), "ops": Int64(v[1])}
                    for k, v in self.op_latencies.items()}

    def top_doc(self) -> dict[str, Any]:
        with self._lock:
            return {ns: {field: {"time": Int64(c[0]), "count": Int64(c[1])}
                         for field, c in row.items()}
                    for ns, row in sorted(self.top.items())}

    def snapshot(self) -> tuple[dict[tuple[str, str], int], dict[str, Histogram]]:
        """Copies of the outcome counts and histograms (for the metrics endpoint)."""
        with self._lock:
            hists = {}
            for name, h in self.latency.items():
                c = Histogram()
                c.counts, c.count, c.sum = list(h.counts), h.count, h.sum
                hists[name] = c
            return dict(self.outcomes), hists

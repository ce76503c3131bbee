"""Set, counter and list-append checkers.

* **set** — unique inserts, then one final read of everything. Every acknowledged insert must be
  in the final read (else *lost*); nothing may appear twice (*duplicated*) or appear without
  having been attempted (*unexpected*); an insert that certainly failed must not appear.
* **counter** — increments by positive amounts and reads. Every read, and the final value, must
  lie between the acknowledged increments completed before it started and all increments
  (acknowledged or unknown) started before it completed — never more (a double-applied retry)
  and never less (a lost increment).
* **list-append** — appends of unique values to lists and reads of whole lists. Every read of
  a key must be a prefix of the final read of that key; every acknowledged append must be in
  the final read exactly once; an append acknowledged before another was invoked must come
  first.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos.history import Operation


@dataclass
class Anomaly:
    kind: str  # "lost", "duplicated", "unexpected", "failed-present", "counter-bounds", ...
    key: Any
    detail: str
    ops: list[Operation] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "detail": self.detail,
            "ops": [
                {"process": o.process, "f": o.f, "value": o.value, "type": o.type,
                 "start": round(o.start, 6), "end": None if math.isinf(o.end) else round(o.end, 6)}
                for o in self.ops
            ],
        }


@dataclass
class SetResult:
    anomalies: list[Anomaly]
    acknowledged: int
    lost: int
    duplicated: int


def check_set(operations: Iterable[Operation], final: Iterable[Any]) -> SetResult:
    """Check unique ``add`` operations against the final read of the set."""
    adds = [op for op in operations if op.f == "add"]
    seen = Counter(final)
    by_value = {op.value: op for op in adds}
    anomalies: list[Anomaly] = []
    acknowledged = [op for op in adds if op.type == "ok"]
    lost = [op for op in acknowledged if seen[op.value] == 0]
    for op in lost:
        anomalies.append(Anomaly("lost", op.value, "acknowledged insert missing from the final read", [op]))
    duplicated = [v for v, n in seen.items() if n > 1]
    for v in duplicated:
        ops = [by_value[v]] if v in by_value else []
        anomalies.append(Anomaly("duplicated", v, f"present {seen[v]} times in the final read", ops))
    for v in seen:
        op = by_value.get(v)
        if op is None:
            anomalies.append(Anomaly("unexpected", v, "present but never inserted"))
        elif op.type == "fail":
            anomalies.append(Anomaly("failed-present", v, "insert reported failed but is present", [op]))
    return SetResult(anomalies, len(acknowledged), len(lost), len(duplicated))


def check_counter(operations: Iterable[Operation], final: int | None) -> list[Anomaly]:
    """Check ``incr`` (value = amount) and ``read`` operations, plus the final value.

    Bounds come from prefix sums over increments sorted by completion (acknowledged ones) and
    by invocation (all), so a history of n operations is checked in O(n log n).
    """
    ops = list(operations)
    incrs = [op for op in ops if op.f == "incr" and op.type in ("ok", "info")]
    acked = sorted((op for op in incrs if op.type == "ok"), key=lambda o: o.end)
    acked_ends = [op.end for op in acked]
    acked_sums = list(itertools.accumulate((op.value for op in acked), initial=0))
    by_start = sorted(incrs, key=lambda o: o.start)
    starts = [op.start for op in by_start]
    started_sums = list(itertools.accumulate((op.value for op in by_start), initial=0))
    anomalies: list[Anomaly] = []

    for read in (op for op in ops if op.f == "read" and op.type == "ok"):
        lower = acked_sums[bisect.bisect_left(acked_ends, read.start)]
        n_started = bisect.bisect_left(starts, read.end)
        upper = started_sums[n_started]
        if not lower <= read.value <= upper:
            culprits = by_start[max(0, n_started - 20):n_started]
            anomalies.append(Anomaly(
                "counter-bounds", read.key,
                f"read {read.value} outside [{lower}, {upper}]", [*culprits, read]))
    if final is not None:
        lower = acked_sums[-1]
        upper = started_sums[-1]
        if not lower <= final <= upper:
            kind = "lost" if final < lower else "duplicated"
            anomalies.append(Anomaly(
                kind, None, f"final value {final} outside [{lower} acknowledged, {upper} attempted]",
                [op for op in incrs if op.type == "info"][:20]))
    return anomalies


@dataclass
class AppendResult:
    anomalies: list[Anomaly]
    acknowledged: int
    lost: int
    duplicated: int


def check_append(operations: Iterable[Operation], final: dict[Any, list[Any]]) -> AppendResult:
    """Check ``append`` (value = element) and ``read`` (value = list) per key."""
    ops = list(operations)
    anomalies: list[Anomaly] = []
    appends: dict[Any, list[Operation]] = defaultdict(list)
    reads: dict[Any, list[Operation]] = defaultdict(list)
    for op in ops:
        if op.f == "append":
            appends[op.key].append(op)
        elif op.f == "read" and op.type == "ok":
            reads[op.key].append(op)
    acknowledged = lost = duplicated = 0
    for key in set(appends) | set(final):
        final_list = list(final.get(key, []))
        position = {}
        counts = Counter(final_list)
        for i, v in enumerate(final_list):
            position.setdefault(v, i)
        known = {op.value: op for op in appends[key]}
        for v, n in counts.items():
            if n > 1:
                duplicated += 1
                anomalies.append(Anomaly("duplicated", key, f"{v!r} appears {n} times", [known[v]] if v in known else []))
            if v not in known:
                anomalies.append(Anomaly("unexpected", key, f"{v!r} was never appended"))
            elif known[v].type == "fail":
                anomalies.append(Anomaly("failed-present", key, f"append of {v!r} failed but is present", [known[v]]))
        acked = [op for op in appends[key] if op.type == "ok"]
        acknowledged += len(acked)
        for op in acked:
            if op.value not in position:
                lost += 1
                anomalies.append(Anomaly("lost", key, f"acknowledged append {op.value!r} missing", [op]))
        for read in reads[key]:
            observed = list(read.value or [])
            if observed != final_list[: len(observed)]:
                anomalies.append(Anomaly(
                    "read-not-prefix", key,
                    f"read {observed!r} is not a prefix of the final {final_list!r}", [read]))
        # Real-time order: a completed append precedes every append invoked after it completed.
        present = [op for op in acked if op.value in position]
        by_end = sorted(present, key=lambda o: o.end)
        latest: Operation | None = None  # the completed append placed furthest in the list
        i = 0
        for b in sorted(present, key=lambda o: o.start):
            while i < len(by_end) and by_end[i].end < b.start:
                a = by_end[i]
                if latest is None or position[a.value] > position[latest.value]:
                    latest = a
                i += 1
            if latest is not None and position[b.value] < position[latest.value]:
                anomalies.append(Anomaly(
                    "order", key, f"{latest.value!r} was acknowledged before {b.value!r} was "
                    "appended, but comes after it", [latest, b]))
    return AppendResult(anomalies, acknowledged, lost, duplicated)

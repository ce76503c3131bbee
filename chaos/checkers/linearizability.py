"""Linearizability checking for registers: Wing & Gong's search with Lowe's memoisation.

The history is split per key (each key is an independent register, P-compositionality), then
for each key the checker searches for a total order of the operations that respects real time
and the register's sequential specification, as Knossos and Porcupine do:

* every ``ok`` operation must take effect between its invocation and its completion;
* ``fail`` operations certainly did not happen and are dropped;
* ``info`` operations (outcome unknown) have no completion time: they may take effect at any
  point after their invocation, or never. Unknown reads observe nothing and are dropped.

The register model: ``write v`` sets the value; ``read`` returns it (``None`` before any
write); ``cas (old, new)`` succeeds (``ok``) only if the value equals ``old``.

When a key is not linearizable, the report carries the shortest prefix of that key's history
that is already not linearizable, shrunk further by dropping operations that are not needed to
show the anomaly.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos.history import Operation


def _freeze(value: Any) -> Hashable:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def register_step(state: Hashable, op: Operation) -> list[Hashable]:
    """The register states ``op`` can lead to from ``state`` (empty: impossible here)."""
    unknown = op.type == "info"
    if op.f == "write":
        return [_freeze(op.value)]
    if op.f == "read":
        return [state] if _freeze(op.value) == state else []
    if op.f == "cas":
        old, new = op.value
        if state == _freeze(old):
            return [_freeze(new)]
        return [state] if unknown else []
    raise ValueError(f"unknown register operation {op.f!r}")


@dataclass
class _Event:
    op_id: int
    is_call: bool
    time: float
    prev: _Event | None = None
    next: _Event | None = None
    match: _Event | None = None


def _build_events(ops: list[Operation]) -> _Event:
    events: list[_Event] = []
    for i, op in enumerate(ops):
        call = _Event(i, True, op.start)
        ret = _Event(i, False, op.end)
        call.match = ret
        events.extend((call, ret))
    # Returns sort before calls at equal times so that "A completed, then B started" holds.
    events.sort(key=lambda e: (e.time, e.is_call))
    head = _Event(-1, False, -math.inf)
    prev = head
    for ev in events:
        prev.next = ev
        ev.prev = prev
        prev = ev
    return head


def _lift(call: _Event) -> None:
    for ev in (call, call.match):
        assert ev is not None and ev.prev is not None
        ev.prev.next = ev.next
        if ev.next is not None:
            ev.next.prev = ev.prev


def _unlift(call: _Event) -> None:
    for ev in (call.match, call):
        assert ev is not None and ev.prev is not None
        ev.prev.next = ev
        if ev.next is not None:
            ev.next.prev = ev


def check_register_ops(ops: list[Operation], initial: Hashable = None, max_steps: int = 2_000_000) -> bool | None:
    """True if linearizable, False if not, None if the search budget ran out."""
    ops = [op for op in ops if op.type == "ok" or (op.type == "info" and op.f != "read")]
    if not ops:
        return True
    head = _build_events(ops)
    cache: set[tuple[int, Hashable]] = set()
    # Stack frames: (call event, state before, remaining alternative states, linearized before)
    stack: list[tuple[_Event, Hashable, list[Hashable]]] = []
    linearized = 0
    state = initial
    entry = head.next
    steps = 0
    pending_alternatives: list[Hashable] | None = None
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return None
        assert entry is not None
        if entry.is_call:
            op = ops[entry.op_id]
            options = pending_alternatives if pending_alternatives is not None else register_step(state, op)
            pending_alternatives = None
            advanced = False
            while options:
                new_state = options[0]
                rest = options[1:]
                bits = linearized | (1 << entry.op_id)
                if (bits, new_state) not in cache:
                    cache.add((bits, new_state))
                    stack.append((entry, state, rest))
                    state = new_state
                    linearized = bits
                    _lift(entry)
                    entry = head.next
                    advanced = True
                    break
                options = rest
            if not advanced:
                entry = entry.next
        else:
            if not stack:
                return False
            call, state, rest = stack.pop()
            linearized &= ~(1 << call.op_id)
            _unlift(call)
            if rest:
                entry = call
                pending_alternatives = rest
            else:
                entry = call.next
    return True


@dataclass
class KeyAnomaly:
    key: Any
    ops: list[Operation] = field(default_factory=list)
    undecided: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "undecided": self.undecided,
            "ops": [
                {"process": o.process, "f": o.f, "value": o.value, "type": o.type,
                 "start": round(o.start, 6), "end": None if math.isinf(o.end) else round(o.end, 6)}
                for o in self.ops
            ],
        }


def _truncate(ops: list[Operation], cut: float) -> list[Operation]:
    """The history as it looked at time ``cut``: later completions become unknown."""
    out = []
    for op in ops:
        if op.start > cut:
            continue
        if op.end > cut:
            if op.type == "fail" or op.f == "read":
                continue
            op = Operation(op.process, op.f, op.key, op.value, "info", op.start, math.inf,
                           op.invoke_index, None)
        out.append(op)
    return out


def _produces_observed_value(op: Operation, ops: list[Operation]) -> bool:
    if op.f == "write":
        written = _freeze(op.value)
    elif op.f == "cas":
        written = _freeze(op.value[1])
    else:
        return False
    for other in ops:
        if other.f == "read" and _freeze(other.value) == written:
            return True
        if other.f == "cas" and other is not op and _freeze(other.value[0]) == written:
            return True
    return False


def _minimise(ops: list[Operation]) -> list[Operation]:
    """Shortest non-linearizable prefix, then drop operations that are not needed."""
    cuts = sorted({op.end for op in ops if not math.isinf(op.end)})
    lo, hi = 0, len(cuts) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if check_register_ops(_truncate(ops, cuts[mid]), max_steps=200_000) is False:
            hi = mid
        else:
            lo = mid + 1
    slice_ = _truncate(ops, cuts[lo]) if cuts else ops
    if check_register_ops(slice_, max_steps=200_000) is not False:
        return ops
    if len(slice_) <= 200:
        i = 0
        while i < len(slice_):
            if _produces_observed_value(slice_[i], slice_):
                i += 1  # dropping it would invent a different anomaly (a value from nowhere)
                continue
            candidate = slice_[:i] + slice_[i + 1 :]
            if check_register_ops(candidate, max_steps=100_000) is False:
                slice_ = candidate
            else:
                i += 1
    return slice_


def check_register(operations: Iterable[Operation]) -> list[KeyAnomaly]:
    """Check every key's register history; the anomalies found (empty when linearizable)."""
    by_key: dict[Any, list[Operation]] = defaultdict(list)
    for op in operations:
        by_key[op.key].append(op)
    anomalies = []
    for key, ops in by_key.items():
        verdict = check_register_ops(ops)
        if verdict is False:
            anomalies.append(KeyAnomaly(key, _minimise(ops)))
        elif verdict is None:
            anomalies.append(KeyAnomaly(key, [], undecided=True))
    return anomalies


__all__ = ["KeyAnomaly", "check_register", "check_register_ops", "register_step"]

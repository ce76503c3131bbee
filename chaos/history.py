"""Operation histories: every invocation and completion a workload performs, in real time.

A history is a list of :class:`Op` records. Each operation appears twice: once as ``invoke``
when a process starts it, once as ``ok`` (it happened, with its result), ``fail`` (it certainly
did not happen) or ``info`` (the outcome is unknown, e.g. a timeout or a connection lost after
sending). Checkers work on the paired form, :class:`Operation`.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

OpType = Literal["invoke", "ok", "fail", "info"]


@dataclass(frozen=True)
class Op:
    """One history event."""

    index: int
    process: int
    type: OpType
    f: str  # what the operation does: "read", "write", "cas", "add", "incr", "append", ...
    key: Any
    value: Any
    time: float  # seconds since the history started (monotonic clock)
    error: str | None = None


@dataclass(frozen=True)
class Operation:
    """An invocation paired with its completion; ``end`` is infinite when unknown."""

    process: int
    f: str
    key: Any
    value: Any  # the invocation's argument, or the completion's result for reads
    type: OpType  # "ok", "fail" or "info"
    start: float
    end: float
    invoke_index: int
    complete_index: int | None


@dataclass
class History:
    """A thread-safe recorder of one run's events."""

    ops: list[Op] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counter: itertools.count = field(default_factory=itertools.count, repr=False)
    origin: float = field(default_factory=time.monotonic, repr=False)

    def _add(self, process: int, type_: OpType, f: str, key: Any, value: Any, error: str | None) -> Op:
        with self._lock:
            op = Op(next(self._counter), process, type_, f, key, value, time.monotonic() - self.origin, error)
            self.ops.append(op)
            return op

    def invoke(self, process: int, f: str, key: Any = None, value: Any = None) -> Op:
        return self._add(process, "invoke", f, key, value, None)

    def complete(self, invocation: Op, type_: OpType, value: Any = None, error: str | None = None) -> Op:
        return self._add(invocation.process, type_, invocation.f, invocation.key, value, error)

    def elapsed(self) -> float:
        return time.monotonic() - self.origin

    def dump(self, path: str) -> None:
        with open(path, "w") as fh:
            for op in self.ops:
                json.dump(asdict(op), fh, default=str)
                fh.write("\n")


def pair(ops: list[Op]) -> list[Operation]:
    """Pair each invocation with its completion; unmatched invocations become ``info``.

    For a completed ``ok`` operation the value is the completion's (a read's result); for
    ``fail``/``info`` it is the invocation's argument.
    """
    pending: dict[int, Op] = {}
    done: list[Operation] = []
    for op in sorted(ops, key=lambda o: o.index):
        if op.type == "invoke":
            if op.process in pending:
                raise ValueError(f"process {op.process} invoked twice without completing")
            pending[op.process] = op
            continue
        inv = pending.pop(op.process, None)
        if inv is None:
            raise ValueError(f"completion without invocation: {op}")
        value = op.value if op.type == "ok" and op.value is not None else inv.value
        end = op.time if op.type != "info" else math.inf
        done.append(Operation(inv.process, inv.f, inv.key, value, op.type, inv.time, end, inv.index, op.index))
    for inv in pending.values():
        done.append(Operation(inv.process, inv.f, inv.key, inv.value, "info", inv.time, math.inf, inv.index, None))
    done.sort(key=lambda o: o.invoke_index)
    return done

"""Workloads: what client processes do during a chaos run, through the real ``helogale`` client.

Each workload knows how to perform one random operation for a process (recording its
invocation and completion in the history), how to read the final state once the cluster is
healed, and how to check the history against that final state.

Outcomes: ``ok`` when the server acknowledged; ``fail`` only when the operation certainly did
not take effect (a compare-and-set whose condition did not match, a read that errored); ``info``
when the outcome is unknown (a network error, a timeout, a write-concern error: the write may
or may not be there).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

from chaos.checkers.collections import check_append, check_counter, check_set
from chaos.checkers.linearizability import check_register
from chaos.history import History, Operation
from helogale.errors import NOT_PRIMARY_CODES, PyMongoError, WriteError
from helogale.read_concern import ReadConcern

COLLECTION = "chaos"
LINEARIZABLE = ReadConcern("linearizable")
UNKNOWN_OUTCOME_CODES = NOT_PRIMARY_CODES | frozenset({
    6, 7, 89,  # HostUnreachable, HostNotFound, NetworkTimeout: a shard lost mid-statement
    11601,  # Interrupted
    13388,  # StaleConfig (a router gave up re-routing: the shard may have applied it)
    217,  # IncompleteTransactionHistory: the retry was refused, the first run may have applied
})
"""Write errors that leave the outcome unknown. A router reports a shard's failure per
statement (as mongos does), so through routers these arrive as write errors, not as network
errors: the statement may have been applied before the shard or the connection went away."""


@dataclass
class Verdict:
    acknowledged: int
    lost: int
    duplicated: int
    anomalies: list[dict[str, Any]]
    undecided: int = 0
    final: Any = None


class Collection(Protocol):
    def find_one(self, *args: Any, **kwargs: Any) -> Any: ...
    def find(self, *args: Any, **kwargs: Any) -> Any: ...
    def insert_one(self, *args: Any, **kwargs: Any) -> Any: ...
    def update_one(self, *args: Any, **kwargs: Any) -> Any: ...
    def find_one_and_update(self, *args: Any, **kwargs: Any) -> Any: ...


def linearizable_find_one(coll: Any, key: Any) -> dict[str, Any] | None:
    """``find_one({_id: key})`` with read concern "linearizable" (confirmed by ReadIndex), so a
    deposed primary that has not noticed yet cannot answer with stale data."""
    return coll.with_options(read_concern=LINEARIZABLE).find_one({"_id": key})


@dataclass
class Workload(ABC):
    name: str
    keys: int = 3
    rng: random.Random = field(default_factory=random.Random)

    def split_points(self, processes: int) -> list[Any]:
        """``_id`` values to split the collection at before a sharded run: one chunk per
        key (or per process's range of values)."""
        return [self.key(i) for i in range(1, self.keys)]

    def split_candidates(self, processes: int) -> list[Any]:
        """More places the ``migrate`` nemesis may split a chunk at during the run."""
        return [self.key(i) for i in range(self.keys)]

    def key(self, i: int) -> Any:
        return i

    @abstractmethod
    def operate(self, history: History, process: int, coll: Collection) -> None:
        """Perform one random operation for ``process``, recording it in ``history``."""

    @abstractmethod
    def final_read(self, coll: Collection) -> Any:
        """Read the whole final state once the cluster has healed."""

    @abstractmethod
    def check(self, ops: list[Operation], final: Any) -> Verdict:
        """Check the paired history against the final state."""

    def _write(self, history: History, process: int, f: str, key: Any, value: Any, action: Any) -> None:
        """Run a write; ``ok`` on acknowledgement, ``fail`` on a definite write error, else ``info``."""
        inv = history.invoke(process, f, key, value)
        try:
            action()
        except WriteError as exc:
            outcome = "info" if exc.code in UNKNOWN_OUTCOME_CODES else "fail"
            history.complete(inv, outcome, error=f"{type(exc).__name__}: {exc}")
        except PyMongoError as exc:
            history.complete(inv, "info", error=f"{type(exc).__name__}: {exc}")
        else:
            history.complete(inv, "ok")

    def _read(self, history: History, process: int, key: Any, action: Any) -> None:
        inv = history.invoke(process, "read", key)
        try:
            value = action()
        except PyMongoError as exc:
            history.complete(inv, "fail", error=f"{type(exc).__name__}: {exc}")
        else:
            history.complete(inv, "ok", value)


class RegisterWorkload(Workload):
    """Reads, writes and compare-and-sets on a few single-value registers."""

    def key(self, i: int) -> Any:
        return f"r{i}"

    def operate(self, history: History, process: int, coll: Collection) -> None:
        key = self.key(self.rng.randrange(self.keys))
        choice = self.rng.random()
        if choice < 0.4:
            def read() -> Any:
                doc = linearizable_find_one(coll, key)
                return None if doc is None else doc.get("value")
            self._read(history, process, key, read)
        elif choice < 0.7:
            value = self.rng.randrange(5)
            self._write(history, process, "write", key, value,
                        lambda: coll.update_one({"_id": key}, {"$set": {"value": value}}, upsert=True))
        else:
            old, new = self.rng.randrange(5), self.rng.randrange(5)
            inv = history.invoke(process, "cas", key, (old, new))
            try:
                before = coll.find_one_and_update({"_id": key, "value": old}, {"$set": {"value": new}})
            except PyMongoError as exc:
                history.complete(inv, "info", error=f"{type(exc).__name__}: {exc}")
            else:
                history.complete(inv, "ok" if before is not None else "fail")

    def final_read(self, coll: Collection) -> Any:
        return {doc["_id"]: doc.get("value") for doc in coll.find({})}

    def check(self, ops: list[Operation], final: Any) -> Verdict:
        anomalies = check_register(ops)
        real = [a for a in anomalies if not a.undecided]
        acked = sum(1 for op in ops if op.type == "ok" and op.f != "read")
        return Verdict(acked, 0, 0, [a.describe() for a in real],
                       undecided=len(anomalies) - len(real), final=final)


class SetWorkload(Workload):
    """Unique inserts with w="majority"; all acknowledged ones must survive."""

    counter: int = 0

    def split_points(self, processes: int) -> list[Any]:
        return [p * 1_000_000 for p in range(1, processes)]

    def split_candidates(self, processes: int) -> list[Any]:
        return [p * 1_000_000 + k * 25 for p in range(processes) for k in range(1, 200)]

    def operate(self, history: History, process: int, coll: Collection) -> None:
        value = process * 1_000_000 + self.counter
        self.counter += 1
        self._write(history, process, "add", None, value, lambda: coll.insert_one({"_id": value}))

    def final_read(self, coll: Collection) -> Any:
        return [doc["_id"] for doc in coll.find({})]

    def check(self, ops: list[Operation], final: Any) -> Verdict:
        result = check_set(ops, final)
        return Verdict(result.acknowledged, result.lost, result.duplicated,
                       [a.describe() for a in result.anomalies], final=len(final))


class CounterWorkload(Workload):
    """``$inc`` by small positive amounts (retryable writes) and reads of one counter."""

    def split_points(self, processes: int) -> list[Any]:
        return ["counter"]  # its chunk is ["counter", MaxKey)

    def split_candidates(self, processes: int) -> list[Any]:
        return ["c", "counter", "counter0", "d"]

    def operate(self, history: History, process: int, coll: Collection) -> None:
        if self.rng.random() < 0.25:
            def read() -> Any:
                doc = linearizable_find_one(coll, "counter")
                return 0 if doc is None else doc.get("value", 0)
            self._read(history, process, "counter", read)
            return
        amount = self.rng.randrange(1, 5)
        self._write(history, process, "incr", "counter", amount,
                    lambda: coll.update_one({"_id": "counter"}, {"$inc": {"value": amount}}, upsert=True))

    def final_read(self, coll: Collection) -> Any:
        doc = coll.find_one({"_id": "counter"})
        return 0 if doc is None else doc.get("value", 0)

    def check(self, ops: list[Operation], final: Any) -> Verdict:
        anomalies = check_counter(ops, final)
        acked = sum(1 for op in ops if op.f == "incr" and op.type == "ok")
        lost = sum(1 for a in anomalies if a.kind == "lost")
        dup = sum(1 for a in anomalies if a.kind == "duplicated")
        return Verdict(acked, lost, dup, [a.describe() for a in anomalies], final=final)


class AppendWorkload(Workload):
    """``$push`` of unique values onto a few lists, and reads of whole lists."""

    counter: int = 0

    def key(self, i: int) -> Any:
        return f"l{i}"

    def operate(self, history: History, process: int, coll: Collection) -> None:
        key = self.key(self.rng.randrange(self.keys))
        if self.rng.random() < 0.3:
            def read() -> Any:
                doc = coll.find_one({"_id": key})
                return [] if doc is None else list(doc.get("values", []))
            self._read(history, process, key, read)
            return
        value = process * 1_000_000 + self.counter
        self.counter += 1
        self._write(history, process, "append", key, value,
                    lambda: coll.update_one({"_id": key}, {"$push": {"values": value}}, upsert=True))

    def final_read(self, coll: Collection) -> Any:
        return {doc["_id"]: list(doc.get("values", [])) for doc in coll.find({})}

    def check(self, ops: list[Operation], final: Any) -> Verdict:
        result = check_append(ops, final)
        return Verdict(result.acknowledged, result.lost, result.duplicated,
                       [a.describe() for a in result.anomalies])


WORKLOADS: dict[str, type[Workload]] = {
    "register": RegisterWorkload,
    "set": SetWorkload,
    "counter": CounterWorkload,
    "append": AppendWorkload,
}


def make_workload(name: str, seed: int) -> Workload:
    try:
        cls = WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}") from None
    return cls(name=name, rng=random.Random(seed))

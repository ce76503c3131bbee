"""Workload outcomes and split points, without a cluster: a write error whose outcome is
unknown (a router reporting an unreachable shard per statement, a stepped-down primary,
StaleConfig, IncompleteTransactionHistory) is ``info``; a definite one is ``fail``."""

from __future__ import annotations

from typing import Any

import pytest

from chaos.history import History, pair
from chaos.workloads import WORKLOADS, make_workload
from helogale.errors import WriteError


def _write_error(code: int) -> WriteError:
    return WriteError(f"code {code}", code, {"code": code, "errmsg": f"code {code}"})


class FailingCollection:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def insert_one(self, *args: Any, **kwargs: Any) -> Any:
        raise self.exc


@pytest.mark.parametrize("code, outcome", [
    (6, "info"),  # HostUnreachable: the router lost the shard mid-statement
    (189, "info"),  # PrimarySteppedDown
    (11602, "info"),  # InterruptedDueToReplStateChange
    (13388, "info"),  # StaleConfig
    (217, "info"),  # IncompleteTransactionHistory
    (11000, "fail"),  # DuplicateKey: certainly not applied
    (2, "fail"),  # BadValue
])
def test_write_error_outcome(code: int, outcome: str) -> None:
    workload = make_workload("set", 1)
    history = History()
    workload.operate(history, 0, FailingCollection(_write_error(code)))  # type: ignore[arg-type]
    [op] = pair(history.ops)
    assert op.type == outcome


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_split_points_are_candidates_or_boundaries(name: str) -> None:
    workload = make_workload(name, 1)
    points = workload.split_points(5)
    assert points, name
    assert len(set(map(repr, points))) == len(points)
    assert workload.split_candidates(5)


def test_set_split_points_give_each_process_its_chunk() -> None:
    workload = make_workload("set", 1)
    assert workload.split_points(3) == [1_000_000, 2_000_000]

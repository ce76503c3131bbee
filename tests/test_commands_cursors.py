"""Server cursor registry: batches, getMore, killCursors, idle expiry (with a fake clock)."""

from __future__ import annotations

import pytest

from node.commands.cursors import CursorRegistry
from node.engine.errors import MongoError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Closing:
    """An iterator that records whether it was closed."""

    def __init__(self, n: int) -> None:
        self.it = iter([{"_id": i} for i in range(n)])
        self.closed = False

    def __iter__(self) -> Closing:
        return self

    def __next__(self) -> dict:
        return next(self.it)

    def close(self) -> None:
        self.closed = True


def test_first_batch_then_get_more_until_exhausted() -> None:
    reg = CursorRegistry()
    src = Closing(250)
    batch, cid = reg.first_batch("db.c", src, None)
    assert [d["_id"] for d in batch] == list(range(101))
    assert cid != 0 and len(reg) == 1
    batch, cid2 = reg.get_more(cid, "db.c", 100)
    assert [d["_id"] for d in batch] == list(range(101, 201)) and cid2 == cid
    batch, cid3 = reg.get_more(cid, "db.c", None)
    assert [d["_id"] for d in batch] == list(range(201, 250))
    assert cid3 == 0 and len(reg) == 0 and src.closed
    with pytest.raises(MongoError) as err:
        reg.get_more(cid, "db.c", None)
    assert err.value.code == 43


def test_exact_batch_size_does_not_leave_an_empty_cursor() -> None:
    reg = CursorRegistry()
    batch, cid = reg.first_batch("db.c", Closing(5), 5)
    assert len(batch) == 5 and cid == 0


def test_get_more_on_wrong_namespace_is_refused() -> None:
    reg = CursorRegistry()
    _, cid = reg.first_batch("db.c", Closing(10), 2)
    with pytest.raises(MongoError) as err:
        reg.get_more(cid, "db.other", 2)
    assert err.value.code == 13
    assert len(reg) == 1


def test_kill_reports_killed_and_not_found() -> None:
    reg = CursorRegistry()
    src = Closing(10)
    _, cid = reg.first_batch("db.c", src, 2)
    killed, missing = reg.kill([cid, 12345])
    assert killed == [cid] and missing == [12345] and src.closed and len(reg) == 0


def test_idle_cursors_expire() -> None:
    clock = FakeClock()
    reg = CursorRegistry(idle_timeout_s=60, clock=clock)
    src_old, src_busy = Closing(10), Closing(10)
    _, old = reg.first_batch("db.c", src_old, 1)
    clock.now += 40
    _, busy = reg.first_batch("db.c", src_busy, 1)
    clock.now += 30  # old idle 70s, busy idle 30s
    assert reg.reap() == 1
    reg.get_more(busy, "db.c", 1)
    assert len(reg) == 1
    assert src_old.closed and not src_busy.closed
    with pytest.raises(MongoError):
        reg.get_more(old, "db.c", 1)
    batch, _ = reg.get_more(busy, "db.c", 1)
    assert batch == [{"_id": 2}]

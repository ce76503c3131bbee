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


# --- caps: every open cursor pins a store reader, so their number is bounded -------------------


def test_open_cursors_are_capped_per_connection_and_in_total() -> None:
    reg = CursorRegistry(max_open=5, max_per_connection=3)
    sources = [Closing(10) for _ in range(3)]
    ids = [reg.first_batch("db.c", s, 1, connection_id=7)[1] for s in sources]
    refused = Closing(10)
    with pytest.raises(MongoError) as err:
        reg.first_batch("db.c", refused, 1, connection_id=7)
    assert err.value.code == 146 and err.value.code_name == "ExceededMemoryLimit"
    assert "3 cursors on one connection" in err.value.errmsg
    assert refused.closed and len(reg) == 3  # the refused cursor's source (its reader) is closed
    # a query that fits in its first batch needs no cursor, so it is still answered
    batch, cid = reg.first_batch("db.c", Closing(1), 1, connection_id=7)
    assert batch == [{"_id": 0}] and cid == 0
    # other connections may open cursors up to the total
    reg.first_batch("db.c", Closing(10), 1, connection_id=8)
    reg.first_batch("db.c", Closing(10), 1, connection_id=9)
    with pytest.raises(MongoError) as err:
        reg.first_batch("db.c", Closing(10), 1, connection_id=10)
    assert err.value.code == 146 and "5 cursors on this server" in err.value.errmsg
    # closing (kill, exhaustion) gives the slots back
    reg.kill([ids[0]])
    reg.get_more(ids[1], "db.c", None)  # read to the end: closed
    reg.first_batch("db.c", Closing(10), 1, connection_id=7)
    reg.first_batch("db.c", Closing(10), 1, connection_id=10)
    assert len(reg) == 5


def test_reaped_cursors_free_their_connection_slots() -> None:
    clock = FakeClock()
    reg = CursorRegistry(idle_timeout_s=60, clock=clock, max_per_connection=1)
    reg.first_batch("db.c", Closing(10), 1, connection_id=1)
    with pytest.raises(MongoError):
        reg.first_batch("db.c", Closing(10), 1, connection_id=1)
    clock.now += 61
    reg.first_batch("db.c", Closing(10), 1, connection_id=1)  # the reap runs first
    assert len(reg) == 1


def test_find_passes_the_connection_to_the_cap() -> None:
    from node.commands.context import RequestContext
    from node.server.standalone import standalone_dispatcher

    d = standalone_dispatcher()
    d.services.cursors = CursorRegistry(max_per_connection=2)
    d.run("app", {"insert": "c", "documents": [{"_id": i} for i in range(5)]}, RequestContext())
    one, two = RequestContext(connection_id=1), RequestContext(connection_id=2)
    find = {"find": "c", "batchSize": 1}
    assert d.run("app", find, one)["ok"] == 1.0
    assert d.run("app", {"aggregate": "c", "pipeline": [], "cursor": {"batchSize": 1}},
                 one)["ok"] == 1.0
    refused = d.run("app", find, one)
    assert refused["ok"] == 0.0 and refused["code"] == 146
    assert d.run("app", find, two)["ok"] == 1.0

"""LMDBStore: the KVStore contract (its first tests run on MemoryStore too), persistence, MVCC,
limits."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.engine.lmdb_store import KeyTooLarge, LMDBStore, StoreClosed
from node.engine.memory_store import MemoryStore


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = LMDBStore(tmp_path / "db", sync=False)
    yield s
    s.close()


@pytest.fixture(params=["lmdb", "memory"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Each KVStore implementation in turn, for tests of the shared contract."""
    s = LMDBStore(tmp_path / "db", sync=False) if request.param == "lmdb" else MemoryStore()
    yield s
    s.close()


def _all(txn: Any, table: str, **kw: Any) -> list[tuple[bytes, bytes]]:
    return list(txn.scan(table, **kw))


def test_put_get_scan_ordered_by_unsigned_bytes(any_store: Any) -> None:
    store = any_store
    with store.write() as w:
        for k in [b"\xff", b"b", b"a", b"\x00", b"ab", b""]:
            w.put("t", k, k + b"!")
    with store.read() as r:
        assert [k for k, _ in _all(r, "t")] == [b"", b"\x00", b"a", b"ab", b"b", b"\xff"]
        assert r.get("t", b"ab") == b"ab!"
        assert r.get("t", b"") == b"!"
        assert r.get("t", b"zz") is None
        assert r.get("missing", b"a") is None
        assert _all(r, "missing") == []


def test_scan_ranges_and_reverse(any_store: Any) -> None:
    store = any_store
    with store.write() as w:
        for i in range(10):
            w.put("t", bytes([i]), b"v")
        w.put("t0", b"\x05", b"other table before")
        w.put("u", b"\x05", b"other table after")
    with store.read() as r:
        assert [k[0] for k, _ in r.scan("t", bytes([3]), bytes([6]))] == [3, 4, 5]
        assert [k[0] for k, _ in r.scan("t", bytes([3]), bytes([6]), reverse=True)] == [5, 4, 3]
        assert [k[0] for k, _ in r.scan("t", reverse=True)] == list(range(9, -1, -1))
        assert [k[0] for k, _ in r.scan("t", bytes([8]))] == [8, 9]
        assert _all(r, "t", start=b"\x05", end=b"\x05") == []
        assert _all(r, "t", start=b"\x07", end=b"\x02") == []
        assert _all(r, "u") == [(b"\x05", b"other table after")]
        assert r.tables() == ["t", "t0", "u"]


def test_writer_sees_own_changes_and_abort_restores(any_store: Any) -> None:
    store = any_store
    with store.write() as w:
        w.put("t", b"a", b"1")
        w.put("t", b"b", b"2")
    with pytest.raises(ValueError), store.write() as w:
        w.put("t", b"a", b"changed")
        w.put("t", b"c", b"3")
        assert w.delete("t", b"b") is True
        assert w.get("t", b"a") == b"changed"
        assert [k for k, _ in _all(w, "t")] == [b"a", b"c"]
        w.put("u", b"x", b"y")
        w.drop_table("t")
        assert w.tables() == ["u"]
        raise ValueError("abort")
    with store.read() as r:
        assert _all(r, "t") == [(b"a", b"1"), (b"b", b"2")]
        assert r.tables() == ["t"]


def test_drop_and_recreate_table_starts_empty(store: LMDBStore) -> None:
    with store.write() as w:
        for i in range(1000):
            w.put("t", i.to_bytes(2, "big"), b"x")
        w.put("keep", b"k", b"v")
    with store.write() as w:
        w.drop_table("t")
        w.drop_table("never")
        assert w.get("t", b"\x00\x01") is None
        w.put("t", b"c", b"3")
        assert _all(w, "t") == [(b"c", b"3")]
    with store.read() as r:
        assert _all(r, "t") == [(b"c", b"3")]
        assert _all(r, "keep") == [(b"k", b"v")]
    assert store.stat()["entries"] == 2


def test_reader_snapshot_is_stable_across_commits(store: LMDBStore) -> None:
    with store.write() as w:
        for i in range(5):
            w.put("t", bytes([i]), b"old")
    with store.read() as r:
        it = r.scan("t")
        first = next(it)
        with store.write() as w:
            w.put("t", bytes([0]) + b"x", b"new")
            w.put("t", bytes([3]), b"new")
            w.delete("t", bytes([4]))
            w.put("t2", b"k", b"v")
        rest = list(it)
        assert [first, *rest] == [(bytes([i]), b"old") for i in range(5)]
        assert r.get("t", bytes([4])) == b"old"
        assert r.tables() == ["t"]
        assert r.get("t2", b"k") is None
        with store.write() as w:
            w.drop_table("t")
        assert r.get("t", bytes([1])) == b"old"
    with store.read() as r2:
        assert r2.tables() == ["t2"]
        assert _all(r2, "t") == []


def _modify_while_scanning(s: Any) -> tuple[list[bytes], list[bytes], list[bytes]]:
    with s.write() as w:
        for i in range(700):
            w.put("t", i.to_bytes(2, "big"), b"v")
            w.put("r", i.to_bytes(2, "big"), b"v")
    forward: list[bytes] = []
    originals = {i.to_bytes(2, "big") for i in range(700)}
    with s.write() as w:
        for k, _ in w.scan("t"):
            forward.append(k)
            w.delete("t", k)  # delete what we pass
            if k in originals:
                w.put("t", k + b"+", b"added")  # and add right ahead of the cursor
                w.put("t", k[:1], b"behind")  # and behind it
    with s.write() as w:
        backward = [k for k, _ in w.scan("r", reverse=True) if w.delete("r", k)]
        assert _all(w, "r") == []
        for k, _ in w.scan("t", reverse=True):
            if len(k) > 1:
                w.put("t", k[:1] + b"~", b"ahead")  # seen later (lower keys come next)
    with s.read() as r:
        final = [k for k, _ in _all(r, "t")]
    return forward, backward, final


def test_writer_may_modify_a_table_while_scanning_it(tmp_path: Path) -> None:
    with LMDBStore(tmp_path / "db", sync=False) as lm:
        got = _modify_while_scanning(lm)
    assert got == _modify_while_scanning(MemoryStore())
    forward, backward, _ = got
    assert len(forward) == 1400  # every original key and every key added ahead of the cursor
    assert backward == [i.to_bytes(2, "big") for i in range(699, -1, -1)]


def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with LMDBStore(path) as s, s.write() as w:
        w.put("a", b"1", b"one")
        w.put("b", b"2", b"two")
        w.drop_table("b")
        w.put("c", b"3", b"three")
    with LMDBStore(path) as s, s.read() as r:
        assert r.tables() == ["a", "c"]
        assert r.get("a", b"1") == b"one"
        assert r.get("c", b"3") == b"three"
    with LMDBStore(path) as s:
        with s.write() as w:
            w.put("d", b"4", b"four")  # table ids keep counting after a reopen
        with s.read() as r:
            assert r.tables() == ["a", "c", "d"]
            assert _all(r, "a") == [(b"1", b"one")]
            assert _all(r, "d") == [(b"4", b"four")]


def test_opening_an_existing_store_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with LMDBStore(path) as s, s.write() as w:
        for i in range(2000):
            w.put("docs", i.to_bytes(4, "big"), b"x" * 50)
    data_file = path / "data.mdb"
    before = hashlib.sha256(data_file.read_bytes()).hexdigest()
    with LMDBStore(path) as s, s.read() as r:
        assert r.get("docs", (1999).to_bytes(4, "big")) == b"x" * 50
    assert hashlib.sha256(data_file.read_bytes()).hexdigest() == before


def test_key_size_limit(store: LMDBStore) -> None:
    limit = store.max_key_size()
    assert limit >= 400
    with store.write() as w:
        w.put("t", b"k" * limit, b"max")
        with pytest.raises(KeyTooLarge):
            w.put("t", b"k" * (limit + 1), b"too long")
        assert w.get("t", b"k" * (limit + 1)) is None
        assert w.delete("t", b"k" * (limit + 1)) is False
    with store.read() as r:
        assert r.get("t", b"k" * limit) == b"max"


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    s = LMDBStore(tmp_path / "db")
    s.close()
    s.close()
    with pytest.raises(StoreClosed), s.read():
        pass


def test_reader_opened_inside_the_writer_sees_the_committed_state(store: LMDBStore) -> None:
    with store.write() as w:
        w.put("t", b"a", b"1")
    with store.write() as w:
        w.put("t", b"a", b"2")
        with store.read() as r:
            assert r.get("t", b"a") == b"1"
        assert w.get("t", b"a") == b"2"


def test_readers_never_block_the_writer(store: LMDBStore) -> None:
    """A reader holds its snapshot open in another thread while the writer commits repeatedly."""
    with store.write() as w:
        w.put("t", b"k", b"0")
    holding = threading.Event()
    release = threading.Event()
    seen: list[bytes | None] = []

    def reader() -> None:
        with store.read() as r:
            seen.append(r.get("t", b"k"))
            holding.set()
            assert release.wait(10)
            seen.append(r.get("t", b"k"))

    t = threading.Thread(target=reader)
    t.start()
    assert holding.wait(10)
    for i in range(1, 50):
        with store.write() as w:
            w.put("t", b"k", str(i).encode())
    release.set()
    t.join(10)
    assert seen == [b"0", b"0"]
    with store.read() as r:
        assert r.get("t", b"k") == b"49"


def test_concurrent_reader_threads_see_consistent_totals(store: LMDBStore) -> None:
    with store.write() as w:
        w.put("acct", b"a", b"100")
        w.put("acct", b"b", b"0")
    stop = threading.Event()
    bad: list[int] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            with store.read() as r:
                total = sum(int(v) for k, v in r.scan("acct") if k in (b"a", b"b"))
                reads[0] += 1
                if total != 100:
                    bad.append(total)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(300):
        with store.write() as w:
            a = int(w.get("acct", b"a") or b"0")
            b = int(w.get("acct", b"b") or b"0")
            step = 1 if i % 2 else -1
            w.put("acct", b"a", str(a - step).encode())
            w.put("acct", b"b", str(b + step).encode())
    stop.set()
    for t in threads:
        t.join(10)
    assert bad == []
    assert reads[0] > 0


_ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "delete", "drop", "get"]),
        st.sampled_from(["t1", "t2", "t\x00x"]),
        st.binary(max_size=3),
        st.binary(max_size=2),
    ),
    max_size=25,
)
_scan_bounds = st.tuples(st.binary(max_size=2), st.none() | st.binary(max_size=2), st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_ops, st.booleans(), _scan_bounds), max_size=6))
def test_same_behaviour_as_memory_store(
    tmp_path_factory: pytest.TempPathFactory, batches: list[tuple[list, bool, tuple]]
) -> None:
    lm = LMDBStore(tmp_path_factory.mktemp("diff") / "db", sync=False)
    mem = MemoryStore()
    try:
        for ops, abort, (start, end, reverse) in batches:
            results: list[list[Any]] = []
            for s in (lm, mem):
                out: list[Any] = []
                try:
                    with s.write() as w:
                        for op, table, key, value in ops:
                            if op == "put":
                                w.put(table, key, value)
                            elif op == "delete":
                                out.append(w.delete(table, key))
                            elif op == "drop":
                                w.drop_table(table)
                            else:
                                out.append(w.get(table, key))
                            out.append(w.tables())
                        out.append(_all(w, "t1", start=start, end=end, reverse=reverse))
                        if abort:
                            raise RuntimeError
                except RuntimeError:
                    pass
                with s.read() as r:
                    out.append(r.tables())
                    for table in r.tables():
                        out.append(_all(r, table))
                        out.append(_all(r, table, start=start, end=end, reverse=reverse))
                results.append(out)
            assert results[0] == results[1]
    finally:
        lm.close()


def test_readers_are_bounded_and_the_writer_needs_none(tmp_path: Path) -> None:
    import lmdb

    store = LMDBStore(str(tmp_path), max_readers=2)
    assert store.max_readers == 2
    with store.read(), store.read():
        with pytest.raises(lmdb.ReadersFullError), store.read():
            pass
        with store.write() as w:  # the writer needs no reader slot
            w.put("t", b"k", b"v")
    with store.read() as r:
        assert r.get("t", b"k") == b"v"
    store.close()

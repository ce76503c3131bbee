"""Tests for the in-memory KVStore: snapshot isolation, pruning, a model check (the shared
KVStore contract tests run on it from tests/test_lmdb_store.py)."""

from __future__ import annotations

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.memory_store import MemoryStore


def _all(txn, table: str, **kw) -> list[tuple[bytes, bytes]]:
    return list(txn.scan(table, **kw))


def test_delete_reports_presence_and_drop_table() -> None:
    store = MemoryStore()
    with store.write() as w:
        w.put("t", b"a", b"1")
        assert w.delete("t", b"a") is True
        assert w.delete("t", b"a") is False
        assert w.delete("nope", b"a") is False
        w.put("t", b"b", b"2")
    with store.write() as w:
        w.drop_table("t")
        w.drop_table("never")
        assert w.get("t", b"b") is None
        w.put("t", b"c", b"3")  # recreated, empty apart from the new key
        assert _all(w, "t") == [(b"c", b"3")]
    with store.read() as r:
        assert _all(r, "t") == [(b"c", b"3")]


def test_reader_snapshot_is_stable_across_commits() -> None:
    store = MemoryStore()
    with store.write() as w:
        for i in range(5):
            w.put("t", bytes([i]), b"old")
    with store.read() as r:
        it = r.scan("t")
        first = next(it)
        with store.write() as w:
            w.put("t", bytes([0]) + b"x", b"new")  # inserted right after the cursor
            w.put("t", bytes([3]), b"new")
            w.delete("t", bytes([4]))
            w.put("t", b"\x09", b"new")
            w.drop_table("t2")
            w.put("t2", b"k", b"v")
        rest = list(it)
        assert [first, *rest] == [(bytes([i]), b"old") for i in range(5)]
        assert r.get("t", bytes([4])) == b"old"
        assert r.tables() == ["t"]
    with store.read() as r2:
        keys = [k for k, _ in _all(r2, "t")]
        assert keys == [b"\x00", b"\x00x", b"\x01", b"\x02", b"\x03", b"\x09"]
        assert r2.get("t", bytes([3])) == b"new"
        assert r2.tables() == ["t", "t2"]


def test_dropped_table_invisible_to_later_readers_but_visible_to_older() -> None:
    store = MemoryStore()
    with store.write() as w:
        w.put("t", b"a", b"1")
    with store.read() as old:
        with store.write() as w:
            w.drop_table("t")
        with store.read() as new:
            assert new.tables() == []
            assert new.get("t", b"a") is None
        assert old.get("t", b"a") == b"1"


def test_second_writer_waits_for_the_first() -> None:
    store = MemoryStore()
    order: list[str] = []
    started = threading.Event()

    def other() -> None:
        started.set()
        with store.write() as w:
            order.append("second")
            w.put("t", b"k", b"2")

    with store.write() as w:
        w.put("t", b"k", b"1")
        t = threading.Thread(target=other)
        t.start()
        assert started.wait(5)
        order.append("first")
    t.join(5)
    assert order == ["first", "second"]
    with store.read() as r:
        assert r.get("t", b"k") == b"2"


def test_concurrent_reader_thread_sees_consistent_totals() -> None:
    """Writer moves value between two keys; every snapshot must see the same total."""
    store = MemoryStore()
    with store.write() as w:
        w.put("acct", b"a", b"100")
        w.put("acct", b"b", b"0")
    stop = threading.Event()
    bad: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            with store.read() as r:
                total = sum(int(v) for _, v in r.scan("acct"))
                if total != 100:
                    bad.append(total)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(300):
        with store.write() as w:
            a = int(w.get("acct", b"a"))
            w.put("acct", b"a", str(a - 1 if i % 2 else a + 1).encode())
            b = int(w.get("acct", b"b"))
            w.put("acct", b"b", str(b + 1 if i % 2 else b - 1).encode())
            w.put("acct", bytes([i % 7]) + b"tmp", b"0")
            w.delete("acct", bytes([(i + 3) % 7]) + b"tmp")
    stop.set()
    for t in threads:
        t.join(10)
    assert bad == []


def test_old_versions_are_pruned_without_readers() -> None:
    store = MemoryStore()
    for i in range(50):
        with store.write() as w:
            w.put("t", b"k", str(i).encode())
            w.put("t", b"gone", b"x")
            w.delete("t", b"gone")
    table = store._resolve("t", store._committed)
    assert table is not None
    assert len(table.chains[b"k"]) == 1
    assert b"gone" not in table.chains and table.keys == [b"k"]


_ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "delete", "drop"]),
        st.sampled_from(["t1", "t2"]),
        st.binary(max_size=3),
        st.binary(max_size=2),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_ops, st.booleans()), max_size=6))
def test_model_against_dicts(batches: list[tuple[list, bool]]) -> None:
    store = MemoryStore()
    model: dict[str, dict[bytes, bytes]] = {}
    for ops, abort in batches:
        scratch = {t: dict(d) for t, d in model.items()}
        try:
            with store.write() as w:
                for op, table, key, value in ops:
                    if op == "put":
                        w.put(table, key, value)
                        scratch.setdefault(table, {})[key] = value
                    elif op == "delete":
                        assert w.delete(table, key) == (key in scratch.get(table, {}))
                        scratch.get(table, {}).pop(key, None)
                    else:
                        w.drop_table(table)
                        scratch.pop(table, None)
                    assert w.tables() == sorted(scratch)
                if abort:
                    raise RuntimeError
        except RuntimeError:
            pass
        else:
            model = scratch
        with store.read() as r:
            assert r.tables() == sorted(model)
            for table, data in model.items():
                assert _all(r, table) == sorted(data.items())
                assert _all(r, table, reverse=True) == sorted(data.items(), reverse=True)

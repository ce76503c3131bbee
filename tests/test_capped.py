"""Capped collections through the dispatcher (one in-process member) and the engine."""

from __future__ import annotations

from typing import Any

import pytest

from node.commands.context import RequestContext
from node.engine import capped
from node.server.standalone import standalone_dispatcher

CTX = RequestContext()


@pytest.fixture
def run() -> Any:
    d = standalone_dispatcher()

    def _run(cmd: dict[str, Any], db: str = "app") -> dict[str, Any]:
        return d.run(db, cmd, CTX)

    _run.dispatcher = d  # type: ignore[attr-defined]
    return _run


def ids(run: Any, coll: str, **cmd: Any) -> list[Any]:
    reply = run({"find": coll, **cmd})
    assert reply["ok"] == 1.0, reply
    return [d["_id"] for d in reply["cursor"]["firstBatch"]]


def test_create_options_are_checked_as_mongodb_checks_them(run: Any) -> None:
    assert run({"create": "a", "capped": True})["code"] == 72
    assert run({"create": "b", "size": 4096})["code"] == 72
    assert run({"create": "c", "capped": True, "size": -1})["code"] == 2
    assert run({"create": "d", "capped": True, "size": 1000, "max": 5})["ok"] == 1.0
    (info,) = [c for c in run({"listCollections": 1})["cursor"]["firstBatch"]
               if c["name"] == "d"]
    assert info["options"] == {"capped": True, "size": 4096, "max": 5}
    stats = run({"collStats": "d"})
    assert stats["capped"] is True and stats["maxSize"] == 4096 and stats["max"] == 5
    run({"insert": "plain", "documents": [{"_id": 1}]})
    assert run({"collStats": "plain"})["capped"] is False


def test_insertion_order_and_oldest_removed_by_max(run: Any) -> None:
    run({"create": "log", "capped": True, "size": 100000, "max": 3})
    run({"createIndexes": "log", "indexes": [{"key": {"k": 1}, "name": "k_1"}]})
    for i in [5, 3, 9, 1, 7]:
        assert run({"insert": "log", "documents": [{"_id": i, "k": i}]})["n"] == 1
    assert ids(run, "log") == [9, 1, 7]
    assert ids(run, "log", sort={"$natural": -1}) == [7, 1, 9]
    assert ids(run, "log", filter={"k": {"$gte": 0}}, hint="k_1", sort={"k": 1}) == [1, 7, 9]
    assert ids(run, "log", filter={"k": 3}, hint="k_1") == []  # index entry went too
    assert run({"count": "log"})["n"] == 3


def test_oldest_removed_by_size_and_too_big_refused(run: Any) -> None:
    run({"create": "log", "capped": True, "size": 4096})
    pad = "x" * 1000
    for i in range(10):
        run({"insert": "log", "documents": [{"_id": i, "pad": pad}]})
    kept = ids(run, "log")
    assert kept == list(range(10 - len(kept), 10)) and 3 <= len(kept) <= 4
    reply = run({"insert": "log", "documents": [{"_id": 99, "pad": "y" * 5000}]})
    assert reply["writeErrors"][0]["code"] == 2
    assert ids(run, "log") == kept
    # a growing update trims the oldest others
    run({"update": "log", "updates": [{"q": {"_id": 9}, "u": {"$set": {"pad": pad * 2}}}]})
    after = ids(run, "log")
    assert after[-1] == 9 and len(after) < len(kept)


def test_delete_then_insert_keeps_counters(run: Any) -> None:
    run({"create": "log", "capped": True, "size": 4096, "max": 2})
    run({"insert": "log", "documents": [{"_id": 1}, {"_id": 2}]})
    run({"delete": "log", "deletes": [{"q": {"_id": 1}, "limit": 1}]})
    run({"insert": "log", "documents": [{"_id": 3}]})
    assert ids(run, "log") == [2, 3]
    run({"insert": "log", "documents": [{"_id": 4}]})
    assert ids(run, "log") == [3, 4]


def test_convert_to_capped_keeps_only_the_id_index(run: Any) -> None:
    run({"insert": "plain", "documents": [{"_id": i, "k": i} for i in range(10)]})
    run({"createIndexes": "plain", "indexes": [{"key": {"k": 1}, "name": "k_1"}]})
    assert run({"convertToCapped": "plain", "size": 4096, "max": 4})["ok"] == 1.0
    assert ids(run, "plain") == [6, 7, 8, 9]
    names = [i["name"] for i in run({"listIndexes": "plain"})["cursor"]["firstBatch"]]
    assert names == ["_id_"]
    assert run({"collStats": "plain"})["capped"] is True
    assert run({"convertToCapped": "missing", "size": 4096})["code"] == 26


def test_rename_carries_and_drop_clears_the_capping(run: Any) -> None:
    run({"create": "log", "capped": True, "size": 4096, "max": 2})
    run({"insert": "log", "documents": [{"_id": 3}, {"_id": 1}]})
    assert run({"renameCollection": "app.log", "to": "app.log2"}, db="admin")["ok"] == 1.0
    run({"insert": "log2", "documents": [{"_id": 2}]})
    assert ids(run, "log2") == [1, 2]
    run({"drop": "log2"})
    run({"insert": "log2", "documents": [{"_id": i} for i in range(5)]})
    assert ids(run, "log2") == [0, 1, 2, 3, 4]
    assert run({"collStats": "log2"})["capped"] is False


def test_two_members_applying_the_same_log_hold_the_same_order() -> None:
    from node.commands.appliers import APPLIERS
    from node.commands.engine_ops import open_engine
    from node.engine.memory_store import MemoryStore

    entries: list[dict[str, Any]] = [
        {"op": "create", "db": "app", "coll": "log",
         "options": capped.parse_options({"capped": True, "size": 4096, "max": 50})}]
    entries += [{"op": "insert", "db": "app", "coll": "log", "docs": [{"_id": (i * 7) % 97}],
                 "ordered": True} for i in range(80)]
    orders = []
    for _ in range(2):
        engine = open_engine(MemoryStore())
        for entry in entries:
            with engine.store.write() as txn:
                APPLIERS[entry["op"]](engine, txn, dict(entry))
        coll = engine.collection("app", "log")
        orders.append([(pos, doc["_id"]) for pos, doc in coll.find_natural()])
    assert orders[0] == orders[1]
    assert [p for p, _ in orders[0]] == list(range(31, 81))
    assert [i for _, i in orders[0]] == [(i * 7) % 97 for i in range(30, 80)]


def test_no_capped_collection_means_no_capped_bookkeeping(run: Any) -> None:
    engine = run.dispatcher.services.engine
    run({"insert": "plain", "documents": [{"_id": 1}]})
    assert engine._any_capped is False
    run({"create": "log", "capped": True, "size": 4096})
    assert engine._any_capped is True
    engine.reload()
    assert engine.collection("app", "log").is_capped()


# --- tailable cursors ------------------------------------------------------------------------


def test_tailable_find_rules(run: Any) -> None:
    run({"insert": "plain", "documents": [{"_id": 1}]})
    assert run({"find": "plain", "tailable": True})["code"] == 2
    run({"create": "log", "capped": True, "size": 4096})
    assert run({"find": "log", "awaitData": True})["code"] == 9
    assert run({"find": "log", "tailable": True, "sort": {"_id": 1}})["code"] == 2
    empty = run({"find": "log", "tailable": True})
    assert empty["cursor"]["id"] == 0 and empty["cursor"]["firstBatch"] == []


def test_tailable_cursor_reads_new_documents_then_awaits(run: Any) -> None:
    import threading
    import time

    run({"create": "log", "capped": True, "size": 100000})
    run({"insert": "log", "documents": [{"_id": i, "even": i % 2 == 0} for i in range(3)]})
    first = run({"find": "log", "filter": {"even": True}, "tailable": True, "awaitData": True})
    cid = first["cursor"]["id"]
    assert cid != 0 and [d["_id"] for d in first["cursor"]["firstBatch"]] == [0, 2]
    assert first["cursor"]["postBatchResumeToken"] == {"$recordId": 3}
    empty = run({"getMore": cid, "collection": "log", "maxTimeMS": 50})
    assert empty["cursor"]["nextBatch"] == [] and empty["cursor"]["id"] == cid
    writer = threading.Timer(0.1, lambda: run({"insert": "log", "documents": [
        {"_id": 3, "even": False}, {"_id": 4, "even": True}]}))
    started = time.monotonic()
    writer.start()
    got = run({"getMore": cid, "collection": "log", "maxTimeMS": 10000})
    writer.join()
    assert [d["_id"] for d in got["cursor"]["nextBatch"]] == [4]
    assert time.monotonic() - started < 5  # woken by the write, not by the timeout
    assert run({"getMore": cid, "collection": "log"})["cursor"]["nextBatch"] == []
    # a non-awaitData tailable cursor refuses maxTimeMS on getMore
    plain = run({"find": "log", "tailable": True, "batchSize": 1})["cursor"]["id"]
    assert run({"getMore": plain, "collection": "log", "maxTimeMS": 10})["code"] == 2


def test_resume_after_and_capped_position_lost(run: Any) -> None:
    run({"create": "log", "capped": True, "size": 4096, "max": 3})
    run({"insert": "log", "documents": [{"_id": i} for i in range(3)]})
    first = run({"find": "log", "tailable": True, "batchSize": 1})
    cid = first["cursor"]["id"]
    token = first["cursor"]["postBatchResumeToken"]
    assert token == {"$recordId": 1}
    resumed = run({"find": "log", "tailable": True, "$_resumeAfter": token})
    assert [d["_id"] for d in resumed["cursor"]["firstBatch"]] == [1, 2]
    run({"insert": "log", "documents": [{"_id": i} for i in range(3, 6)]})  # 1..2 trimmed
    lost = run({"getMore": cid, "collection": "log"})
    assert lost["code"] == 136 and lost["codeName"] == "CappedPositionLost"
    assert run({"getMore": cid, "collection": "log"})["code"] == 43  # closed
    assert run({"find": "log", "tailable": True, "$_resumeAfter": token})["code"] == 136
    run({"drop": "log"})
    cid = resumed["cursor"]["id"]
    assert run({"getMore": cid, "collection": "log"})["code"] == 175


def test_waiting_get_mores_on_a_stream_hold_no_threads(run: Any) -> None:
    import threading

    d = run.dispatcher
    run({"create": "log", "capped": True, "size": 100000})
    run({"insert": "log", "documents": [{"_id": 0}]})
    ctx = RequestContext(deferred_replies=True, connection_id=7)
    cursors = [run({"find": "log", "tailable": True, "awaitData": True})["cursor"]["id"]
               for _ in range(100)]
    threads_before = threading.active_count()
    pending = [d.start("app", {"getMore": c, "collection": "log", "maxTimeMS": 60000}, ctx)
               for c in cursors]
    assert all(hasattr(p, "future") for p in pending)
    assert d.services.tail_waits.deferred == 100
    assert threading.active_count() <= threads_before + 1  # the one timer thread
    run({"insert": "log", "documents": [{"_id": 1}]})
    replies = [d.settle(p) for p in pending]
    assert all([doc["_id"] for doc in r["cursor"]["nextBatch"]] == [1] for r in replies)
    assert d.services.tail_waits.deferred == 0
    # the deadline answers with an empty batch
    p = d.start("app", {"getMore": cursors[0], "collection": "log", "maxTimeMS": 20}, ctx)
    assert d.settle(p)["cursor"]["nextBatch"] == []

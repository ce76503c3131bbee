"""Pipeline stages on a node (through the dispatcher): MongoDB's documented examples, the
rules on where stages may appear, index use, explain and let."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from node.commands.context import RequestContext
from node.server.standalone import standalone_dispatcher

CTX = RequestContext()
D = datetime.datetime


@pytest.fixture
def run() -> Any:
    d = standalone_dispatcher()

    def _run(cmd: dict[str, Any], db: str = "shop") -> dict[str, Any]:
        return d.run(db, cmd, CTX)

    _run({"insert": "sales", "documents": [
        {"_id": 1, "item": "abc", "price": 10, "quantity": 2, "date": D(2014, 3, 1, 8)},
        {"_id": 2, "item": "jkl", "price": 20, "quantity": 1, "date": D(2014, 3, 1, 9)},
        {"_id": 3, "item": "xyz", "price": 5, "quantity": 10, "date": D(2014, 3, 15, 9)},
        {"_id": 4, "item": "xyz", "price": 5, "quantity": 20, "date": D(2014, 4, 4, 11)},
        {"_id": 5, "item": "abc", "price": 10, "quantity": 10, "date": D(2014, 4, 4, 21)},
        {"_id": 6, "item": "def", "price": 7.5, "quantity": 5, "date": D(2015, 6, 4, 5)},
        {"_id": 7, "item": "def", "price": 7.5, "quantity": 10, "date": D(2015, 9, 10, 8)},
        {"_id": 8, "item": "abc", "price": 10, "quantity": 5, "date": D(2016, 2, 6, 20)},
    ]})
    _run({"insert": "inventory", "documents": [
        {"_id": 1, "sku": "abc", "instock": 120}, {"_id": 2, "sku": "def", "instock": 80},
        {"_id": 3, "sku": "ijk", "instock": 60}, {"_id": 4, "sku": "jkl", "instock": 70},
        {"_id": 5, "sku": None}, {"_id": 6}]})
    return _run


def agg(run: Any, pipeline: list[dict[str, Any]], coll: Any = "sales", **extra: Any
        ) -> list[dict[str, Any]]:
    reply = run({"aggregate": coll, "pipeline": pipeline, "cursor": {}, **extra})
    assert reply.get("ok") == 1.0, reply
    return reply["cursor"]["firstBatch"]


def code(run: Any, pipeline: list[dict[str, Any]], coll: Any = "sales", **extra: Any) -> int:
    reply = run({"aggregate": coll, "pipeline": pipeline, "cursor": {}, **extra})
    assert reply.get("ok") == 0.0, reply
    return int(reply["code"])


def test_group_by_item_having_sorted(run: Any) -> None:
    out = agg(run, [
        {"$group": {"_id": "$item",
                    "totalSaleAmount": {"$sum": {"$multiply": ["$price", "$quantity"]}}}},
        {"$match": {"totalSaleAmount": {"$gte": 100}}}, {"$sort": {"_id": 1}}])
    assert out == [{"_id": "abc", "totalSaleAmount": 170}, {"_id": "def",
                                                           "totalSaleAmount": 112.5},
                   {"_id": "xyz", "totalSaleAmount": 150}]
    out = agg(run, [
        {"$match": {"date": {"$gte": D(2014, 1, 1), "$lt": D(2015, 1, 1)}}},
        {"$group": {"_id": {"$dateToString": {"format": "%Y-%m-%d", "date": "$date"}},
                    "averageQuantity": {"$avg": "$quantity"}, "count": {"$sum": 1}}},
        {"$sort": {"_id": 1}}])
    assert out == [{"_id": "2014-03-01", "averageQuantity": 1.5, "count": 2},
                   {"_id": "2014-03-15", "averageQuantity": 10.0, "count": 1},
                   {"_id": "2014-04-04", "averageQuantity": 15.0, "count": 2}]
    out = agg(run, [{"$group": {"_id": None, "n": {"$count": {}},
                                "items": {"$addToSet": "$item"},
                                "first": {"$first": "$_id"}, "last": {"$last": "$_id"},
                                "sd": {"$stdDevPop": "$price"},
                                "top": {"$top": {"sortBy": {"quantity": -1},
                                                 "output": "$_id"}},
                                "bottom2": {"$bottomN": {"n": 2, "sortBy": {"quantity": -1},
                                                         "output": "$_id"}},
                                "median": {"$median": {"input": "$price",
                                                       "method": "approximate"}}}}])
    assert out[0]["n"] == 8 and sorted(out[0]["items"]) == ["abc", "def", "jkl", "xyz"]
    assert (out[0]["first"], out[0]["last"], out[0]["top"]) == (1, 8, 4)
    assert out[0]["bottom2"] == [1, 2] and out[0]["median"] == 7.5
    assert out[0]["sd"] == pytest.approx(4.4634, abs=1e-4)
    assert code(run, [{"$group": {"total": {"$sum": 1}}}]) == 15955
    assert code(run, [{"$group": {"_id": 1, "t": {"$bogus": 1}}}]) == 15952


def test_project_add_fields_unset_replace_root(run: Any) -> None:
    out = agg(run, [{"$match": {"_id": 1}}, {"$project": {"item": 1, "total": {
        "$multiply": ["$price", "$quantity"]}, "d": {"y": {"$year": "$date"}}}}])
    assert out == [{"_id": 1, "item": "abc", "total": 20, "d": {"y": 2014}}]
    out = agg(run, [{"$match": {"_id": 1}}, {"$project": {"_id": 0, "date": 0, "price": 0}}])
    assert out == [{"item": "abc", "quantity": 2}]
    assert code(run, [{"$project": {"a": 1, "b": 0}}]) == 31254
    out = agg(run, [{"$match": {"_id": 2}}, {"$set": {"meta.total": {
        "$multiply": ["$price", "$quantity"]}}}, {"$unset": ["date", "price"]}])
    assert out == [{"_id": 2, "item": "jkl", "quantity": 1, "meta": {"total": 20}}]
    out = agg(run, [{"$match": {"_id": 2}}, {"$replaceRoot": {"newRoot": {"i": "$item"}}}])
    assert out == [{"i": "jkl"}]
    assert code(run, [{"$replaceWith": "$item"}]) == 40228


def test_unwind_sort_by_count_bucket_facet(run: Any) -> None:
    run({"insert": "cl", "documents": [
        {"_id": 1, "item": "ABC", "sizes": ["S", "M", "L"]}, {"_id": 2, "item": "EFG",
                                                              "sizes": []},
        {"_id": 3, "item": "IJK", "sizes": "M"}, {"_id": 4, "item": "LMN"},
        {"_id": 5, "item": "XYZ", "sizes": None}]})
    out = agg(run, [{"$unwind": "$sizes"}], coll="cl")
    assert [(d["_id"], d["sizes"]) for d in out] == [(1, "S"), (1, "M"), (1, "L"), (3, "M")]
    out = agg(run, [{"$unwind": {"path": "$sizes", "preserveNullAndEmptyArrays": True,
                                 "includeArrayIndex": "idx"}}], coll="cl")
    assert [(d["_id"], d.get("sizes", "-"), d["idx"]) for d in out] == [
        (1, "S", 0), (1, "M", 1), (1, "L", 2), (2, "-", None), (3, "M", None), (4, "-", None),
        (5, None, None)]
    out = agg(run, [{"$unwind": "$sizes"}, {"$sortByCount": "$sizes"}], coll="cl")
    assert out[0] == {"_id": "M", "count": 2}
    out = agg(run, [{"$bucket": {"groupBy": "$price", "boundaries": [0, 8, 15],
                                 "default": "Other", "output": {"n": {"$sum": 1}}}}])
    assert out == [{"_id": 0, "n": 4}, {"_id": 8, "n": 3}, {"_id": "Other", "n": 1}]
    assert code(run, [{"$bucket": {"groupBy": "$price", "boundaries": [0, 8]}}]) == 40066
    assert code(run, [{"$bucket": {"groupBy": "$price", "boundaries": [8, 0]}}]) == 40194
    out = agg(run, [{"$bucketAuto": {"groupBy": "$_id", "buckets": 3}}])
    assert [b["count"] for b in out] == [3, 3, 2] and out[0]["_id"] == {"min": 1, "max": 4}
    out = agg(run, [{"$facet": {"n": [{"$count": "n"}],
                                "cheap": [{"$match": {"price": {"$lt": 7}}},
                                          {"$project": {"_id": 1}}]}}])
    assert out == [{"n": [{"n": 8}], "cheap": [{"_id": 3}, {"_id": 4}]}]
    assert code(run, [{"$facet": {"x": [{"$out": "t"}]}}]) == 40600


def test_lookup_forms_graph_lookup_union_with(run: Any) -> None:
    out = agg(run, [{"$match": {"_id": {"$in": [1, 2]}}}, {"$lookup": {
        "from": "inventory", "localField": "item", "foreignField": "sku", "as": "inv"}},
        {"$project": {"inv._id": 1}}])
    assert out == [{"_id": 1, "inv": [{"_id": 1}]}, {"_id": 2, "inv": [{"_id": 4}]}]
    out = agg(run, [{"$match": {"_id": 1}}, {"$lookup": {
        "from": "inventory", "let": {"want": "$quantity", "sku": "$item"},
        "pipeline": [{"$match": {"$expr": {"$and": [{"$eq": ["$sku", "$$sku"]},
                                                    {"$gte": ["$instock", "$$want"]}]}}},
                     {"$project": {"_id": 0, "instock": 1}}], "as": "stock"}},
        {"$project": {"stock": 1}}])
    assert out == [{"_id": 1, "stock": [{"instock": 120}]}]
    # a missing local field matches null and missing foreign fields
    run({"insert": "orphans", "documents": [{"_id": 1}]})
    out = agg(run, [{"$lookup": {"from": "inventory", "localField": "sku",
                                 "foreignField": "sku", "as": "m"}}], coll="orphans")
    assert [d["_id"] for d in out[0]["m"]] == [5, 6]
    assert code(run, [{"$lookup": {"from": "x", "pipeline": [{"$out": "y"}], "as": "a"}}]
                ) == 51047
    run({"insert": "emp", "documents": [
        {"_id": 1, "name": "Dev"}, {"_id": 2, "name": "Eliot", "reportsTo": "Dev"},
        {"_id": 3, "name": "Ron", "reportsTo": "Eliot"},
        {"_id": 4, "name": "Andrew", "reportsTo": "Eliot"},
        {"_id": 5, "name": "Asya", "reportsTo": "Ron"}]})
    out = agg(run, [{"$match": {"name": "Asya"}}, {"$graphLookup": {
        "from": "emp", "startWith": "$reportsTo", "connectFromField": "reportsTo",
        "connectToField": "name", "as": "chain", "depthField": "depth"}}], coll="emp")
    assert sorted((d["name"], d["depth"]) for d in out[0]["chain"]) == [
        ("Dev", 2), ("Eliot", 1), ("Ron", 0)]
    out = agg(run, [{"$project": {"item": 1}}, {"$unionWith": {
        "coll": "inventory", "pipeline": [{"$project": {"sku": 1}}, {"$limit": 1}]}},
        {"$skip": 8}])
    assert out == [{"_id": 1, "sku": "abc"}]


def test_positions_documents_sample_redact_count(run: Any) -> None:
    assert code(run, [{"$out": "a"}, {"$match": {}}]) == 40601
    assert code(run, [{"$match": {}}, {"$documents": []}]) == 40602
    assert code(run, [{"$bogus": {}}]) == 40324
    assert code(run, [{"$match": {}, "$sort": {"a": 1}}]) == 40323
    out = agg(run, [{"$documents": [{"x": 1}, {"x": 2}]}, {"$match": {"x": 2}}], coll=1)
    assert out == [{"x": 2}]
    assert len(agg(run, [{"$sample": {"size": 3}}])) == 3
    assert len(agg(run, [{"$sample": {"size": 30}}])) == 8
    out = agg(run, [{"$match": {"_id": 1}}, {"$redact": {"$cond": {
        "if": {"$eq": ["$item", "abc"]}, "then": "$$KEEP", "else": "$$PRUNE"}}}])
    assert len(out) == 1
    assert agg(run, [{"$match": {"price": 5}}, {"$count": "n"}]) == [{"n": 2}]
    assert agg(run, [{"$match": {"price": 500}}, {"$count": "n"}]) == []
    assert code(run, [{"$count": "$n"}]) == 40158
    assert code(run, [{"$limit": 0}]) == 15958 and code(run, [{"$skip": -1}]) == 15956


def test_leading_match_and_sort_use_an_index_and_explain(run: Any) -> None:
    run({"createIndexes": "sales", "indexes": [{"key": {"item": 1, "quantity": -1},
                                                "name": "item_qty"}]})
    reply = run({"aggregate": "sales", "explain": True, "pipeline": [
        {"$match": {"item": "abc"}}, {"$sort": {"quantity": -1}}, {"$limit": 2},
        {"$project": {"quantity": 1}}]})
    first = reply["stages"][0]["$cursor"]["queryPlanner"]["winningPlan"]
    assert "item_qty" in repr(first) and "SORT" not in repr(first)
    assert reply["stages"][1:] == [{"$limit": 2}, {"$project": {"quantity": 1}}]
    out = agg(run, [{"$match": {"item": "abc"}}, {"$sort": {"quantity": -1}}, {"$limit": 2},
                    {"$project": {"quantity": 1}}])
    assert out == [{"_id": 5, "quantity": 10}, {"_id": 8, "quantity": 5}]


def test_let_and_expr_in_find_update_delete(run: Any) -> None:
    out = agg(run, [{"$match": {"$expr": {"$gt": ["$quantity", "$$min"]}}},
                    {"$project": {"_id": 1}}], let={"min": 10})
    assert out == [{"_id": 4}]
    reply = run({"find": "sales", "filter": {"$expr": {"$lt": ["$price", "$quantity"]}},
                 "projection": {"_id": 1}})
    assert [d["_id"] for d in reply["cursor"]["firstBatch"]] == [3, 4, 7]
    reply = run({"update": "sales", "updates": [{"q": {"$expr": {"$eq": ["$price", 20]}},
                                                 "u": {"$set": {"hot": True}}}]})
    assert reply["nModified"] == 1
    reply = run({"delete": "sales", "deletes": [{"q": {"$jsonSchema": {
        "properties": {"price": {"bsonType": "double"}}, "required": ["price"]}},
        "limit": 0}]})
    assert reply["n"] == 2
    reply = run({"find": "sales", "filter": {"$expr": {"$lt": [{"$rand": {}}, 2]}}})
    assert len(reply["cursor"]["firstBatch"]) == 6


def test_out_replaces_the_target_keeping_its_indexes(run: Any) -> None:
    run({"insert": "report", "documents": [{"_id": "old"}]})
    run({"createIndexes": "report", "indexes": [{"key": {"total": 1}, "name": "total_1"}]})
    reply = run({"aggregate": "sales", "cursor": {}, "pipeline": [
        {"$group": {"_id": "$item", "total": {"$sum": "$quantity"}}}, {"$out": "report"}]})
    assert reply["ok"] == 1.0 and reply["cursor"]["firstBatch"] == []
    docs = run({"find": "report", "sort": {"_id": 1}})["cursor"]["firstBatch"]
    assert docs == [{"_id": "abc", "total": 17}, {"_id": "def", "total": 15},
                    {"_id": "jkl", "total": 1}, {"_id": "xyz", "total": 30}]
    names = [ix["name"] for ix in run({"listIndexes": "report"})["cursor"]["firstBatch"]]
    assert names == ["_id_", "total_1"]
    # a failing $out (duplicate key) leaves the target as it was
    bad = run({"aggregate": "sales", "cursor": {}, "pipeline": [
        {"$project": {"_id": "$item"}}, {"$out": "report"}]})
    assert bad["ok"] == 0.0 and bad["code"] == 11000
    assert len(run({"find": "report"})["cursor"]["firstBatch"]) == 4
    colls = [c["name"] for c in run({"listCollections": 1})["cursor"]["firstBatch"]]
    assert not any(c.startswith("tmp.") for c in colls)


def test_merge_modes(run: Any) -> None:
    run({"insert": "totals", "documents": [{"_id": "abc", "total": 0, "keep": 1}]})
    base = [{"$group": {"_id": "$item", "total": {"$sum": "$quantity"}}}]

    def merge(**spec: Any) -> dict[str, Any]:
        return run({"aggregate": "sales", "cursor": {},
                    "pipeline": [*base, {"$merge": {"into": "totals", **spec}}]})

    assert merge(whenMatched="fail")["code"] == 11000
    assert merge(whenMatched="keepExisting", whenNotMatched="discard")["ok"] == 1.0
    assert run({"count": "totals"})["n"] == 1
    assert merge()["ok"] == 1.0  # merge + insert
    docs = {d["_id"]: d for d in run({"find": "totals"})["cursor"]["firstBatch"]}
    assert docs["abc"] == {"_id": "abc", "total": 17, "keep": 1} and len(docs) == 4
    assert merge(whenMatched="replace")["ok"] == 1.0
    docs = {d["_id"]: d for d in run({"find": "totals"})["cursor"]["firstBatch"]}
    assert docs["abc"] == {"_id": "abc", "total": 17}
    assert merge(whenMatched=[{"$set": {"total": {"$add": ["$total", "$$new.total"]},
                                        "at": "$$NOW"}}])["ok"] == 1.0
    docs = {d["_id"]: d for d in run({"find": "totals"})["cursor"]["firstBatch"]}
    assert docs["abc"]["total"] == 34 and isinstance(docs["abc"]["at"], datetime.datetime)
    run({"delete": "totals", "deletes": [{"q": {"_id": "xyz"}, "limit": 1}]})
    assert merge(whenNotMatched="fail")["code"] == 13113
    assert merge(on="total")["code"] == 51183
    assert run({"aggregate": "sales", "cursor": {}, "pipeline": [
        {"$merge": {"into": "t", "whenMatched": "bogus"}}]})["code"] == 2


def test_allow_disk_use_spills_sort_and_group(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("HELOGALE_SPILL_DIR", str(tmp_path))
    d = standalone_dispatcher(max_sort_bytes=20_000)

    def run(cmd: dict[str, Any]) -> dict[str, Any]:
        return d.run("app", cmd, CTX)

    run({"insert": "big", "documents": [{"_id": i, "v": (i * 7919) % 1000, "g": i % 300,
                                         "pad": "x" * 200} for i in range(1000)]})
    sort = [{"$sort": {"v": 1, "_id": 1}}, {"$project": {"v": 1}}]
    assert run({"aggregate": "big", "pipeline": sort, "cursor": {}})["code"] == 292
    reply = run({"aggregate": "big", "pipeline": sort, "cursor": {"batchSize": 1000},
                 "allowDiskUse": True})
    got = [(x["v"], x["_id"]) for x in reply["cursor"]["firstBatch"]]
    assert got == sorted(((i * 7919) % 1000, i) for i in range(1000))
    group = [{"$group": {"_id": "$g", "n": {"$sum": 1}, "ids": {"$push": "$_id"},
                         "avg": {"$avg": "$v"}}}, {"$sort": {"_id": 1}}]
    assert run({"aggregate": "big", "pipeline": group, "cursor": {}})["code"] == 292
    reply = run({"aggregate": "big", "pipeline": group, "cursor": {"batchSize": 1000},
                 "allowDiskUse": True})
    out = reply["cursor"]["firstBatch"]
    assert len(out) == 300 and all(g["n"] == len(g["ids"]) for g in out)
    assert sorted(i for g in out for i in g["ids"]) == list(range(1000))
    assert out[5]["ids"] == [5, 305, 605, 905]
    assert list(tmp_path.iterdir()) == []  # runs removed afterwards


def test_set_window_fields_densify_fill(run: Any) -> None:
    out = agg(run, [{"$setWindowFields": {
        "partitionBy": "$item", "sortBy": {"date": 1},
        "output": {"running": {"$sum": "$quantity",
                               "window": {"documents": ["unbounded", "current"]}},
                   "total": {"$sum": "$quantity"}, "rank": {"$rank": {}},
                   "prev": {"$shift": {"output": "$quantity", "by": -1, "default": 0}},
                   "avg2": {"$avg": "$quantity", "window": {"documents": [-1, 0]}}}}},
        {"$match": {"item": "abc"}}, {"$project": {"running": 1, "total": 1, "rank": 1,
                                                   "prev": 1, "avg2": 1}}])
    assert out == [
        {"_id": 1, "running": 2, "total": 17, "rank": 1, "prev": 0, "avg2": 2.0},
        {"_id": 5, "running": 12, "total": 17, "rank": 2, "prev": 2, "avg2": 6.0},
        {"_id": 8, "running": 17, "total": 17, "rank": 3, "prev": 10, "avg2": 7.5}]
    out = agg(run, [{"$setWindowFields": {"sortBy": {"_id": 1}, "output": {
        "near": {"$sum": 1, "window": {"range": [-1, 1]}},
        "dn": {"$denseRank": {}}, "ema": {"$expMovingAvg": {"input": "$price", "N": 2}}}}},
        {"$limit": 2}])
    assert [(d["near"], d["dn"]) for d in out] == [(2, 1), (3, 2)]
    assert out[1]["ema"] == pytest.approx(10 + 2 / 3 * 10)
    run({"insert": "temps", "documents": [{"_id": 1, "t": 0, "v": 1.0}, {"_id": 2, "t": 4,
                                                                          "v": None},
                                          {"_id": 3, "t": 6, "v": 4.0}]})
    out = agg(run, [{"$fill": {"sortBy": {"t": 1}, "output": {"v": {"method": "linear"}}}}],
              coll="temps")
    assert [d["v"] for d in out] == [1.0, 3.0, 4.0]
    out = agg(run, [{"$fill": {"sortBy": {"t": 1}, "output": {"v": {"method": "locf"}}}}],
              coll="temps")
    assert [d["v"] for d in out] == [1.0, 1.0, 4.0]
    out = agg(run, [{"$densify": {"field": "t", "range": {"step": 2, "bounds": "full"}}},
                    {"$project": {"_id": 0, "t": 1}}], coll="temps")
    assert [d["t"] for d in out] == [0, 2, 4, 6]
    assert code(run, [{"$setWindowFields": {"output": {"r": {"$rank": {}}}}}]) == 5371602


def test_pipeline_style_updates_with_constants(run: Any) -> None:
    reply = run({"update": "sales", "updates": [
        {"q": {"_id": 1}, "u": [{"$set": {"total": {"$multiply": ["$price", "$quantity"]},
                                          "tag": "$$t", "at": "$$NOW"}},
                                {"$unset": "date"}], "c": {"t": "x"}}]})
    assert reply["nModified"] == 1, reply
    doc = run({"find": "sales", "filter": {"_id": 1}})["cursor"]["firstBatch"][0]
    assert doc["total"] == 20 and doc["tag"] == "x" and "date" not in doc
    assert isinstance(doc["at"], datetime.datetime) and next(iter(doc)) == "_id"
    reply = run({"update": "sales", "updates": [
        {"q": {"_id": 99}, "u": [{"$set": {"n": {"$add": [1, 2]}}}], "upsert": True}]})
    assert reply["upserted"][0]["_id"] == 99
    assert run({"find": "sales", "filter": {"_id": 99}})["cursor"]["firstBatch"] == [
        {"_id": 99, "n": 3}]
    bad = run({"update": "sales", "updates": [{"q": {"_id": 2}, "u": [{"$set": {"_id": 5}}]}]})
    assert bad["writeErrors"][0]["code"] == 66
    bad = run({"update": "sales", "updates": [{"q": {"_id": 2}, "u": [{"$group": {"_id": 1}}]}]})
    assert bad.get("code", 0) == 72 or bad["writeErrors"][0]["code"] == 72
    bad = run({"update": "sales", "updates": [{"q": {}, "u": {"$set": {"a": 1}}, "c": {}}]})
    assert bad["ok"] == 0.0

"""Differential test of the router: a sharded collection (7 chunks over 2 shards) and an
unsharded twin holding the same documents must answer the same queries, counts, distincts,
aggregations and writes the same way, through pymongo (MongoDB wire protocol, routers'
``wire_uri``) and through the helogale client (gRPC, routers' ``uri``).

Cases come from a seeded generator (``HELOGALE_DIFF_SEED`` overrides the seed); a failure
names the seed and the case. Where MongoDB leaves an order open (no sort, ties of a sort,
``$group`` output, ``$push`` under a ``$group`` without a total sort) results are compared as
multisets, tie groups at a ``skip``/``limit`` boundary only as a subset of the whole group.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import bson
import pymongo
import pymongo.errors
import pytest
from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex
from pymongo import ReturnDocument
from pymongo.read_preferences import ReadPreference

import helogale
import helogale.errors
from node.engine.keystring import encode_key
from node.engine.sorting import Sort
from node.local_cluster import wait_until
from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok

pytestmark = pytest.mark.cluster

DB = "diff"
N_DOCS = 300
SEED = int(os.environ.get("HELOGALE_DIFF_SEED", "20240909"))
QUERIES = 250
SLOW_QUERIES = 1500

WORDS = ["apple", "apricot", "banana", "blueberry", "cherry", "Apple", "", "date", "fig"]
TAGS = ["red", "green", "blue", "black", "white"]
SORT_FIELDS = ["a", "b", "c.x", "c", "n", "f", "arr", "tags", "items.v", "u", "_id"]
ARRAY_FIELDS = {"arr", "tags", "items.v", "c.x"}
ERRORS = (pymongo.errors.OperationFailure, helogale.errors.OperationFailure)


# --- the data ---------------------------------------------------------------------------------


def make_id(i: int) -> Any:
    """``_id``s of six types, so the documents spread over chunks of every kind."""
    kind = i % 6
    if kind == 0:
        return i
    if kind == 1:
        return i + 0.5
    if kind == 2:
        return f"s{i:04d}"
    if kind == 3:
        return ObjectId(f"{i:024x}")
    if kind == 4:
        return Int64(i)
    return {"k": i % 7, "i": i}


SPLITS: list[Any] = [75, 150, 225, "s0150", {"k": 3, "i": 0}, ObjectId(f"{150:024x}")]
"""Split points: 7 chunks (numbers x4, strings, documents, ObjectIds)."""


def make_doc(rng: random.Random, i: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": make_id(i), "u": i}
    r = rng.random()
    if r < 0.1:
        pass
    elif r < 0.15:
        doc["a"] = None
    elif r < 0.25:
        doc["a"] = rng.choice([2.5, 7.5, -1.5])
    else:
        doc["a"] = rng.randrange(10)
    r = rng.random()
    if r < 0.1:
        pass
    elif r < 0.13:
        doc["b"] = None
    elif r < 0.16:
        doc["b"] = rng.randrange(3)
    else:
        doc["b"] = rng.choice(WORDS)
    r = rng.random()
    if r < 0.15:
        pass
    elif r < 0.2:
        doc["c"] = "scalar"
    elif r < 0.25:
        doc["c"] = {}
    elif r < 0.32:
        doc["c"] = {"x": [rng.randrange(20), rng.randrange(20)], "y": "q"}
    else:
        doc["c"] = {"x": rng.randrange(20), "y": rng.choice(WORDS)}
    r = rng.random()
    if r < 0.1:
        pass
    elif r < 0.15:
        doc["arr"] = None
    elif r < 0.2:
        doc["arr"] = []
    elif r < 0.3:
        doc["arr"] = rng.randrange(10)
    elif r < 0.33:
        doc["arr"] = [[rng.randrange(10), rng.randrange(10)], rng.randrange(10)]
    else:
        doc["arr"] = [rng.randrange(10) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.7:
        doc["tags"] = rng.sample(TAGS, rng.randint(0, 3))
    if rng.random() < 0.7:
        doc["items"] = [{"k": rng.choice("abc"), "v": rng.randrange(10)}
                        for _ in range(rng.randint(0, 3))]
    choices: list[Callable[[], Any]] = [
        lambda: rng.randrange(100), lambda: rng.randrange(100) + 0.25,
        lambda: rng.choice(WORDS), lambda: rng.random() < 0.5, lambda: None,
        lambda: ObjectId(f"{rng.randrange(1000):024x}"), lambda: [1, "x"],
        lambda: {"z": rng.randrange(3)},
        lambda: dt.datetime(2024, 1, 1) + dt.timedelta(hours=rng.randrange(1000)),
    ]
    if rng.random() < 0.85:
        doc["n"] = rng.choice(choices)()
    if rng.random() < 0.8:
        doc["f"] = round(rng.uniform(-100, 100), 2)
    return doc


def make_docs(seed: int = SEED, n: int = N_DOCS) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [make_doc(rng, i) for i in range(n)]


# --- the cluster --------------------------------------------------------------------------------


def router(cluster: ShardedCluster, cmd: dict[str, Any], db: str = "admin", i: int = 0
           ) -> dict[str, Any]:
    return ok(cluster.router_command(i, cmd, db=db))


def chunk_docs(cluster: ShardedCluster, ns: str) -> list[dict[str, Any]]:
    return router(cluster, {"find": "chunks", "filter": {"ns": ns}, "sort": {"min": 1}},
                  db="config")["cursor"]["firstBatch"]


def make_sharded(cluster: ShardedCluster, coll: str, docs: list[dict[str, Any]]) -> None:
    """``DB.coll`` sharded by ``_id``, split at :data:`SPLITS`, chunks 1, 3 and 5 moved (empty)
    to the shard that is not the database's primary, ``docs`` inserted, then chunk 6 moved
    with its documents: 7 chunks, 3 on one shard and 4 on the other."""
    ns = f"{DB}.{coll}"
    router(cluster, {"shardCollection": ns, "key": {"_id": 1}})
    for point in SPLITS:
        router(cluster, {"split": ns, "middle": {"_id": point}})
    chunks = chunk_docs(cluster, ns)
    assert len(chunks) == len(SPLITS) + 1
    home = chunks[0]["shard"]
    other = next(s["_id"] for s in router(cluster, {"listShards": 1})["shards"]
                 if s["_id"] != home)
    for k in (1, 3, 5):
        router(cluster, {"moveChunk": ns, "bounds": [chunks[k]["min"], chunks[k]["max"]],
                         "to": other, "_waitForDelete": True})
    router(cluster, {"insert": coll, "documents": docs}, db=DB)
    router(cluster, {"moveChunk": ns, "bounds": [chunks[6]["min"], chunks[6]["max"]],
                     "to": other, "_waitForDelete": True})
    owners = [c["shard"] for c in chunk_docs(cluster, ns)]
    assert owners.count(home) == 3 and owners.count(other) == 4, owners


def make_plain(cluster: ShardedCluster, coll: str, docs: list[dict[str, Any]]) -> None:
    router(cluster, {"insert": coll, "documents": docs}, db=DB)


@dataclass
class Pair:
    """The sharded collection and its unsharded twin, seen through both clients."""

    cluster: ShardedCluster
    docs: list[dict[str, Any]]
    by_key: dict[bytes, dict[str, Any]]
    clients: dict[str, Any]
    names: tuple[str, str]

    def colls(self, client: str) -> tuple[Any, Any]:
        db = self.clients[client][DB]
        return db[self.names[0]], db[self.names[1]]

    def full(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        return self.by_key[encode_key(doc["_id"])]


@pytest.fixture(scope="module")
def clients(sharded: ShardedCluster) -> Iterator[dict[str, Any]]:
    assert sharded.wire_uri
    mongo = pymongo.MongoClient(sharded.wire_uri, serverSelectionTimeoutMS=30_000)
    helo = helogale.MongoClient(sharded.uri)
    try:
        yield {"pymongo": mongo, "helogale": helo}
    finally:
        mongo.close()
        helo.close()


def build_pair(cluster: ShardedCluster, clients: dict[str, Any], name: str) -> Pair:
    docs = make_docs()
    make_sharded(cluster, f"{name}_sharded", docs)
    make_plain(cluster, f"{name}_plain", docs)
    by_key = {encode_key(d["_id"]): d for d in docs}
    return Pair(cluster, docs, by_key, clients, (f"{name}_sharded", f"{name}_plain"))


@pytest.fixture(scope="module")
def pair(sharded: ShardedCluster, clients: dict[str, Any]) -> Pair:
    return build_pair(sharded, clients, "q")


# --- comparing --------------------------------------------------------------------------------


def canon(value: Any) -> bytes:
    """Exact identity of a document or value (types, field order)."""
    return bson.encode({"v": value})


def multiset(docs: list[Any]) -> collections.Counter[bytes]:
    return collections.Counter(canon(d) for d in docs)


def attempt(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except ERRORS as exc:
        return "error", exc.code


def same_outcome(got: tuple[str, Any], ref: tuple[str, Any], what: str) -> bool:
    """Both failed with the same code (True: nothing more to compare) or both answered."""
    if got[0] == "error" or ref[0] == "error":
        assert got == ref, f"{what}: sharded {got}, unsharded {ref}"
        return True
    return False


# --- find --------------------------------------------------------------------------------------


def id_value(rng: random.Random) -> Any:
    return make_id(rng.randrange(N_DOCS + 20))


def id_atom(rng: random.Random) -> dict[str, Any]:
    """Conditions on ``_id``: what the router's targeting reads."""
    v = rng.randrange(N_DOCS)
    return rng.choice([
        {"_id": float(v - v % 6)}, {"_id": Int64(v - v % 6)}, {"_id": Decimal128(str(v))},
        {"_id": {"$eq": id_value(rng)}}, {"_id": {"$ne": id_value(rng)}},
        {"_id": {"$nin": [id_value(rng), id_value(rng)]}},
        {"_id": {"$not": {"$lt": v}}}, {"_id": {"$in": []}}, {"_id": None},
        {"_id": {"$regex": f"^s0{rng.randrange(3)}"}}, {"_id": Regex(f"^s00{rng.randrange(9)}")},
        {"_id": {"$in": [Regex("^s01"), v, id_value(rng)]}},
        {"_id": {"$type": rng.choice(["objectId", "string", "object", "double", "long"])}},
        {"_id": {"$exists": True}}, {"_id": {"$gt": v, "$lt": f"s{v:04d}"}},
        {"_id": {"$gte": MinKey(), "$lt": v}}, {"_id": {"$gt": id_value(rng), "$lte": MaxKey()}},
        {"_id.k": rng.randrange(7)}, {"_id": {"k": v % 7, "i": v - v % 6 + 5}},
        {"_id": {"$gte": {"k": rng.randrange(7)}}},
        {"_id": {"$gt": ObjectId(f"{v:024x}")}},
        {"$and": [{"_id": {"$gte": v}}, {"_id": {"$lt": v + 50}}]},
        {"$or": [{"_id": id_value(rng)}, {"_id": {"$gt": id_value(rng)}}]},
        {"$nor": [{"_id": {"$lt": v}}, {"a": 1}]},
    ])


def atom(rng: random.Random) -> dict[str, Any]:
    k = rng.randrange(26)
    if k >= 22:
        return id_atom(rng) if k < 25 else rng.choice([
            {"arr": {"$size": rng.randrange(4)}}, {"tags": {"$all": rng.sample(TAGS, 2)}},
            {"a": {"$ne": rng.randrange(5)}}, {"b": {"$nin": ["apple", None]}},
            {"f": {"$not": {"$gt": 0}}}, {"b": {"$regex": "an", "$options": "i"}}])
    if k == 0:
        return {"a": rng.choice([0, 1, 2, 5, 2.5, None])}
    if k == 1:
        return {"a": {"$in": rng.sample([0, 1, 2, 3, 4, 7.5, None], rng.randint(1, 3))}}
    if k == 2:
        lo = rng.randrange(10)
        return {"a": {"$gte": lo, "$lt": lo + rng.randint(1, 5)}}
    if k == 3:
        return {"_id": id_value(rng)}
    if k == 4:
        return {"_id": {"$in": [id_value(rng) for _ in range(rng.randint(1, 4))]}}
    if k == 5:
        lo = rng.randrange(N_DOCS)
        return {"_id": {"$gte": lo, "$lt": lo + rng.randint(1, 120)}}
    if k == 6:
        return {"_id": {rng.choice(["$gt", "$lte"]): id_value(rng)}}
    if k == 7:
        return {rng.choice(["b", "c", "arr", "n", "f"]): {"$exists": rng.random() < 0.5}}
    if k == 8:
        return {"b": {"$regex": rng.choice(["^ap", "^b", "^A", "^"])}}
    if k == 9:
        return {"c.x": {rng.choice(["$lte", "$gt", "$eq"]): rng.randrange(20)}}
    if k == 10:
        return {"arr": rng.randrange(10)}
    if k == 11:
        lo = rng.randrange(8)
        return {"arr": {"$elemMatch": {"$gte": lo, "$lt": lo + 3}}}
    if k == 12:
        return {"items": {"$elemMatch": {"k": rng.choice("abc"),
                                         "v": {"$gte": rng.randrange(10)}}}}
    if k == 13:
        return {"items.k": rng.choice("abcd")}
    if k == 14:
        return {"n": rng.choice([None, True, "apple", 5, {"z": 1}, [1, "x"]])}
    if k == 15:
        return {"tags": rng.choice(TAGS)}
    if k == 16:
        return {"f": {rng.choice(["$gt", "$lt"]): rng.uniform(-100, 100)}}
    if k == 17:
        return {"u": {"$lt": rng.randrange(N_DOCS)}}
    if k == 18:
        return {"$or": [atom(rng), atom(rng)]}
    if k == 19:
        return {"$and": [atom(rng), atom(rng)]}
    if k == 20:
        return {"b": rng.choice([*WORDS, None])}
    return {"n": {"$type": rng.choice(["string", "number", "bool", "array", "object"])}}


def gen_filter(rng: random.Random) -> dict[str, Any]:
    r = rng.random()
    if r < 0.12:
        return {}
    if r < 0.75:
        return atom(rng)
    out: dict[str, Any] = {}
    for _ in range(rng.randint(2, 3)):
        for key, value in atom(rng).items():
            out.setdefault(key, value)
    return out


def gen_sort(rng: random.Random) -> list[tuple[str, int]] | None:
    r = rng.random()
    if r < 0.3:
        return None
    n = 1 if r < 0.6 else rng.randint(2, 3)
    fields: list[str] = []
    arrays = 0
    for name in rng.sample(SORT_FIELDS, len(SORT_FIELDS)):
        if len(fields) == n:
            break
        if name in ARRAY_FIELDS:
            if arrays and rng.random() < 0.9:  # two array fields: parallel arrays, rarely
                continue
            arrays += 1
        fields.append(name)
    out = [(name, rng.choice([1, -1])) for name in fields]
    if rng.random() < 0.3 and not any(name in ("_id", "u") for name, _ in out):
        out.append(("_id", rng.choice([1, -1])))
    return out


def gen_projection(rng: random.Random, filt: Mapping[str, Any]) -> dict[str, Any] | None:
    options: list[dict[str, Any] | None] = [
        None, None, None, {"a": 1, "b": 1}, {"a": 1, "_id": 0}, {"arr": 0, "items": 0},
        {"c.x": 1, "u": 1}, {"arr": {"$slice": 2}}, {"arr": {"$slice": [1, 2]}, "u": 1},
        {"items": {"$elemMatch": {"k": "a"}}, "a": 1}, {"_id": 0}, {"tags": {"$slice": -1}},
        {"ta": {"$type": "$a"}, "u": 1}, {"x": "$c.x", "_id": 0, "u": 1},
    ]
    # ".$" is defined only when the query's one array condition is on the projected array
    if list(filt) == ["arr"] and not isinstance(filt["arr"], Mapping):
        options.append({"arr.$": 1, "u": 1})
    if list(filt) == ["items"]:
        options.append({"items.$": 1})
    return rng.choice(options)


@dataclass
class FindCase:
    filter: dict[str, Any]
    sort: list[tuple[str, int]] | None
    projection: dict[str, Any] | None
    skip: int
    limit: int
    batch_size: int
    keyer: Sort | None = field(default=None, repr=False)

    @property
    def total(self) -> bool:
        """The sort orders every document (a unique field in it)."""
        return bool(self.sort) and any(name in ("_id", "u") for name, _ in self.sort or ())

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"skip": self.skip, "limit": self.limit,
                               "batch_size": self.batch_size}
        if self.sort:
            out["sort"] = self.sort
        return out


def gen_find(rng: random.Random) -> FindCase:
    filt = gen_filter(rng)
    sort = gen_sort(rng)
    projection = gen_projection(rng, filt)
    hides_id = projection is not None and projection.get("_id") == 0
    if sort and not any(n in ("_id", "u") for n, _ in sort) and hides_id:
        sort = [*sort, ("_id", 1)]  # ties could not be told apart without _id
    skip = rng.choice([0, 0, 0, 0, 1, 3, 10, 40])
    limit = rng.choice([0, 0, 0, 1, 2, 5, 10, 30, -1, -4, -12])
    batch_size = rng.choice([0, 0, 0, 1, 2, 3, 7, 20])
    case = FindCase(filt, sort, projection, skip, limit, batch_size)
    case.keyer = Sort(sort) if sort else None
    return case


def run_find(coll: Any, case: FindCase, *, window: bool = True) -> tuple[str, Any]:
    if window:
        return attempt(lambda: list(coll.find(case.filter, case.projection, **case.kwargs())))
    kwargs = {"sort": case.sort} if case.sort else {}
    return attempt(lambda: list(coll.find(case.filter, case.projection, **kwargs)))


def check_find(pair: Pair, case: FindCase, got: list[dict[str, Any]],
               ref: list[dict[str, Any]], whole: Callable[[], list[dict[str, Any]]]) -> None:
    """``got`` answers ``case`` as ``ref`` does (``whole()``: the answer without skip and
    limit, for the groups a window may cut)."""
    windowed = bool(case.skip or case.limit)
    if not case.sort:
        if not windowed:
            assert multiset(got) == multiset(ref)
        else:
            assert len(got) == len(ref)
            assert not multiset(got) - multiset(whole()), "documents outside the answer"
        return
    if case.total:
        assert [canon(d) for d in got] == [canon(d) for d in ref]
        return
    assert case.keyer is not None
    key = case.keyer.key_bytes
    keys_got = [key(pair.full(d)) for d in got]
    keys_ref = [key(pair.full(d)) for d in ref]
    assert keys_got == keys_ref, "not in sort order"
    groups: dict[bytes, list[dict[str, Any]]] = collections.defaultdict(list)
    for k, d in zip(keys_got, got, strict=True):
        groups[k].append(d)
    ref_groups: dict[bytes, list[dict[str, Any]]] = collections.defaultdict(list)
    for k, d in zip(keys_ref, ref, strict=True):
        ref_groups[k].append(d)
    edges = {keys_got[0], keys_got[-1]} if windowed and keys_got else set()
    whole_groups: dict[bytes, list[dict[str, Any]]] | None = None
    for k, docs in groups.items():
        if k not in edges:
            assert multiset(docs) == multiset(ref_groups[k]), "a tie group differs"
            continue
        if whole_groups is None:
            whole_groups = collections.defaultdict(list)
            for d in whole():
                whole_groups[key(pair.full(d))].append(d)
        assert not multiset(docs) - multiset(whole_groups[k]), "a tie group holds strangers"


def find_cases(seed: int, n: int) -> list[FindCase]:
    rng = random.Random(seed)
    return [gen_find(rng) for _ in range(n)]


def run_find_cases(pair: Pair, seed: int, n: int) -> dict[str, int]:
    stats = collections.Counter()
    for number, case in enumerate(find_cases(seed, n)):
        client = "pymongo" if number % 2 == 0 else "helogale"
        other = "helogale" if client == "pymongo" else "pymongo"
        sharded, plain = pair.colls(client)
        got = run_find(sharded, case)
        ref = run_find(plain, case)
        where = f"seed {seed} case {number} via {client}: {case}"
        try:
            if same_outcome(got, ref, where):
                stats["error"] += 1
                continue
            check_find(pair, case, got[1], ref[1],
                       lambda plain=plain, case=case: run_find(plain, case, window=False)[1])
            # the other client reads the sharded collection the same way
            again = run_find(pair.colls(other)[0], case)
            assert again[0] == "ok", again
            check_find(pair, case, again[1], ref[1],
                       lambda plain=plain, case=case: run_find(plain, case, window=False)[1])
        except AssertionError as exc:
            raise AssertionError(f"{where}\n{exc}\nsharded: {got}\nunsharded: {ref}") from exc
        stats["docs"] += len(got[1])
        stats["ok"] += 1
    return dict(stats)


def test_find_matches_unsharded(pair: Pair) -> None:
    stats = run_find_cases(pair, SEED, QUERIES)
    assert stats["ok"] > QUERIES * 0.8 and stats["docs"] > QUERIES * 5, stats


@pytest.mark.slow
def test_find_matches_unsharded_many(pair: Pair) -> None:
    for seed in (SEED + 1, SEED + 2, SEED + 3):
        run_find_cases(pair, seed, SLOW_QUERIES // 3)


# --- counts and distinct ------------------------------------------------------------------------


def legacy_count(coll: Any, filt: dict[str, Any], skip: int, limit: int, window: bool
                 ) -> int:
    """The helogale client's classic ``Cursor.count``."""
    return int(coll.find(filt, skip=skip, limit=limit).count(with_limit_and_skip=window))


def test_counts_match_unsharded(pair: Pair) -> None:
    rng = random.Random(SEED + 10)
    for number in range(40):
        filt = gen_filter(rng)
        skip = rng.choice([0, 0, 2, 30])
        limit = rng.choice([0, 0, 1, 7, 100])
        for client in ("pymongo", "helogale"):
            sharded, plain = pair.colls(client)
            where = f"seed {SEED + 10} count {number} via {client}: {filt} {skip} {limit}"
            got = attempt(partial(sharded.count_documents, filt, skip=skip, limit=limit))
            ref = attempt(partial(plain.count_documents, filt, skip=skip, limit=limit))
            if not same_outcome(got, ref, where):
                assert got == ref, where
        sharded, plain = pair.colls("helogale")
        for with_window in (False, True):
            got, ref = (attempt(partial(legacy_count, c, filt, skip, limit, with_window))
                        for c in (sharded, plain))
            assert got == ref, f"Cursor.count({with_window}) {number}: {filt} {skip} {limit}"
    for client in ("pymongo", "helogale"):
        sharded, plain = pair.colls(client)
        assert sharded.estimated_document_count() == plain.estimated_document_count() == N_DOCS


DISTINCT_KEYS = ["a", "b", "arr", "tags", "items.k", "items", "c.x", "c", "n", "_id", "nope"]


def test_distinct_matches_unsharded(pair: Pair) -> None:
    rng = random.Random(SEED + 20)
    for number in range(40):
        key = rng.choice(DISTINCT_KEYS)
        filt = gen_filter(rng) if rng.random() < 0.6 else {}
        client = rng.choice(["pymongo", "helogale"])
        sharded, plain = pair.colls(client)
        where = f"seed {SEED + 20} distinct {number} via {client}: {key!r} {filt}"
        got = attempt(partial(sharded.distinct, key, filt))
        ref = attempt(partial(plain.distinct, key, filt))
        if same_outcome(got, ref, where):
            continue
        assert multiset(got[1]) == multiset(ref[1]), f"{where}\n{got}\n{ref}"
        assert len(got[1]) == len(multiset(got[1])), f"{where}: repeated values {got}"


# --- aggregate --------------------------------------------------------------------------------


def normalize(value: Any) -> Any:
    """Aggregation results up to what MongoDB leaves open: float rounding of sums and averages
    (shards add in another order) and the order of ``$push`` / ``$addToSet`` arrays."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, Mapping):
        return {k: (sorted((normalize(x) for x in v), key=encode_key)
                    if k.startswith("set_") and isinstance(v, list) else normalize(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(x) for x in value]
    return value


def gen_pipeline(rng: random.Random) -> tuple[list[dict[str, Any]], bool]:
    """A pipeline and whether its output order is defined."""
    match = [{"$match": gen_filter(rng)}] if rng.random() < 0.6 else []
    group_key = rng.choice(["$a", "$b", "$c.y", None, {"a": "$a", "t": "$n"}, "$arr"])
    k = rng.randrange(11)
    if k == 0:
        return [*match, {"$group": {"_id": group_key, "n": {"$sum": 1}, "s": {"$sum": "$u"},
                                    "lo": {"$min": "$f"}, "hi": {"$max": "$b"}}}], False
    if k == 1:
        return [*match, {"$group": {"_id": group_key, "avg": {"$avg": "$u"},
                                    "set_p": {"$push": "$u"}, "sf": {"$sum": "$f"},
                                    "set_s": {"$addToSet": "$a"}}}], False
    if k == 2:
        direction = rng.choice([1, -1])
        return [*match, {"$sort": {"u": direction}},
                {"$group": {"_id": group_key, "first": {"$first": "$u"},
                            "last": {"$last": "$_id"}, "p": {"$push": "$u"}}}], False
    if k == 3:
        sort = {rng.choice(["a", "b", "f", "n", "arr"]): rng.choice([1, -1]),
                "u": rng.choice([1, -1])}
        return [*match, {"$sort": sort}, {"$limit": rng.randint(1, 40)}], True
    if k == 4:
        return [*match, {"$count": "total"}], True
    if k == 5:
        return [*match, {"$unwind": "$tags"},
                {"$group": {"_id": "$tags", "n": {"$sum": 1}, "mx": {"$max": "$u"}}}], False
    if k == 6:
        return [*match, {"$unwind": rng.choice(["$arr", {"path": "$arr",
                                                          "preserveNullAndEmptyArrays": True}])},
                {"$sort": {"arr": 1, "u": -1}}, {"$skip": rng.randint(0, 20)},
                {"$limit": rng.randint(1, 50)}], True
    if k == 7:
        return [*match, {"$project": rng.choice([{"a": 1, "b": 1}, {"items": 0, "n": 0},
                                                 {"c.x": 1, "_id": 0, "u": 1}])}], False
    if k == 8:
        return [*match, {"$sort": {"u": 1}}, {"$skip": rng.randint(0, 100)},
                {"$limit": rng.randint(1, 30)}, {"$project": {"u": 1, "a": 1}}], True
    if k == 9:
        return [*match, {"$group": {"_id": None, "n": {"$sum": 1}, "lo": {"$min": "$n"},
                                    "hi": {"$max": "$n"}, "sum": {"$sum": "$a"}}}], True
    return [*match, {"$group": {"_id": group_key, "n": {"$sum": 1}}},
            {"$sort": {"n": -1, "_id": 1}}, {"$limit": 5}], True


def aggregate(coll: Any, client: str, pipeline: list[dict[str, Any]], batch: int
              ) -> list[Any]:
    if client == "pymongo":
        cursor = coll.aggregate(pipeline, batchSize=batch)
    else:
        cursor = coll.aggregate(pipeline, batch_size=batch)
    return [normalize(d) for d in cursor]


def test_aggregate_matches_unsharded(pair: Pair) -> None:
    rng = random.Random(SEED + 30)
    for number in range(60):
        pipeline, ordered = gen_pipeline(rng)
        batch = rng.choice([0, 0, 1, 5])
        for client in ("pymongo", "helogale"):
            sharded, plain = pair.colls(client)
            where = f"seed {SEED + 30} pipeline {number} via {client}: {pipeline} {batch}"
            got = attempt(partial(aggregate, sharded, client, pipeline, batch))
            ref = attempt(partial(aggregate, plain, client, pipeline, batch))
            if same_outcome(got, ref, where):
                continue
            if ordered:
                assert [canon(d) for d in got[1]] == [canon(d) for d in ref[1]], \
                    f"{where}\nsharded {got[1]}\nunsharded {ref[1]}"
            else:
                assert multiset(got[1]) == multiset(ref[1]), \
                    f"{where}\nsharded {got[1]}\nunsharded {ref[1]}"


# --- writes -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wpair(sharded: ShardedCluster, clients: dict[str, Any]) -> Pair:
    return build_pair(sharded, clients, "w")


BULK = {"pymongo": pymongo, "helogale": helogale}


def result_of(result: Any) -> dict[str, Any]:
    """What a write answered, comparable across the two collections."""
    if result is None or isinstance(result, Mapping):
        return {"doc": result}
    out: dict[str, Any] = {}
    for name in ("matched_count", "modified_count", "upserted_id", "deleted_count",
                 "inserted_count", "upserted_ids"):
        if hasattr(type(result), name):
            out[name] = getattr(result, name)
    return out


def bulk_error(exc: Exception) -> dict[str, Any]:
    details = dict(getattr(exc, "details", None) or {})
    return {"nInserted": details.get("nInserted"), "nMatched": details.get("nMatched"),
            "nModified": details.get("nModified"), "nRemoved": details.get("nRemoved"),
            "nUpserted": details.get("nUpserted"),
            "upserted": [(u["index"], canon(u["_id"])) for u in details.get("upserted", [])],
            "errors": [(e["index"], e["code"]) for e in details.get("writeErrors", [])]}


def write(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", result_of(fn())
    except (pymongo.errors.BulkWriteError, helogale.errors.BulkWriteError) as exc:
        return "bulk", bulk_error(exc)
    except ERRORS as exc:
        return "error", exc.code


def ids_matching(coll: Any, filt: Mapping[str, Any]) -> collections.Counter[bytes]:
    return multiset([d["_id"] for d in coll.find(filt, {"_id": 1})])


def contents(coll: Any) -> list[bytes]:
    return sorted(canon(d) for d in coll.find({}, batch_size=50))


class Writer:
    """Applies generated writes to both collections and compares what they answer."""

    def __init__(self, pair: Pair, seed: int) -> None:
        self.pair = pair
        self.rng = random.Random(seed)
        self.seed = seed
        self.next_new = N_DOCS
        self.number = (seed % 100) * 100_000  # the w marks of two runs on one pair differ

    def new_id(self) -> Any:
        self.next_new += 1
        return make_id(self.next_new + self.rng.randrange(6))

    def some_id(self) -> Any:
        return make_id(self.rng.randrange(N_DOCS + 40))

    def update_doc(self, multi: bool = False) -> dict[str, Any]:
        """An update; unless ``multi``, maybe one that fails on some documents (a multi-write
        failing half way leaves each shard's own prefix updated, and a single write whose
        document MongoDB picks may pick one it fails on: no twin could follow either)."""
        k = self.number
        return self.rng.choice([
            {"$set": {"w": k}, "$inc": {"cnt": 1}},
            {"$set": {"w": k}, "$push": {"more": "new"}},
            {"$set": {"w": k}, "$unset": {"b": ""}},
            {"$set": {"w": k}, "$max": {"cnt": self.rng.randrange(5)}},
            *([] if multi else [
                {"$set": {"w": k, "c.x": self.rng.randrange(20)}},  # c may be a string
                {"$set": {"w": k}, "$inc": {"b": 1}},  # b may be a string
                {"$set": {"w": k}, "$push": {"tags": "new"}},  # tags may be missing: fine
            ]),
        ])

    def both(self, op: Callable[[Any], Any], client: str) -> tuple[tuple[str, Any],
                                                                  tuple[str, Any]]:
        sharded, plain = self.pair.colls(client)
        return write(lambda: op(sharded)), write(lambda: op(plain))

    def check(self, got: tuple[str, Any], ref: tuple[str, Any], what: str) -> None:
        assert got == ref, (f"seed {self.seed} write {self.number} {what}:\n"
                            f"sharded {got}\nunsharded {ref}")

    def step(self) -> str:
        rng = self.rng
        self.number += 1
        client = rng.choice(["pymongo", "helogale"])
        k = rng.randrange(15)
        upd = self.update_doc()
        if k == 0:  # update_one by _id (maybe absent, maybe upsert)
            filt = {"_id": self.some_id()}
            upsert = rng.random() < 0.3
            got, ref = self.both(lambda c: c.update_one(filt, upd, upsert=upsert), client)
            self.check(got, ref, f"update_one {filt} {upd} upsert={upsert}")
        elif k == 1:  # update_one / delete_one by a unique field: one match, not by _id
            filt = {"u": rng.randrange(N_DOCS)}
            if rng.random() < 0.5:
                got, ref = self.both(lambda c: c.update_one(filt, upd), client)
            else:
                got, ref = self.both(lambda c: c.delete_one(filt), client)
            self.check(got, ref, f"single write {filt} {upd}")
        elif k == 2:  # update_one, several matches: the sharded one picks, the twin follows
            filt = atom(rng)
            safe = self.update_doc(multi=True)  # whichever document is picked, it applies
            self.single_then_twin(client, filt, lambda c, f: c.update_one(f, safe), "update")
        elif k == 3:
            filt = atom(rng)
            self.single_then_twin(client, filt, lambda c, f: c.delete_one(f), "delete")
        elif k == 4:
            filt = atom(rng)
            upd = self.update_doc(multi=True)
            got, ref = self.both(lambda c: c.update_many(filt, upd), client)
            self.check(got, ref, f"update_many {filt} {upd}")
        elif k == 5:
            lo = rng.randrange(N_DOCS)
            filt = rng.choice([{"u": {"$gte": lo, "$lt": lo + 4}}, {"a": 7.5, "f": {"$lt": 0}},
                               {"_id": {"$in": [self.some_id() for _ in range(3)]}}])
            got, ref = self.both(lambda c: c.delete_many(filt), client)
            self.check(got, ref, f"delete_many {filt}")
        elif k == 6:  # findAndModify with a total sort across shards
            filt = atom(rng)
            sort = [(rng.choice(["a", "f", "b", "arr"]), rng.choice([1, -1])),
                    ("u", rng.choice([1, -1])), ("_id", 1)]  # writes make u repeat
            after = rng.choice([ReturnDocument.BEFORE, ReturnDocument.AFTER])
            projection = rng.choice([None, {"u": 1, "w": 1}, {"items": 0}])
            if rng.random() < 0.2:
                got, ref = self.both(lambda c: c.find_one_and_delete(
                    filt, projection=projection, sort=sort), client)
            else:
                got, ref = self.both(lambda c: c.find_one_and_update(
                    filt, upd, projection=projection, sort=sort, return_document=after),
                    client)
            self.check(got, ref, f"findAndModify {filt} {sort} {upd}")
        elif k == 7:  # findAndModify by _id, upsert allowed
            filt = {"_id": self.some_id() if rng.random() < 0.7 else self.new_id()}
            got, ref = self.both(lambda c: c.find_one_and_update(
                filt, upd, upsert=True, return_document=ReturnDocument.AFTER), client)
            self.check(got, ref, f"findAndModify upsert {filt} {upd}")
        elif k == 8:  # findAndModify without sort: the sharded one picks, the twin follows
            filt = atom(rng)
            upd = self.update_doc(multi=True)
            if rng.random() < 0.3:
                self.single_then_twin(client, filt, lambda c, f: c.find_one_and_delete(f),
                                      "findAndModify")
            else:
                self.single_then_twin(client, filt, lambda c, f: c.find_one_and_update(
                    f, upd, return_document=ReturnDocument.AFTER), "findAndModify")
        elif k == 9:  # replace_one by _id
            filt = {"_id": self.some_id() if rng.random() < 0.7 else self.new_id()}
            new = {"u": 1000 + self.number, "a": rng.randrange(10), "w": self.number}
            upsert = rng.random() < 0.5
            got, ref = self.both(lambda c: c.replace_one(filt, new, upsert=upsert), client)
            self.check(got, ref, f"replace_one {filt} upsert={upsert}")
        elif k == 10:  # insert_many with duplicates across shards
            ordered = rng.random() < 0.5
            docs = [{"_id": self.some_id() if rng.random() < 0.3 else self.new_id(),
                     "u": 2000 + self.number, "w": self.number} for _ in range(rng.randint(2, 8))]
            got, ref = self.both(lambda c: c.insert_many(docs, ordered=ordered), client)
            if got[0] == ref[0] == "ok":
                got, ref = ("ok", len(docs)), ("ok", len(docs))
            self.check(got, ref, f"insert_many ordered={ordered} {docs}")
        elif k == 11:  # a mixed bulk over both shards, with write errors
            ordered = rng.random() < 0.5
            B = BULK[client]
            requests: list[Any] = []
            for _ in range(rng.randint(2, 8)):
                kind = rng.randrange(7)
                if kind == 0:
                    requests.append(B.InsertOne({"_id": self.some_id()
                                                 if rng.random() < 0.3 else self.new_id(),
                                                 "w": self.number}))
                elif kind == 1:
                    requests.append(B.UpdateOne({"_id": self.some_id()}, self.update_doc(),
                                                upsert=rng.random() < 0.3))
                elif kind == 2:
                    requests.append(B.UpdateMany(atom(rng), self.update_doc(multi=True)))
                elif kind == 3:
                    requests.append(B.DeleteOne({"_id": self.some_id()}))
                elif kind == 4:  # found first on every shard: a unique field, one match
                    requests.append(B.UpdateOne({"u": rng.randrange(N_DOCS)},
                                                self.update_doc()))
                elif kind == 5:
                    requests.append(B.DeleteOne({"u": rng.randrange(N_DOCS)}))
                else:
                    requests.append(B.ReplaceOne({"_id": self.some_id()},
                                                 {"w": self.number, "u": 3000 + self.number}))
            got, ref = self.both(lambda c: c.bulk_write(requests, ordered=ordered), client)
            self.check(got, ref, f"bulk_write ordered={ordered} {requests}")
        elif k == 12:  # an upsert without _id equality cannot be targeted
            filt = rng.choice([{"u": 5000 + self.number}, {"_id": {"$gt": 5}, "u": -1}])
            sharded = self.pair.colls(client)[0]
            before = ids_matching(sharded, {})
            got = write(lambda: sharded.update_one(filt, upd, upsert=True))
            assert got == ("error", 61), f"upsert by {filt}: {got}"
            got = write(lambda: sharded.find_one_and_update(filt, upd, upsert=True))
            assert got == ("error", 61), f"findAndModify upsert by {filt}: {got}"
            assert ids_matching(sharded, {}) == before
        elif k == 13:  # update_many through every shard
            filt = {"$or": [atom(rng), {"u": rng.randrange(N_DOCS)}]}
            got, ref = self.both(lambda c: c.update_many(filt, {"$inc": {"cnt": 10}}), client)
            self.check(got, ref, f"update_many {filt}")
        else:  # the positional operator, in a write found first and in a multi-write
            filt = {"arr": {"$elemMatch": {"$eq": rng.randrange(10)}}}  # arrays only
            pos = {"$set": {"arr.$": 100 + self.number, "w": self.number}}
            if rng.random() < 0.5:
                self.single_then_twin(client, filt, lambda c, f: c.update_one(f, pos),
                                      "update")
            else:
                got, ref = self.both(lambda c: c.update_many(filt, pos), client)
                self.check(got, ref, f"update_many {filt} {pos}")
        return client

    def single_then_twin(self, client: str, filt: dict[str, Any],
                         op: Callable[[Any, dict[str, Any]], Any], kind: str) -> None:
        """A single-document write whose document MongoDB leaves open: applied to the sharded
        collection, then to the same document of the twin, which must have matched too."""
        sharded, plain = self.pair.colls(client)
        before = ids_matching(sharded, filt)
        assert before == ids_matching(plain, filt)
        got = write(lambda: op(sharded, filt))
        if got[0] != "ok":
            ref = write(lambda: op(plain, filt))
            self.check(got, ref, f"{kind} {filt}")
            return
        if kind == "delete":
            gone = before - ids_matching(sharded, filt)
            assert sum(gone.values()) == got[1]["deleted_count"] <= 1
            chosen = [bson.decode(k)["v"] for k in gone]
        elif kind == "update":
            chosen = [d["_id"] for d in sharded.find({"w": self.number})]
            assert len(chosen) == got[1]["matched_count"] <= 1, (
                f"seed {self.seed} write {self.number} update_one {filt}: {got}, "
                f"changed {chosen}, {len(before)} matched before")
        else:
            chosen = [got[1]["doc"]["_id"]] if got[1]["doc"] is not None else []
        assert all(canon(i) in before for i in chosen), f"{kind} {filt} chose a non-match"
        if not chosen:
            assert not before, f"{kind} {filt} found nothing among {len(before)} matches"
            ref = write(lambda: op(plain, filt))
        else:
            ref = write(lambda: op(plain, {"$and": [filt, {"_id": chosen[0]}]}))
        self.check(got, ref, f"{kind} {filt}")


def run_writes(pair: Pair, seed: int, n: int) -> collections.Counter[str]:
    writer = Writer(pair, seed)
    used: collections.Counter[str] = collections.Counter()
    for step in range(n):
        used[writer.step()] += 1
        if step % 25 == 24 or step == n - 1:
            for client in ("pymongo", "helogale"):
                sharded, plain = pair.colls(client)
                assert contents(sharded) == contents(plain), \
                    f"seed {seed}: contents differ after write {writer.number}"
    return used


def test_writes_match_unsharded(wpair: Pair) -> None:
    used = run_writes(wpair, SEED + 40, 120)
    assert min(used.values()) > 20, used


@pytest.mark.slow
def test_writes_match_unsharded_many(wpair: Pair) -> None:
    run_writes(wpair, SEED + 41, 600)


# --- what the generated cases found, pinned down ----------------------------------------------


@pytest.fixture(scope="module")
def bpair(sharded: ShardedCluster, clients: dict[str, Any]) -> Pair:
    return build_pair(sharded, clients, "b")


def test_unordered_batch_keeps_each_shards_statement_order(bpair: Pair) -> None:
    """A multi-shard update before upserts in an unordered batch must not see the upserted
    documents (mongos sends each shard its statements in the batch's order)."""
    new_ids = [N_DOCS + 10, f"s{N_DOCS + 11:04d}", ObjectId(f"{N_DOCS + 12:024x}")]
    db = bpair.clients["pymongo"][DB]
    replies = []
    for coll in bpair.names:
        updates = [{"q": {"probe": 1}, "u": {"$inc": {"hits": 1}}, "multi": True},
                   *[{"q": {"_id": i}, "u": {"$set": {"probe": 1}}, "upsert": True}
                     for i in new_ids],
                   {"q": {"probe": 1}, "u": {"$inc": {"after": 1}}, "multi": True}]
        reply = db.command("update", coll, updates=updates, ordered=False)
        replies.append({k: reply[k] for k in ("n", "nModified")})
        assert [d.get("hits") for d in db[coll].find({"probe": 1})] == [None] * 3
        db[coll].delete_many({"probe": 1})
    assert replies[0] == replies[1] == {"n": 6, "nModified": 3}, replies


def test_multi_write_failing_on_both_shards_is_one_write_error(bpair: Pair) -> None:
    """A statement that fails on several shards is ONE write error at its index."""
    sharded, plain = bpair.colls("pymongo")
    strings = {"b": {"$type": "string"}}
    on_shards = [d["_id"] for d in sharded.find(strings, {"_id": 1})]
    assert len(on_shards) > 20
    for ordered in (True, False):
        got = write(partial(sharded.bulk_write, [
            pymongo.UpdateOne({"_id": on_shards[0]}, {"$set": {"x": 1}}),
            pymongo.UpdateMany(strings, {"$inc": {"b": 1}}),
            pymongo.DeleteOne({"_id": -12345})], ordered=ordered))
        assert got[0] == "bulk", got
        assert got[1]["errors"] == [(1, 14)], got
    for c in bpair.colls("helogale"):
        got = write(lambda c=c: c.update_many(strings, {"$inc": {"b": 1}}))
        assert got == ("error", 14), got
    assert sum(1 for _ in plain.find(strings)) == len(on_shards)


# --- explain and targeting ----------------------------------------------------------------------


def owners(cluster: ShardedCluster, ns: str) -> list[tuple[Any, Any, str]]:
    return [(c["min"]["_id"], c["max"]["_id"], c["shard"]) for c in chunk_docs(cluster, ns)]


def stages(plan: Mapping[str, Any]) -> list[str]:
    out = []
    node: Any = plan
    while isinstance(node, Mapping):
        out.append(node.get("stage"))
        node = node.get("inputStage")
    return out


@pytest.mark.parametrize("client", ["pymongo", "helogale"])
def test_explain_names_the_targeted_shards_and_their_plans(pair: Pair, client: str) -> None:
    chunks = owners(pair.cluster, f"{DB}.{pair.names[0]}")
    home, other = chunks[0][2], chunks[1][2]
    assert home != other and chunks[2][2] == home  # [MinKey,75) [75,150) [150,225)
    sharded = pair.colls(client)[0]
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"_id": 12}, [home]),                                # equality: its chunk's shard
        ({"_id": Int64(96)}, [other]),
        ({"_id": {"$in": [12, 156]}}, [home]),                # two chunks, one shard
        ({"_id": {"$gte": 80, "$lt": 140}}, [other]),         # a range inside one chunk
        ({"_id": {"$gte": 10, "$lt": 100}}, [home, other]),   # a range over two chunks
        ({"_id": {"$gt": 150, "$lt": 200}}, [home]),
        ({"a": 1}, [home, other]),                            # no _id: every shard
    ]
    for filt, expected in cases:
        explained = sharded.find(filt).explain()
        plan = explained["queryPlanner"]["winningPlan"]
        assert sorted(s["shardName"] for s in plan["shards"]) == sorted(expected), filt
        assert plan["stage"] == ("SINGLE_SHARD" if len(expected) == 1 else "SHARD_MERGE")
        for shard in plan["shards"]:
            assert shard["namespace"] == f"{DB}.{pair.names[0]}"
            assert "IXSCAN" in stages(shard["winningPlan"]) or "a" in filt, shard
        stats = explained.get("executionStats")
        if stats is not None:
            assert stats["nReturned"] == sharded.count_documents(filt), filt
            assert [s["shardName"] for s in stats["executionStages"]["shards"]] == \
                [s["shardName"] for s in plan["shards"]]


def test_explain_shows_what_each_shard_runs(pair: Pair) -> None:
    """Several shards: each sorts and keeps ``skip + limit`` (the router skips); one shard
    gets the query as it is."""
    sharded = pair.colls("pymongo")[0]
    db = pair.clients["pymongo"][DB]
    for filt, n_shards in (({"a": {"$gte": 3}}, 2), ({"_id": {"$gte": 80, "$lt": 140}}, 1)):
        find = {"find": pair.names[0], "filter": filt, "sort": {"u": -1}, "skip": 4,
                "limit": 6}
        explained = db.command("explain", find, verbosity="executionStats")
        plan = explained["queryPlanner"]["winningPlan"]
        assert len(plan["shards"]) == n_shards
        assert plan["stage"] == ("SHARD_MERGE_SORT" if n_shards > 1 else "SINGLE_SHARD")
        for shard in explained["executionStats"]["executionStages"]["shards"]:
            top = shard["executionStages"]
            if n_shards > 1:
                assert "SKIP" not in stages(top), top
                assert top["stage"] == "SORT" and top["limitAmount"] == 10, top
            else:
                assert top["stage"] == "SKIP" and top["skipAmount"] == 4, top
        got = list(sharded.find(filt, sort=[("u", -1)], skip=4, limit=6))
        assert len(got) == 6


# --- single writes without _id under concurrency -----------------------------------------------


def _queue(cluster: ShardedCluster, coll: str, n: int) -> None:
    """A sharded collection of ``n`` ready jobs over two chunks on two shards."""
    ns = f"{DB}.{coll}"
    router(cluster, {"shardCollection": ns, "key": {"_id": 1}})
    router(cluster, {"split": ns, "middle": {"_id": n // 2}})
    low, high = chunk_docs(cluster, ns)
    other = next(s["_id"] for s in router(cluster, {"listShards": 1})["shards"]
                 if s["_id"] != low["shard"])
    router(cluster, {"moveChunk": ns, "bounds": [high["min"], high["max"]], "to": other,
                     "_waitForDelete": True})
    router(cluster, {"insert": coll, "documents": [{"_id": i, "state": "ready"}
                                                   for i in range(n)]}, db=DB)


@pytest.mark.parametrize("how", ["update_one", "find_one_and_update"])
def test_single_writes_without_id_race_for_the_same_documents(
        sharded: ShardedCluster, clients: dict[str, Any], how: str) -> None:
    """Workers popping jobs with ``update_one({state: ready})`` (retryable writes): a worker
    that lost a job to another looks again; none sees "nothing matched" while jobs wait."""
    n, workers = 60, 4
    coll_name = f"jobs_{how}"
    _queue(sharded, coll_name, n)
    wrong: list[str] = []
    taken: collections.Counter[str] = collections.Counter()

    def work(w: int) -> None:
        client = clients["pymongo" if w % 2 == 0 else "helogale"]
        coll = client[DB][coll_name]
        while True:
            if how == "update_one":
                popped = coll.update_one({"state": "ready"},
                                         {"$set": {"state": "taken", "by": w}}).matched_count
            else:
                popped = int(coll.find_one_and_update(
                    {"state": "ready"}, {"$set": {"state": "taken", "by": w}}) is not None)
            if popped:
                taken[str(w)] += 1
                continue
            waiting = coll.count_documents({"state": "ready"})
            if waiting:  # jobs go ready -> taken only: these waited through the whole call
                wrong.append(f"worker {w}: nothing matched, {waiting} ready")
            return

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not wrong, wrong
    assert sum(taken.values()) == n, taken
    coll = clients["pymongo"][DB][coll_name]
    assert coll.count_documents({"state": "taken"}) == n


def test_retried_single_write_without_id_applies_once(sharded: ShardedCluster) -> None:
    """A retryable ``update_one`` / ``findAndModify`` without ``_id`` (found first on every
    shard, then run on one) sent again with the same ``txnNumber``, through the other router,
    is answered from the shard's records: it takes no second job (the attempts' statement ids
    are the same in the retry)."""
    coll = "jobs_retried"
    _queue(sharded, coll, 20)
    # ready jobs only on the low chunk's shard: the retry finds another one on the same shard
    router(sharded, {"update": coll, "updates": [
        {"q": {"_id": {"$gte": 10}}, "u": {"$set": {"state": "done"}}, "multi": True}]}, db=DB)
    lsid = {"id": Binary(uuid.uuid4().bytes, 4)}
    for txn, cmd in enumerate([
            {"update": coll, "updates": [{"q": {"state": "ready"},
                                          "u": {"$set": {"state": "taken"}}}]},
            {"findAndModify": coll, "query": {"state": "ready"},
             "update": {"$set": {"state": "taken"}}}], start=1):
        first = router(sharded, {**cmd, "lsid": lsid, "txnNumber": Int64(txn)}, db=DB)
        again = router(sharded, {**cmd, "lsid": lsid, "txnNumber": Int64(txn)}, db=DB, i=1)
        if "value" in first:
            assert first["value"] == again["value"] and first["value"]["state"] == "ready"
        else:
            assert first["n"] == again["n"] == 1, (first, again)
        taken = router(sharded, {"count": coll, "query": {"state": "taken"}}, db=DB)["n"]
        assert taken == txn, (cmd, taken)


# --- cursors ------------------------------------------------------------------------------------


def open_cursors(cluster: ShardedCluster) -> tuple[int, int]:
    """(open cursors on the shards' primaries, open cursors on the routers)."""
    shards = 0
    for shard in cluster.shards:
        p = shard.wait_for_primary()
        shards += int(ok(shard.command(p, {"serverStatus": 1}, db="admin"))
                      ["metrics"]["cursor"]["open"]["total"])
    routers = sum(int(router(cluster, {"serverStatus": 1}, i=i)
                      ["metrics"]["cursor"]["open"]["total"])
                  for i in range(len(cluster.routers)))
    return shards, routers


@pytest.mark.parametrize("client", ["pymongo", "helogale"])
def test_closing_a_merged_cursor_closes_the_shards_cursors(pair: Pair, client: str) -> None:
    before = open_cursors(pair.cluster)
    sharded = pair.colls(client)[0]
    cursors = [sharded.find({"a": {"$gte": 0}}, sort=[("f", 1), ("_id", 1)], batch_size=2),
               sharded.find({}, batch_size=3), sharded.find({}, batch_size=1, skip=5, limit=50)]
    for cursor in cursors:
        for _ in range(4):
            next(cursor)
    during = open_cursors(pair.cluster)
    assert during[0] >= before[0] + 2 and during[1] >= before[1] + 3, (before, during)
    for cursor in cursors:
        cursor.close()
    wait_until(lambda: open_cursors(pair.cluster) == before, 10, "cursors closed")


def _write_reply(reply: Mapping[str, Any]) -> dict[str, Any]:
    return {"ok": reply.get("ok"), "n": reply.get("n"), "nModified": reply.get("nModified"),
            "errors": [(e["index"], e["code"]) for e in reply.get("writeErrors", [])],
            "upserted": [(u["index"], u["_id"]) for u in reply.get("upserted", [])]}


def test_a_statement_whose_query_fails_is_its_write_error(bpair: Pair) -> None:
    """A single write found first whose query fails on the shards is that statement's write
    error; the batch's other statements are applied (unordered) or run up to it (ordered)."""
    for ordered in (False, True):
        replies = []
        for coll in bpair.names:
            replies.append(_write_reply(router(bpair.cluster, {"update": coll, "updates": [
                {"q": {"u": 37}, "u": {"$inc": {"bad_query_probe": 1}}},
                {"q": {"a": {"$bad": 1}}, "u": {"$inc": {"b": 1}}},
                {"q": {"u": 39}, "u": {"$inc": {"bad_query_probe": 1}}}],
                "ordered": ordered}, db=DB)))
        expected = {"ok": 1.0, "n": 1 if ordered else 2, "nModified": 1 if ordered else 2,
                    "errors": [(1, 2)], "upserted": []}
        assert replies[0] == replies[1] == expected, (ordered, replies)


def test_upsert_by_id_inside_and(bpair: Pair) -> None:
    """An upsert whose query pins ``_id`` by equality inside a top-level ``$and`` targets and
    inserts as on an unsharded collection."""
    replies = []
    for k, coll in enumerate(bpair.names):
        replies.append(_write_reply(router(bpair.cluster, {"update": coll, "updates": [
            {"q": {"$and": [{"_id": 9002}, {"b": "x"}]}, "u": {"$inc": {"z": 1}},
             "upsert": True},
            {"q": {"$and": [{"b": "y"}, {"_id": {"$eq": "s9003"}}]}, "u": {"$set": {"k": k}},
             "upsert": True}]}, db=DB)))
        assert bpair.colls("pymongo")[k].find_one({"_id": 9002}) == {
            "_id": 9002, "b": "x", "z": 1}
    assert replies[0] == replies[1] == {"ok": 1.0, "n": 2, "nModified": 0, "errors": [],
                                        "upserted": [(0, 9002), (1, "s9003")]}, replies


def test_secondary_reads_match_unsharded(pair: Pair) -> None:
    """Reads a shard's secondaries answer (read preference ``secondary``) filter orphans and
    merge as the primaries' do."""
    sharded, plain = pair.colls("pymongo")
    secondary = sharded.with_options(read_preference=ReadPreference.SECONDARY)
    wait_until(lambda: secondary.count_documents({}) == N_DOCS, 20, "secondaries caught up")
    for number, case in enumerate(find_cases(SEED + 50, 40)):
        got, ref = run_find(secondary, case), run_find(plain, case)
        where = f"seed {SEED + 50} case {number} on secondaries: {case}"
        if same_outcome(got, ref, where):
            continue
        try:
            check_find(pair, case, got[1], ref[1],
                       lambda case=case: run_find(plain, case, window=False)[1])
        except AssertionError as exc:
            raise AssertionError(f"{where}\n{exc}") from exc
    assert sorted(secondary.distinct("u")) == list(range(N_DOCS))


def test_a_regex_is_no_id_equality(bpair: Pair) -> None:
    """``{_id: /re/}`` matches the strings of several chunks: a findAndModify by it finds
    them (it must not go to the shard owning the regex value), an upsert by it has no
    ``_id`` to insert (ShardKeyNotFound)."""
    sharded, plain = bpair.colls("pymongo")
    for coll in (sharded, plain):
        found = coll.find_one_and_update({"_id": Regex("^s02")}, {"$set": {"re": 1}},
                                         sort=[("u", 1)], return_document=ReturnDocument.AFTER)
        assert found is not None and found["_id"] == "s0200" and found["re"] == 1, found
        removed = coll.find_one_and_delete({"_id": {"$in": [Regex("^s00"), -1]}},
                                           sort=[("u", -1)])
        assert removed is not None and removed["_id"] == "s0098", removed
    got = write(partial(sharded.update_one, {"_id": Regex("^s00")}, {"$set": {"x": 1}},
                        upsert=True))
    assert got == ("error", 61), got

"""Bitwise query operators ($bitsAllSet, $bitsAnySet, $bitsAllClear, $bitsAnyClear) and the
$bit update operator, table-driven from MongoDB's documented behaviour."""

from __future__ import annotations

from typing import Any

import pytest
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from node.engine.errors import MongoError
from node.engine.matcher import Matcher
from node.engine.updater import Update

# MongoDB's manual example collection
DOCS: list[dict[str, Any]] = [
    {"_id": 1, "a": 54, "binaryValueofA": "00110110"},
    {"_id": 2, "a": 20, "binaryValueofA": "00010100"},
    {"_id": 3, "a": 20.0, "binaryValueofA": "00010100"},
    {"_id": 4, "a": Binary(b"\x66", 0), "binaryValueofA": "01100110"},
]


def ids(query: dict[str, Any], docs: list[dict[str, Any]] = DOCS) -> list[int]:
    m = Matcher(query)
    return [d["_id"] for d in docs if m.matches(d)]


@pytest.mark.parametrize("query, expected", [
    ({"a": {"$bitsAllSet": [1, 5]}}, [1, 4]),
    ({"a": {"$bitsAllSet": 50}}, [1]),
    ({"a": {"$bitsAllSet": Binary(b"\x30", 0)}}, [1]),
    ({"a": {"$bitsAnySet": [1, 5]}}, [1, 4]),
    ({"a": {"$bitsAnySet": 35}}, [1, 4]),
    ({"a": {"$bitsAnySet": Binary(b"\x30", 0)}}, [1, 2, 3, 4]),
    ({"a": {"$bitsAllClear": [1, 5]}}, [2, 3]),
    ({"a": {"$bitsAllClear": 35}}, [2, 3]),
    ({"a": {"$bitsAllClear": Binary(b"\x20", 0)}}, [2, 3]),
    ({"a": {"$bitsAnyClear": [1, 5]}}, [2, 3]),
    ({"a": {"$bitsAnyClear": 35}}, [1, 2, 3, 4]),
    ({"a": {"$bitsAnyClear": Binary(b"\x30", 0)}}, [2, 3, 4]),
    # an empty mask: every "all" test holds, no "any" test does
    ({"a": {"$bitsAllSet": []}}, [1, 2, 3, 4]),
    ({"a": {"$bitsAnySet": 0}}, []),
    ({"a": {"$not": {"$bitsAnySet": 2}}}, [2, 3]),
])
def test_manual_examples(query: dict[str, Any], expected: list[int]) -> None:
    assert ids(query) == expected


def test_numbers_are_sign_extended_and_binary_is_little_endian() -> None:
    docs = [{"_id": 1, "v": -5}, {"_id": 2, "v": Int64(5)},
            {"_id": 3, "v": Binary(b"\x00\x01", 0)}]
    assert ids({"v": {"$bitsAllSet": [200]}}, docs) == [1]  # bit 200 of -5 is set
    assert ids({"v": {"$bitsAllSet": [8]}}, docs) == [1, 3]  # byte 1, bit 0
    assert ids({"v": {"$bitsAllClear": [200]}}, docs) == [2, 3]  # past BinData's end: clear
    assert ids({"v": {"$bitsAllSet": Int64(2**62)}}, docs) == [1]


def test_values_that_are_not_whole_64_bit_numbers_or_bindata_never_match() -> None:
    docs = [{"_id": 1, "v": 2.5}, {"_id": 2, "v": float("nan")}, {"_id": 3, "v": 2.0**70},
            {"_id": 4, "v": "3"}, {"_id": 5, "v": True}, {"_id": 6, "v": None}, {"_id": 7},
            {"_id": 8, "v": Decimal128("6")}, {"_id": 9, "v": [1, 6]}]
    assert ids({"v": {"$bitsAnySet": 2}}, docs) == [8, 9]  # array elements are tested
    assert ids({"v": {"$bitsAllClear": 1024}}, docs) == [8, 9]


@pytest.mark.parametrize("arg, code, message", [
    ("123", 2, "a takes an Array, a number, or a BinData but received: $bitsAllClear: \"123\""),
    (True, 2, "takes an Array, a number, or a BinData"),
    (None, 2, "takes an Array, a number, or a BinData"),
    (1.2, 9, "Expected an integer: $bitsAllClear: 1.2"),
    (-1, 9, "Expected a non-negative number in: $bitsAllClear: -1"),
    (float("nan"), 9, "Expected an integer, but found NaN"),
    (float("inf"), 9, "Cannot represent as a 64-bit integer"),
    (2.0**64, 9, "Cannot represent as a 64-bit integer"),
    (["x"], 2, "bit positions must be an integer but got: \"x\""),
    ([1.5], 2, "bit positions must be an integer"),
    ([-1], 2, "bit positions must be >= 0 but got: -1"),
    ([2**31], 2, "cannot be represented as a 32-bit signed integer"),
])
def test_bad_masks_are_refused_with_mongodbs_codes(arg: Any, code: int, message: str) -> None:
    with pytest.raises(MongoError) as info:
        Matcher({"a": {"$bitsAllClear": arg}})
    assert info.value.code == code
    assert message in info.value.errmsg


# --- $bit -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("before, spec, after", [
    (13, {"and": 10}, 8),
    (3, {"or": 5}, 7),
    (1, {"xor": 5}, 4),
    (13, {"and": 10, "or": 1}, 9),  # applied in order
    (-1, {"and": Int64(2**40)}, Int64(2**40)),  # an int64 operand widens the result
    (Int64(2**40), {"or": 1}, Int64(2**40 + 1)),
    (2**31 - 1, {"xor": -1}, -(2**31)),  # stays int32, two's complement
])
def test_bit_update(before: Any, spec: dict[str, Any], after: Any) -> None:
    out = Update({"$bit": {"x": spec}}).apply({"_id": 1, "x": before})
    assert out["x"] == after
    assert type(out["x"]) is type(after)


def test_bit_on_a_missing_field_starts_from_zero() -> None:
    assert Update({"$bit": {"x.y": {"or": 6}}}).apply({"_id": 1}) == {"_id": 1, "x": {"y": 6}}


@pytest.mark.parametrize("spec, message", [
    ({"$bit": {"x": 5}}, "The $bit modifier is not compatible with a int"),
    ({"$bit": {"x": {}}}, "You must pass in at least one bitwise operation"),
    ({"$bit": {"x": {"nand": 1}}}, "only supports 'and', 'or', and 'xor', not 'nand'"),
    ({"$bit": {"x": {"and": 1.0}}}, "must be an Integer(32/64 bit); a 'double' is not supported"),
    ({"$bit": {"x": {"and": True}}}, "must be an Integer(32/64 bit)"),
])
def test_bad_bit_updates_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(MongoError) as info:
        Update(spec)
    assert info.value.code == 2
    assert message in info.value.errmsg


def test_bit_on_a_value_that_is_not_an_integer_is_refused() -> None:
    with pytest.raises(MongoError) as info:
        Update({"$bit": {"x": {"or": 1}}}).apply({"_id": 1, "x": 1.0})
    assert info.value.code == 2
    assert "Cannot apply $bit to a value of non-integral type." in info.value.errmsg
    assert "non-integer type double" in info.value.errmsg


# --- end to end: pymongo through a router, on a collection sharded over two shards ------------


@pytest.mark.cluster
def test_bitwise_operators_through_a_router(sharded: Any) -> None:
    import pymongo
    from pymongo.errors import OperationFailure

    from tests.sharded_helpers import ok

    ok(sharded.router_command(0, {"shardCollection": "bits.c", "key": {"_id": 1}}, db="admin"))
    ok(sharded.router_command(0, {"split": "bits.c", "middle": {"_id": 3}}, db="admin"))
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(sharded.wire_uri)
    try:
        coll = client.bits.c
        coll.create_index("a")
        coll.insert_many([dict(d) for d in DOCS])
        owners = {sharded.router_command(0, {"find": "chunks", "filter": {"ns": "bits.c"}},
                                         db="config")["cursor"]["firstBatch"][i]["shard"]
                  for i in range(2)}
        if len(owners) == 1:  # put the two chunks on different shards
            other = "shard2" if owners == {"shard1"} else "shard1"
            ok(sharded.router_command(0, {"moveChunk": "bits.c", "find": {"_id": 3},
                                          "to": other}, db="admin"))
        assert sorted(d["_id"] for d in coll.find({"a": {"$bitsAllSet": [1, 5]}})) == [1, 4]
        assert coll.count_documents({"a": {"$bitsAnyClear": 35}}) == 4
        assert sorted(d["_id"] for d in coll.find({"_id": {"$bitsAllSet": 1}})) == [1, 3]
        coll.update_many({"a": {"$type": "int"}}, {"$bit": {"a": {"or": 1}}})
        assert sorted((d["_id"], d["a"]) for d in coll.find({"a": {"$type": "int"}})) == [
            (1, 55), (2, 21)]
        with pytest.raises(OperationFailure) as info:
            coll.find_one({"a": {"$bitsAllSet": 1.5}})
        assert info.value.code == 9
        with pytest.raises(OperationFailure) as info2:
            coll.update_one({"_id": 3}, {"$bit": {"a": {"or": 1}}})
        assert info2.value.code == 2
        assert coll.find_one({"_id": 3})["a"] == 20.0  # nothing changed
    finally:
        client.close()

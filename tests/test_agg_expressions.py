"""Aggregation expressions, family by family: MongoDB's documented examples and error codes."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId

from node.engine.errors import MongoError
from node.engine.expressions import evaluate
from node.engine.matcher import Matcher
from node.engine.values import MISSING

D = datetime.datetime


def ev(expr: Any, doc: Any = None, **variables: Any) -> Any:
    return evaluate(expr, doc or {}, variables or None)


def code_of(expr: Any, doc: Any = None) -> int:
    with pytest.raises(MongoError) as info:
        ev(expr, doc)
    return info.value.code


def test_field_paths_variables_and_objects() -> None:
    doc = {"a": {"b": 1}, "arr": [{"x": 1}, {"x": 2}, {}, 5]}
    assert ev("$a.b", doc) == 1
    assert ev("$arr.x", doc) == [1, 2]
    assert ev("$missing", doc) is MISSING
    assert ev({"k": "$missing", "j": "$a.b"}, doc) == {"j": 1}
    assert ev(["$missing"], doc) == [None]
    assert ev("$$ROOT.a", doc) == {"b": 1} and ev("$$CURRENT", doc) == doc
    assert ev({"k": "$$REMOVE"}, doc) == {}
    assert isinstance(ev("$$NOW"), D)
    assert code_of("$$nope") == 17276
    assert code_of({"$bogus": 1}) == 168
    assert code_of({"$add": [1], "$sub": 1}) == 15983
    assert ev({"$let": {"vars": {"x": 2}, "in": {"$add": ["$$x", 1]}}}) == 3
    assert code_of({"$let": {"vars": {"x": 2, "y": "$$x"}, "in": 1}}) == 17276
    assert code_of({"$let": {"vars": {"X": 1}, "in": 1}}) == 16867
    assert ev({"$literal": "$a"}, doc) == "$a"


def test_arithmetic_types_and_errors() -> None:
    assert ev({"$add": [1, 2]}) == 3 and isinstance(ev({"$add": [1, 2]}), int)
    assert isinstance(ev({"$add": [Int64(1), 2]}), Int64)
    assert ev({"$add": [2**31 - 1, 1]}) == 2**31 and isinstance(ev({"$add": [2**31 - 1, 1]}),
                                                                   Int64)
    assert ev({"$add": [1, 0.5]}) == 1.5
    assert ev({"$add": [Decimal128("1.1"), 1]}) == Decimal128("2.1")
    assert ev({"$add": [D(2020, 1, 1), 86400000]}) == D(2020, 1, 2)
    assert ev({"$add": [1, None]}) is None
    assert code_of({"$add": ["a", 1]}) == 16554
    assert ev({"$subtract": [D(2020, 1, 2), D(2020, 1, 1)]}) == 86400000
    assert ev({"$multiply": [2, 3, 0.5]}) == 3.0
    assert ev({"$divide": [9, 2]}) == 4.5
    assert code_of({"$divide": [1, 0]}) == 16608
    assert ev({"$mod": [-7, 3]}) == -1
    assert code_of({"$mod": [1, 0]}) == 16610
    assert ev({"$abs": -5}) == 5
    assert ev({"$ceil": 7.80}) == 8.0 and ev({"$floor": -2.5}) == -3.0
    assert ev({"$round": [19.25, 1]}) == 19.2 and ev({"$round": [28.73, -1]}) == 30.0
    assert ev({"$trunc": [7.88, 1]}) == 7.8 and ev({"$round": [5, 0]}) == 5
    assert ev({"$pow": [2, 10]}) == 1024 and ev({"$pow": [2, -1]}) == 0.5
    assert code_of({"$pow": [0, -1]}) == 28764
    assert ev({"$sqrt": 25}) == 5.0 and code_of({"$sqrt": -1}) == 28714
    assert ev({"$log": [100, 10]}) == pytest.approx(2.0)
    assert code_of({"$ln": 0}) == 28766
    assert code_of({"$subtract": [1]}) == 16020


def test_comparison_boolean_conditional() -> None:
    assert ev({"$cmp": [1, 2]}) == -1 and ev({"$eq": [1, 1.0]}) is True
    assert ev({"$gt": ["a", 5]}) is True  # string sorts after numbers
    assert ev({"$lt": ["$missing", 0]}) is True
    assert ev({"$and": [1, "x", True]}) is True and ev({"$and": [1, 0]}) is False
    assert ev({"$or": [None, False]}) is False and ev({"$not": [0]}) is True
    assert ev({"$cond": {"if": {"$gte": [250, 250]}, "then": 30, "else": 20}}) == 30
    assert ev({"$cond": [False, 1, 2]}) == 2
    assert code_of({"$cond": {"if": 1, "then": 2}}) == 17082
    assert ev({"$ifNull": ["$a", "$b", "dflt"]}, {"b": None}) == "dflt"
    sw = {"$switch": {"branches": [{"case": {"$eq": ["$x", 1]}, "then": "one"}],
                      "default": "other"}}
    assert ev(sw, {"x": 1}) == "one" and ev(sw, {"x": 2}) == "other"
    assert code_of({"$switch": {"branches": [{"case": False, "then": 1}]}}) == 40066


def test_strings_and_regex() -> None:
    assert ev({"$concat": ["a", "b", "c"]}) == "abc" and ev({"$concat": ["a", None]}) is None
    assert code_of({"$concat": ["a", 1]}) == 16702
    assert ev({"$substrCP": ["cafétéria", 0, 5]}) == "cafét"
    assert ev({"$substrBytes": ["cafétéria", 0, 5]}) == "café"
    assert code_of({"$substrBytes": ["cafétéria", 0, 4]}) == 28657
    assert ev({"$toUpper": "abc"}) == "ABC" and ev({"$toLower": None}) == ""
    assert ev({"$strLenCP": "cafétéria"}) == 9 and ev({"$strLenBytes": "cafétéria"}) == 11
    assert ev({"$split": ["June-15-2013", "-"]}) == ["June", "15", "2013"]
    assert code_of({"$split": ["a", ""]}) == 40087
    assert ev({"$trim": {"input": "  ggggoodbyeeeee  "}}) == "ggggoodbyeeeee"
    assert ev({"$ltrim": {"input": "xxhixx", "chars": "x"}}) == "hixx"
    assert ev({"$indexOfCP": ["cafeteria", "e"]}) == 3 and ev({"$indexOfBytes": ["a", "z"]}) == -1
    assert ev({"$strcasecmp": ["A", "a"]}) == 0
    assert ev({"$replaceAll": {"input": "aXbXc", "find": "X", "replacement": "-"}}) == "a-b-c"
    assert ev({"$replaceOne": {"input": "aXbXc", "find": "X", "replacement": "-"}}) == "a-bXc"
    assert ev({"$regexMatch": {"input": "Hello", "regex": "^h", "options": "i"}}) is True
    assert ev({"$regexFind": {"input": "abc123def45", "regex": "([0-9]+)"}}) == {
        "match": "123", "idx": 3, "captures": ["123"]}
    assert [m["match"] for m in ev({"$regexFindAll": {"input": "a1b22", "regex": "[0-9]+"}})
            ] == ["1", "22"]
    assert ev({"$regexFind": {"input": "abc", "regex": "z"}}) is None
    assert code_of({"$regexMatch": {"input": "a", "regex": "(a)\\1"}}) == 51091
    assert code_of({"$regexMatch": {"input": 1, "regex": "a"}}) == 51104


def test_arrays_and_sets() -> None:
    assert ev({"$arrayElemAt": [[1, 2, 3], -1]}) == 3
    assert ev({"$arrayElemAt": [[1], 5]}) is MISSING
    assert code_of({"$arrayElemAt": [1, 0]}) == 28689
    assert ev({"$concatArrays": [[1], [2, 3]]}) == [1, 2, 3]
    assert ev({"$filter": {"input": [1, 5, 9], "as": "n", "cond": {"$gt": ["$$n", 2]},
                           "limit": 1}}) == [5]
    assert ev({"$map": {"input": [1, 2], "in": {"$multiply": ["$$this", 10]}}}) == [10, 20]
    assert ev({"$reduce": {"input": ["a", "b"], "initialValue": "",
                           "in": {"$concat": ["$$value", "$$this"]}}}) == "ab"
    assert ev({"$in": [2, [1, 2]]}) is True and code_of({"$in": [1, 1]}) == 40081
    assert ev({"$indexOfArray": [["a", "b", "a"], "a", 1]}) == 2
    assert ev({"$range": [0, 10, 3]}) == [0, 3, 6, 9] and code_of({"$range": [0, 1, 0]}) == 34449
    assert ev({"$reverseArray": [[1, 2]]}) == [2, 1] and ev({"$size": [[1, 2]]}) == 2
    assert code_of({"$size": "a"}) == 17124
    assert ev({"$slice": [[1, 2, 3, 4], -2]}) == [3, 4]
    assert ev({"$slice": [[1, 2, 3, 4], 1, 2]}) == [2, 3]
    assert ev({"$zip": {"inputs": [[1, 2], ["a"]]}}) == [[1, "a"]]
    assert ev({"$zip": {"inputs": [[1, 2], ["a"]], "useLongestLength": True,
                        "defaults": [0, "z"]}}) == [[1, "a"], [2, "z"]]
    assert ev({"$sortArray": {"input": [3, 1, 2], "sortBy": -1}}) == [3, 2, 1]
    assert ev({"$sortArray": {"input": [{"a": 2}, {"a": 1}], "sortBy": {"a": 1}}}) == [
        {"a": 1}, {"a": 2}]
    assert ev({"$firstN": {"input": [1, 2, 3], "n": 2}}) == [1, 2]
    assert ev({"$maxN": {"input": [1, None, 3, 2], "n": 2}}) == [3, 2]
    assert ev({"$arrayToObject": [[["a", 1], ["b", 2]]]}) == {"a": 1, "b": 2}
    assert ev({"$objectToArray": {"a": 1}}) == [{"k": "a", "v": 1}]
    assert ev({"$first": [[7, 8]]}) == 7 and ev({"$last": [[7, 8]]}) == 8
    assert ev({"$setUnion": [[1, 2], [2, 3]]}) == [1, 2, 3]
    assert ev({"$setIntersection": [[1, 2], [2, 3]]}) == [2]
    assert ev({"$setDifference": [[1, 2], [2]]}) == [1]
    assert ev({"$setEquals": [[1, 2], [2, 1, 1]]}) is True
    assert ev({"$setIsSubset": [[1], [1, 2]]}) is True
    assert ev({"$anyElementTrue": [[0, 1]]}) is True and ev({"$allElementsTrue": [[0, 1]]}) is False
    assert ev({"$sum": "$xs"}, {"xs": [1, 2, "a"]}) == 3 and ev({"$avg": [1, 2]}) == 1.5
    assert ev({"$max": "$xs"}, {"xs": [1, 5, 2]}) == 5


def test_dates_with_time_zones() -> None:
    d = D(2014, 1, 1, 8, 15, 39, 736000)
    assert ev({"$year": "$d"}, {"d": d}) == 2014
    assert ev({"$hour": {"date": "$d", "timezone": "America/New_York"}}, {"d": d}) == 3
    assert ev({"$hour": {"date": "$d", "timezone": "+05:30"}}, {"d": d}) == 13
    assert ev({"$dayOfWeek": "$d"}, {"d": d}) == 4 and ev({"$dayOfYear": "$d"}, {"d": d}) == 1
    assert ev({"$isoWeek": "$d"}, {"d": d}) == 1 and ev({"$millisecond": "$d"}, {"d": d}) == 736
    assert ev({"$dateToString": {"format": "%Y-%m-%d %H:%M:%S:%L%z", "date": "$d",
                                 "timezone": "America/New_York"}}, {"d": d}) == \
        "2014-01-01 03:15:39:736-0500"
    assert ev({"$dateToString": {"date": "$d"}}, {"d": d}) == "2014-01-01T08:15:39.736Z"
    assert ev({"$dateFromString": {"dateString": "2017-02-08T12:10:40.787",
                                   "timezone": "America/New_York"}}) == D(2017, 2, 8, 17, 10,
                                                                         40, 787000)
    assert ev({"$dateFromString": {"dateString": "15-06-2018", "format": "%d-%m-%Y"}}) == D(
        2018, 6, 15)
    assert ev({"$dateFromString": {"dateString": "nope", "onError": "bad"}}) == "bad"
    assert code_of({"$dateFromString": {"dateString": "nope"}}) == 241
    assert ev({"$dateAdd": {"startDate": D(2020, 1, 31), "unit": "month", "amount": 1}}) == D(
        2020, 2, 29)
    assert ev({"$dateSubtract": {"startDate": D(2020, 3, 1), "unit": "day", "amount": 1}}) == D(
        2020, 2, 29)
    assert ev({"$dateDiff": {"startDate": D(2020, 12, 31), "endDate": D(2021, 1, 1),
                             "unit": "year"}}) == 1
    assert ev({"$dateDiff": {"startDate": D(2021, 1, 1, 23), "endDate": D(2021, 1, 2, 1),
                             "unit": "day"}}) == 1
    assert ev({"$dateTrunc": {"date": D(2021, 3, 17, 10), "unit": "month"}}) == D(2021, 3, 1)
    assert ev({"$dateTrunc": {"date": D(2021, 3, 17, 10), "unit": "hour", "binSize": 4}}) == D(
        2021, 3, 17, 8)
    assert ev({"$dateTrunc": {"date": D(2021, 3, 17, 10), "unit": "week"}}) == D(2021, 3, 14)
    assert ev({"$dateTrunc": {"date": D(2021, 3, 17, 3), "unit": "day",
                              "timezone": "America/New_York"}}) == D(2021, 3, 16, 4)
    assert ev({"$dateFromParts": {"year": 2017, "month": 2, "day": 8, "hour": 12,
                                  "timezone": "America/New_York"}}) == D(2017, 2, 8, 17)
    assert ev({"$dateToParts": {"date": d}})["minute"] == 15
    assert code_of({"$hour": {"date": d, "timezone": "Mars/Base"}}) == 40485


def test_type_conversions() -> None:
    assert ev({"$type": "$a"}, {"a": 1}) == "int" and ev({"$type": "$a"}) == "missing"
    assert ev({"$toInt": "42"}) == 42 and ev({"$toInt": 4.9}) == 4
    assert isinstance(ev({"$toLong": 5}), Int64)
    assert ev({"$toDouble": "2.5"}) == 2.5 and ev({"$toString": 2.5}) == "2.5"
    assert ev({"$toDecimal": 1}) == Decimal128(Decimal(1))
    assert ev({"$toBool": 0}) is False and ev({"$toBool": "false"}) is True
    assert ev({"$toDate": Int64(0)}) == D(1970, 1, 1)
    oid = ObjectId()
    assert ev({"$toObjectId": str(oid)}) == oid
    assert ev({"$convert": {"input": "x", "to": "int", "onError": -1}}) == -1
    assert ev({"$convert": {"input": None, "to": "int", "onNull": 0}}) == 0
    assert code_of({"$convert": {"input": "x", "to": "int"}}) == 241
    assert code_of({"$toInt": 2**40}) == 241
    assert ev({"$isNumber": "1"}) is False


def test_objects() -> None:
    assert ev({"$mergeObjects": [{"a": 1}, None, {"a": 2, "b": 3}]}) == {"a": 2, "b": 3}
    assert code_of({"$mergeObjects": [1]}) == 40400
    assert ev({"$getField": "a.b"}, {"a.b": 5}) == 5
    assert ev({"$getField": {"field": {"$literal": "$x"}, "input": {"$literal": {"$x": 1}}}}) == 1
    assert ev({"$setField": {"field": "a.b", "input": "$$ROOT", "value": 1}}, {"x": 0}) == {
        "x": 0, "a.b": 1}
    assert ev({"$unsetField": {"field": "x", "input": "$$ROOT"}}, {"x": 0, "y": 1}) == {"y": 1}


def test_expr_and_json_schema_in_queries() -> None:
    m = Matcher({"$expr": {"$gt": ["$spent", "$budget"]}})
    assert m.matches({"spent": 5, "budget": 3}) and not m.matches({"spent": 1, "budget": 3})
    m = Matcher({"$expr": {"$eq": ["$a", "$$v"]}}, variables={"v": 2})
    assert m.matches({"a": 2}) and not m.matches({"a": 3})
    with pytest.raises(MongoError) as info:
        Matcher({"$expr": {"$lt": [{"$rand": {}}, 0.5]}}, allow_rand=False)
    assert info.value.code == 5155601
    schema = {"$jsonSchema": {"bsonType": "object", "required": ["name"], "properties": {
        "name": {"bsonType": "string", "minLength": 2},
        "age": {"bsonType": ["int", "long"], "minimum": 0, "maximum": 150},
        "tags": {"bsonType": "array", "items": {"enum": ["a", "b"]}, "uniqueItems": True}},
        "additionalProperties": False}}
    m = Matcher(schema)
    assert m.matches({"_id": 1, "name": "ann", "age": 3, "tags": ["a"]})
    assert not m.matches({"name": "a"}) and not m.matches({"age": 3})
    assert not m.matches({"name": "ann", "age": 200})
    assert not m.matches({"name": "ann", "tags": ["a", "a"]})
    assert not m.matches({"name": "ann", "other": 1})
    with pytest.raises(MongoError):
        Matcher({"$jsonSchema": {"bogus": 1}})

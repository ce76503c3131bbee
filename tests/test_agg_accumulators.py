"""Accumulators: folding values in parts and merging the parts' partial states (as shards and
the router do, and as spilled runs do) gives what folding everything at once gives."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from typing import Any

import bson
from bson import Decimal128, Int64
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.accumulators import AccSpec

VALUES = st.one_of(
    st.integers(-(2**40), 2**40), st.integers(-5, 5),
    st.floats(-1e6, 1e6, allow_nan=False), st.none(), st.text(max_size=3),
    st.builds(lambda n: Decimal128(Decimal(n) / 4), st.integers(-100, 100)),
    st.builds(Int64, st.integers(-(2**62), 2**62)))
NUMBERS = st.one_of(st.integers(-1000, 1000), st.floats(-1e3, 1e3, allow_nan=False))

SPECS: list[tuple[str, Any]] = [
    ("$sum", "$v"), ("$avg", "$v"), ("$min", "$v"), ("$max", "$v"), ("$first", "$v"),
    ("$last", "$v"), ("$push", "$v"), ("$addToSet", "$v"), ("$count", {}),
    ("$stdDevPop", "$v"), ("$stdDevSamp", "$v"), ("$mergeObjects", {"k": "$v"}),
    ("$top", {"sortBy": {"v": 1, "i": 1}, "output": "$i"}),
    ("$bottom", {"sortBy": {"v": -1, "i": 1}, "output": ["$i", "$v"]}),
    ("$topN", {"n": 3, "sortBy": {"v": -1, "i": 1}, "output": "$i"}),
    ("$bottomN", {"n": 2, "sortBy": {"v": 1, "i": 1}, "output": "$i"}),
    ("$firstN", {"n": 2, "input": "$v"}), ("$lastN", {"n": 3, "input": "$v"}),
    ("$minN", {"n": 2, "input": "$v"}), ("$maxN", {"n": 3, "input": "$v"}),
    ("$median", {"input": "$v", "method": "approximate"}),
    ("$percentile", {"input": "$v", "p": [0.1, 0.9], "method": "approximate"}),
]


def fold(spec: AccSpec, docs: list[dict[str, Any]]) -> Any:
    from node.engine.expressions import Vars
    acc = spec.new()
    for d in docs:
        acc.add(spec.value(Vars(d)))
    return acc


def close(a: Any, b: Any) -> bool:
    if isinstance(a, Decimal128) and isinstance(b, Decimal128):
        # doubles added in another grouping may differ in the last places (as on MongoDB)
        x, y = a.to_decimal(), b.to_decimal()
        return x == y or abs(x - y) <= abs(y) * Decimal("1e-15") + Decimal("1e-12")
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return bson.encode({"v": a}) == bson.encode({"v": b})


@settings(max_examples=15, deadline=None)
@given(st.lists(VALUES, max_size=30), st.lists(st.integers(0, 30), max_size=4))
def test_partial_states_merge_to_the_same_result(values: list[Any], cuts: list[int]) -> None:
    docs = [{"v": v, "i": i} for i, v in enumerate(values)]
    bounds = sorted({0, len(docs), *[min(c, len(docs)) for c in cuts]})
    parts = [docs[a:b] for a, b in itertools.pairwise(bounds)]
    for op, arg in SPECS:
        spec = AccSpec(op, arg)
        whole = fold(spec, docs).result()
        merged = spec.new()
        for part in parts:
            partial = fold(spec, part).partial()
            merged.merge(bson.decode(bson.encode({"p": partial}))["p"])  # through BSON
        got = merged.result()
        if op in ("$stdDevPop", "$stdDevSamp", "$sum", "$avg") and isinstance(whole, float):
            assert isinstance(got, float) and close(got, whole), (op, got, whole)
        else:
            assert close(got, whole), (op, got, whole, parts)


@settings(max_examples=10, deadline=None)
@given(st.lists(NUMBERS, min_size=1, max_size=40))
def test_numeric_results(values: list[Any]) -> None:
    docs = [{"v": v} for v in values]
    assert close(fold(AccSpec("$sum", "$v"), docs).result(), sum(values))
    n = len(values)
    mean = sum(float(v) for v in values) / n
    var = sum((float(v) - mean) ** 2 for v in values) / n
    assert math.isclose(fold(AccSpec("$stdDevPop", "$v"), docs).result(), math.sqrt(var),
                        rel_tol=1e-6, abs_tol=1e-6)


def test_sum_types_decimal_and_overflow() -> None:
    docs = [{"v": Decimal128("100")}, {"v": 70}]
    assert fold(AccSpec("$sum", "$v"), docs).result() == Decimal128("170")
    docs = [{"v": 2**31 - 1}, {"v": 1}]
    out = fold(AccSpec("$sum", "$v"), docs).result()
    assert out == 2**31 and isinstance(out, Int64)
    docs = [{"v": Int64(2**63 - 1)}, {"v": 1}]
    assert fold(AccSpec("$sum", "$v"), docs).result() == float(2**63)
    assert fold(AccSpec("$avg", "$v"), [{"v": "x"}]).result() is None
    assert fold(AccSpec("$sum", "$v"), [{"v": 1}, {"v": 2.5}]).result() == 3.5

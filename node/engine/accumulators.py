"""Accumulators (``$group``, ``$bucket``, ``$setWindowFields`` and the array-expression forms):
``$sum $avg $min $max $first $last $push $addToSet $count $mergeObjects $stdDevPop
$stdDevSamp $top $bottom $topN $bottomN $firstN $lastN $minN $maxN $median $percentile``.

Every accumulator has a mergeable partial state: ``partial()`` is a BSON value and
``merge(partial)`` folds another accumulator's partial in, so that folding documents on
several shards and merging their partials at the router gives what folding every document in
one place gives (tests/test_agg_accumulators.py checks it). The router's ``$group`` merge and
``$group`` spilling to disk both use this one mechanism.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Mapping
from typing import Any

import bson
from bson import Decimal128, Int64

from node.engine.expr_arith import kind, make, to_dec
from node.engine.expressions import Fn, Scope, Vars, compile_expression, err, nullish
from node.engine.values import MISSING, SortKey, compare, hash_key, is_number, number_value

ACCUMULATORS = ("$sum", "$avg", "$min", "$max", "$first", "$last", "$push", "$addToSet",
                "$count", "$mergeObjects", "$stdDevPop", "$stdDevSamp", "$top", "$bottom",
                "$topN", "$bottomN", "$firstN", "$lastN", "$minN", "$maxN", "$median",
                "$percentile")


def value_size(v: Any) -> int:
    if isinstance(v, str | bytes):
        return len(v) + 16
    if isinstance(v, int | float | bool) or v is None:
        return 16
    return len(bson.encode({"": v}))


class Accumulator:
    """One accumulator's running state."""

    op = ""

    def add(self, value: Any) -> None:
        raise NotImplementedError

    def partial(self) -> Any:
        raise NotImplementedError

    def merge(self, partial: Any) -> None:
        raise NotImplementedError

    def result(self) -> Any:
        raise NotImplementedError

    def size(self) -> int:
        return 32


class _Sum(Accumulator):
    """Exact while it can: ints (int32 -> long -> double), Decimal128 sums in Decimal."""

    def __init__(self) -> None:
        self.k = 0
        self.total: Any = 0
        self.n = 0

    def add(self, value: Any) -> None:
        if not is_number(value):
            return
        self.n += 1
        k = kind(value)
        if k > self.k:
            self._promote(k)
        if self.k == 3:
            self.total += to_dec(value)
        elif self.k == 2:
            self.total += float(number_value(value))
        else:
            self.total += int(value)
            if k == 1:
                self.k = max(self.k, 1)

    def _promote(self, k: int) -> None:
        if k == 3:
            self.total = to_dec(make(self.total, 2) if self.k == 2 else int(self.total)) \
                if not isinstance(self.total, decimal.Decimal) else self.total
        elif k == 2:
            self.total = float(self.total)
        self.k = k

    def partial(self) -> Any:
        return {"k": self.k, "n": Int64(self.n), "s": _encode_num(self.total, self.k)}

    def merge(self, partial: Any) -> None:
        k = int(partial["k"])
        self.n += int(partial["n"])
        if k > self.k:
            self._promote(k)
        value = partial["s"]
        if self.k == 3:
            self.total += to_dec(value)
        elif self.k == 2:
            self.total += float(number_value(value))
        else:
            self.total += int(value)

    def result(self) -> Any:
        if self.k == 3:
            return Decimal128(decimal.Context(prec=34).create_decimal(self.total))
        if self.k == 2:
            return float(self.total)
        return make(self.total, self.k)


def _encode_num(total: Any, k: int) -> Any:
    if k == 3:
        return Decimal128(decimal.Context(prec=34).create_decimal(total))
    if k == 2:
        return float(total)
    if -(2**63) <= total < 2**63:
        return Int64(total)
    return str(total)  # an int past int64: exact as text


class _SumInt(_Sum):
    def merge(self, partial: Any) -> None:
        if isinstance(partial.get("s"), str):
            partial = {**partial, "s": int(partial["s"])}
        super().merge(partial)


class _Avg(_SumInt):
    op = "$avg"

    def result(self) -> Any:
        if not self.n:
            return None
        if self.k == 3:
            return Decimal128(decimal.Context(prec=34).divide(self.total, self.n))
        return float(self.total) / self.n


class _Count(Accumulator):
    def __init__(self) -> None:
        self.n = 0

    def add(self, value: Any) -> None:
        self.n += 1

    def partial(self) -> Any:
        return Int64(self.n)

    def merge(self, partial: Any) -> None:
        self.n += int(partial)

    def result(self) -> Any:
        return make(self.n, 0)


class _MinMax(Accumulator):
    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.value: Any = MISSING

    def add(self, value: Any) -> None:
        if nullish(value):
            return
        if self.value is MISSING or compare(value, self.value) * self.sign < 0:
            self.value = value

    def partial(self) -> Any:
        return [] if self.value is MISSING else [self.value]

    def merge(self, partial: Any) -> None:
        if partial:
            self.add(partial[0])

    def result(self) -> Any:
        return None if self.value is MISSING else self.value

    def size(self) -> int:
        return 32 + (0 if self.value is MISSING else value_size(self.value))


class _First(Accumulator):
    def __init__(self, last: bool) -> None:
        self.last = last
        self.value: Any = MISSING
        self.seen = False

    def add(self, value: Any) -> None:
        if self.last or not self.seen:
            self.value = None if value is MISSING else value
            self.seen = True

    def partial(self) -> Any:
        return [self.value] if self.seen else []

    def merge(self, partial: Any) -> None:
        if partial:
            self.add(partial[0])

    def result(self) -> Any:
        return None if not self.seen else self.value

    def size(self) -> int:
        return 32 + (value_size(self.value) if self.seen else 0)


class _Push(Accumulator):
    def __init__(self, unique: bool) -> None:
        self.unique = unique
        self.items: list[Any] = []
        self.seen: set[Any] = set()
        self.bytes = 32

    def add(self, value: Any) -> None:
        if value is MISSING:
            return
        if self.unique:
            h = hash_key(value)
            if h in self.seen:
                return
            self.seen.add(h)
        self.items.append(value)
        self.bytes += value_size(value) * (2 if self.unique else 1)

    def partial(self) -> Any:
        return list(self.items)

    def merge(self, partial: Any) -> None:
        for v in partial:
            self.add(v)

    def result(self) -> Any:
        return list(self.items)

    def size(self) -> int:
        return self.bytes


class _MergeObjects(Accumulator):
    def __init__(self) -> None:
        self.out: dict[str, Any] = {}

    def add(self, value: Any) -> None:
        if nullish(value):
            return
        if not isinstance(value, Mapping):
            raise err(40400, "$mergeObjects requires object inputs, but input is of type "
                      f"{type(value).__name__}")
        self.out.update(value)

    def partial(self) -> Any:
        return dict(self.out)

    def merge(self, partial: Any) -> None:
        self.add(partial)

    def result(self) -> Any:
        return dict(self.out)

    def size(self) -> int:
        return value_size(self.out)


class _StdDev(Accumulator):
    """Welford's running mean and M2, merged with Chan et al.'s parallel formula."""

    def __init__(self, sample: bool) -> None:
        self.sample = sample
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, value: Any) -> None:
        if not is_number(value):
            return
        x = float(number_value(value))
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    def partial(self) -> Any:
        return {"n": Int64(self.n), "mean": self.mean, "m2": self.m2}

    def merge(self, partial: Any) -> None:
        n2 = int(partial["n"])
        if not n2:
            return
        mean2, m22 = float(partial["mean"]), float(partial["m2"])
        n = self.n + n2
        d = mean2 - self.mean
        self.mean += d * n2 / n
        self.m2 += m22 + d * d * self.n * n2 / n
        self.n = n

    def result(self) -> Any:
        n = self.n - 1 if self.sample else self.n
        if n <= 0:
            return None
        return math.sqrt(max(self.m2, 0.0) / n)


class _TopN(Accumulator):
    """``$top $bottom $topN $bottomN``: the ``n`` best (sort key, output) pairs."""

    def __init__(self, n: int, directions: list[int], bottom: bool, single: bool) -> None:
        self.n, self.directions, self.bottom, self.single = n, directions, bottom, single
        self.items: list[tuple[list[Any], Any, int]] = []
        self.counter = 0

    def _key(self, item: tuple[list[Any], Any, int]) -> Any:
        keys = tuple(_Dir(SortKey(v), d) for v, d in zip(item[0], self.directions, strict=True))
        return (keys, item[2])

    def add(self, value: Any) -> None:
        keys, out = value
        self.counter += 1
        self.items.append((keys, None if out is MISSING else out, self.counter))
        if len(self.items) > 4 * self.n + 16:
            self._trim()

    def _trim(self) -> None:
        self.items.sort(key=self._key)
        self.items = self.items[-self.n:] if self.bottom else self.items[:self.n]

    def partial(self) -> Any:
        self._trim()
        return [[k, o] for k, o, _ in self.items]

    def merge(self, partial: Any) -> None:
        for k, o in partial:
            self.add((k, o))

    def result(self) -> Any:
        self._trim()
        outs = [o for _, o, _ in self.items]
        if self.single:
            return outs[0] if outs else None
        return outs

    def size(self) -> int:
        return 32 + sum(value_size(o) + 32 for _, o, _ in self.items)


class _Dir:
    __slots__ = ("d", "k")

    def __init__(self, k: SortKey, d: int) -> None:
        self.k, self.d = k, d

    def __lt__(self, other: _Dir) -> bool:
        return self.k < other.k if self.d == 1 else other.k < self.k

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Dir) and self.k == other.k

    __hash__ = None  # type: ignore[assignment]


class _FirstN(Accumulator):
    def __init__(self, n: int, last: bool) -> None:
        self.n, self.last = n, last
        self.items: list[Any] = []

    def add(self, value: Any) -> None:
        self.items.append(None if value is MISSING else value)
        if self.last and len(self.items) > self.n:
            del self.items[0]
        elif not self.last and len(self.items) > self.n:
            self.items.pop()

    def partial(self) -> Any:
        return list(self.items)

    def merge(self, partial: Any) -> None:
        for v in partial:
            self.add(v)

    def result(self) -> Any:
        return list(self.items)

    def size(self) -> int:
        return 32 + sum(value_size(v) for v in self.items)


class _MinMaxN(Accumulator):
    def __init__(self, n: int, sign: int) -> None:
        self.n, self.sign = n, sign
        self.items: list[Any] = []

    def add(self, value: Any) -> None:
        if nullish(value):
            return
        self.items.append(value)
        if len(self.items) > 4 * self.n + 16:
            self._trim()

    def _trim(self) -> None:
        self.items.sort(key=SortKey, reverse=self.sign < 0)
        del self.items[self.n:]

    def partial(self) -> Any:
        self._trim()
        return list(self.items)

    def merge(self, partial: Any) -> None:
        for v in partial:
            self.add(v)

    def result(self) -> Any:
        self._trim()
        return list(self.items)

    def size(self) -> int:
        return 32 + sum(value_size(v) for v in self.items)


class _Percentile(Accumulator):
    """``$percentile``/``$median`` (method ``approximate``): computed exactly, as the value at
    rank ``ceil(p * n)`` of the sorted numeric inputs (MongoDB's answer for small inputs)."""

    def __init__(self, ps: list[float], single: bool) -> None:
        self.ps, self.single = ps, single
        self.values: list[float] = []

    def add(self, value: Any) -> None:
        if is_number(value):
            x = float(number_value(value))
            if not math.isnan(x):
                self.values.append(x)

    def partial(self) -> Any:
        return list(self.values)

    def merge(self, partial: Any) -> None:
        self.values.extend(float(x) for x in partial)

    def result(self) -> Any:
        if not self.values:
            return None if self.single else [None] * len(self.ps)
        vs = sorted(self.values)
        n = len(vs)
        out = [vs[max(math.ceil(p * n) - 1, 0)] for p in self.ps]
        return out[0] if self.single else out

    def size(self) -> int:
        return 32 + 16 * len(self.values)


# --- specs ---------------------------------------------------------------------------------


class AccSpec:
    """A compiled ``{<op>: <argument>}``: ``value(vars)`` is what one document adds and
    ``new()`` a fresh accumulator."""

    def __init__(self, op: str, arg: Any, scope: Scope | None = None) -> None:
        scope = scope or Scope()
        self.op = op
        self.arg = arg
        if op not in ACCUMULATORS:
            raise err(15952, f"unknown group operator '{op}'")
        self.n = 1
        self.directions: list[int] = []
        self.ps: list[float] = []
        if op in ("$top", "$bottom", "$topN", "$bottomN"):
            need = ["output", "sortBy"] + (["n"] if op.endswith("N") else [])
            spec = _named(op, arg, need)
            from node.engine.sorting import parse_sort
            sort = parse_sort(spec["sortBy"])
            paths = [p for p, _ in sort]
            self.directions = [d for _, d in sort]
            out_fn = compile_expression(spec["output"], scope)
            path_fns = [compile_expression("$" + p, scope) for p in paths]
            if op.endswith("N"):
                self.n = _n_value(op, spec["n"])

            def top_value(v: Vars) -> Any:
                keys = [None if (x := f(v)) is MISSING else x for f in path_fns]
                return (keys, out_fn(v))
            self.value: Fn = top_value
        elif op in ("$firstN", "$lastN", "$minN", "$maxN"):
            spec = _named(op, arg, ["input", "n"])
            self.n = _n_value(op, spec["n"])
            self.value = compile_expression(spec["input"], scope)
        elif op in ("$median", "$percentile"):
            spec = _named(op, arg, ["input", "method"] + (["p"] if op == "$percentile" else []))
            if spec["method"] not in ("approximate", "discrete", "continuous"):
                raise err(7436200, f"Currently only 'approximate' can be used as percentile "
                          f"'method', got {spec['method']!r}")
            if op == "$percentile":
                ps = spec["p"]
                if not isinstance(ps, list) or not ps or not all(
                        is_number(p) and 0 <= number_value(p) <= 1 for p in ps):
                    raise err(7750301, "The $percentile 'p' field must be an array of numbers "
                              "from [0.0, 1.0]")
                self.ps = [float(number_value(p)) for p in ps]
            else:
                self.ps = [0.5]
            self.value = compile_expression(spec["input"], scope)
        elif op == "$count":
            if not isinstance(arg, Mapping) or arg:
                raise err(4544702, "$count takes no arguments, i.e. $count:{}")
            self.value = lambda v: 1
        else:
            if isinstance(arg, list):
                raise err(40237, f"The {op} accumulator is a unary operator")
            self.value = compile_expression(arg, scope)

    def new(self) -> Accumulator:
        return make_accumulator(self.op, self)


def _named(op: str, arg: Any, need: list[str]) -> dict[str, Any]:
    if not isinstance(arg, Mapping):
        raise err(5787801, f"specification must be an object; found {arg!r}")
    for k in arg:
        if k not in need:
            raise err(5787901, f"Unknown argument for '{op}' accumulator: {k}")
    for k in need:
        if k not in arg:
            raise err(5788003 if k == "n" else 5788004, f"Missing value for '{k}'")
    return dict(arg)


def _n_value(op: str, n: Any) -> int:
    if not is_number(n) or number_value(n) != int(number_value(n)):
        raise err(5787902, f"Value for 'n' must be of integral type, but found {n!r}")
    n = int(number_value(n))
    if n <= 0:
        raise err(5787908, f"'n' must be greater than 0, found {n}")
    return n


def make_accumulator(op: str, spec: AccSpec | None) -> Accumulator:
    n = spec.n if spec is not None else 1
    if op == "$sum":
        acc: Accumulator = _SumInt()
    elif op == "$avg":
        acc = _Avg()
    elif op == "$count":
        acc = _Count()
    elif op in ("$min", "$max"):
        acc = _MinMax(1 if op == "$min" else -1)
    elif op in ("$first", "$last"):
        acc = _First(op == "$last")
    elif op in ("$push", "$addToSet"):
        acc = _Push(op == "$addToSet")
    elif op == "$mergeObjects":
        acc = _MergeObjects()
    elif op in ("$stdDevPop", "$stdDevSamp"):
        acc = _StdDev(op == "$stdDevSamp")
    elif op in ("$top", "$bottom", "$topN", "$bottomN"):
        assert spec is not None
        acc = _TopN(n, spec.directions, op.startswith("$bottom"), not op.endswith("N"))
    elif op in ("$firstN", "$lastN"):
        acc = _FirstN(n, op == "$lastN")
    elif op in ("$minN", "$maxN"):
        acc = _MinMaxN(n, 1 if op == "$minN" else -1)
    elif op in ("$median", "$percentile"):
        acc = _Percentile(spec.ps if spec is not None else [0.5], op == "$median")
    else:
        raise err(15952, f"unknown group operator '{op}'")
    acc.op = op
    return acc

"""Array and set expressions: ``$arrayElemAt $arrayToObject $objectToArray $concatArrays
$filter $map $reduce $first $last $firstN $lastN $maxN $minN $in $indexOfArray $isArray
$range $reverseArray $size $slice $sortArray $zip``, the set operators, and the accumulator
names used as expressions over arrays (``$sum $avg $min $max $stdDevPop $stdDevSamp``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.engine.expressions import (
    Fn,
    Scope,
    Vars,
    compile_expression,
    err,
    named_args,
    nullish,
    register,
    simple,
    truthy,
)
from node.engine.values import (
    MISSING,
    SortKey,
    compare,
    hash_key,
    is_number,
    number_value,
    type_name,
)


def _elem_at(a: Any, i: Any) -> Any:
    if nullish(a) or nullish(i):
        return None
    if not isinstance(a, list):
        raise err(28689, f"$arrayElemAt's first argument must be an array, but is "
                  f"{type_name(a)}")
    if not is_number(i):
        raise err(28690, f"$arrayElemAt's second argument must be a numeric value, but is "
                  f"{type_name(i)}")
    n = number_value(i)
    if n != int(n):
        raise err(28691, "$arrayElemAt's second argument must be representable as a 32-bit "
                  "integer")
    n = int(n)
    if -len(a) <= n < len(a):
        return a[n]
    return MISSING


def _first_last(name: str, idx: int) -> Any:
    def run(a: Any) -> Any:
        if nullish(a):
            return None
        if not isinstance(a, list):
            raise err(28689, f"{name}'s argument must be an array, but is {type_name(a)}")
        return a[idx] if a else MISSING
    return run


def _concat_arrays(*args: Any) -> Any:
    out: list[Any] = []
    for a in args:
        if nullish(a):
            return None
        if not isinstance(a, list):
            raise err(28664, f"$concatArrays only supports arrays, not {type_name(a)}")
        out.extend(a)
    return out


def _in(x: Any, a: Any) -> bool:
    if not isinstance(a, list):
        raise err(40081, f"$in requires an array as a second argument, found: {type_name(a)}")
    x = None if x is MISSING else x
    return any(compare(x, e) == 0 for e in a)


def _index_of_array(a: Any, x: Any, start: Any = 0, end: Any = None) -> Any:
    if nullish(a):
        return None
    if not isinstance(a, list):
        raise err(40090, f"$indexOfArray requires an array as a first argument, found: "
                  f"{type_name(a)}")
    for v in (start, end):
        if v is None:
            continue
        if not is_number(v) or int(number_value(v)) != number_value(v):
            raise err(40096, "$indexOfArray requires an integral starting index, found a value "
                      f"of type: {type_name(v)}")
        if number_value(v) < 0:
            raise err(40097, f"$indexOfArray requires a nonnegative starting index, found: {v}")
    b = int(number_value(start))
    e = len(a) if end is None else min(int(number_value(end)), len(a))
    x = None if x is MISSING else x
    for i in range(b, e):
        if compare(a[i], x) == 0:
            return i
    return -1


def _is_array(a: Any) -> bool:
    return isinstance(a, list)


def _range(start: Any, end: Any, step: Any = 1) -> list[int]:
    for v, which, code in ((start, "starting value", 34443), (end, "ending value", 34445),
                           (step, "step value", 34447)):
        if not is_number(v):
            raise err(code - 1, f"$range requires a numeric {which}, found value of type: "
                      f"{type_name(v)}")
        if int(number_value(v)) != number_value(v):
            raise err(code, f"$range requires a {which} that can be represented as a 32-bit "
                      f"integer, found value: {v}")
    s = int(number_value(step))
    if s == 0:
        raise err(34449, "$range requires a non-zero step value")
    return list(range(int(number_value(start)), int(number_value(end)), s))


def _reverse(a: Any) -> Any:
    if nullish(a):
        return None
    if not isinstance(a, list):
        raise err(34435, f"The argument to $reverseArray must be an array, but was of type: "
                  f"{type_name(a)}")
    return a[::-1]


def _size(a: Any) -> int:
    if not isinstance(a, list):
        raise err(17124, f"The argument to $size must be an array, but was of type: "
                  f"{type_name(a)}")
    return len(a)


def _slice(a: Any, x: Any, y: Any = MISSING) -> Any:
    if nullish(a):
        return None
    if not isinstance(a, list):
        raise err(28724, f"First argument to $slice must be an array, but is of type: "
                  f"{type_name(a)}")
    if nullish(x) or (y is not MISSING and nullish(y)):
        return None
    if not is_number(x) or int(number_value(x)) != number_value(x):
        raise err(28725, f"Second argument to $slice must be a numeric value, but is of type: "
                  f"{type_name(x)}")
    n = int(number_value(x))
    if y is MISSING:
        return a[n:] if n < 0 else a[:n]
    if not is_number(y) or int(number_value(y)) != number_value(y):
        raise err(28724, f"Third argument to $slice must be numeric, but is of type: "
                  f"{type_name(y)}")
    m = int(number_value(y))
    if m <= 0:
        raise err(28729, f"Third argument to $slice must be positive: {m}")
    start = max(len(a) + n, 0) if n < 0 else n
    return a[start:start + m]


def _array_to_object(a: Any) -> Any:
    if nullish(a):
        return None
    if not isinstance(a, list):
        raise err(40386, f"$arrayToObject requires an array input, found: {type_name(a)}")
    out: dict[str, Any] = {}
    for e in a:
        if isinstance(e, list):
            if len(e) != 2:
                raise err(40397, "$arrayToObject requires an array of size 2 arrays,found "
                          f"array of size: {len(e)}")
            k, v = e
        elif isinstance(e, Mapping):
            if set(e) != {"k", "v"} or len(e) != 2:
                raise err(40392, "$arrayToObject requires an object keys of 'k' and 'v'. "
                          f"Found incorrect number of keys:{len(e)}")
            k, v = e["k"], e["v"]
        else:
            raise err(40398, "Unrecognised input type format for $arrayToObject: "
                      f"{type_name(e)}")
        if not isinstance(k, str):
            raise err(40395, f"$arrayToObject requires an object with keys 'k' and 'v', where "
                      f"the value of 'k' is of type 'string'. Found type: {type_name(k)}")
        if "\0" in k:
            raise err(4940400, "Key field cannot contain an embedded null byte")
        out[k] = v
    return out


def _object_to_array(o: Any) -> Any:
    if nullish(o):
        return None
    if not isinstance(o, Mapping):
        raise err(40390, f"$objectToArray requires a document input, found: {type_name(o)}")
    return [{"k": k, "v": v} for k, v in o.items()]


@register("$filter")
def _filter(arg: Any, scope: Scope) -> Fn:
    spec = named_args("$filter", arg, ["input", "cond"], ["as", "limit"], 28647)
    name = spec.get("as", "this")
    inp = compile_expression(spec["input"], scope)
    cond = compile_expression(spec["cond"], scope.with_names(name))
    limit = compile_expression(spec["limit"], scope) if "limit" in spec else None

    def run(v: Vars) -> Any:
        a = inp(v)
        if nullish(a):
            return None
        if not isinstance(a, list):
            raise err(28651, f"input to $filter must be an array not {type_name(a)}")
        n = None
        if limit is not None:
            lv = limit(v)
            if not nullish(lv):
                if not is_number(lv) or int(number_value(lv)) != number_value(lv):
                    raise err(327391, "$filter: limit must be represented as a 32-bit integral "
                              "value")
                n = int(number_value(lv))
                if n < 1:
                    raise err(327392, "$filter: limit must be greater than 0")
        out = []
        for e in a:
            if truthy(cond(v.child(**{name: e}))):
                out.append(e)
                if n is not None and len(out) >= n:
                    break
        return out
    return run


@register("$map")
def _map(arg: Any, scope: Scope) -> Fn:
    spec = named_args("$map", arg, ["input", "in"], ["as"], 16879)
    name = spec.get("as", "this")
    inp = compile_expression(spec["input"], scope)
    body = compile_expression(spec["in"], scope.with_names(name))

    def run(v: Vars) -> Any:
        a = inp(v)
        if nullish(a):
            return None
        if not isinstance(a, list):
            raise err(16883, f"input to $map must be an array not {type_name(a)}")
        out = []
        for e in a:
            r = body(v.child(**{name: e}))
            out.append(None if r is MISSING else r)
        return out
    return run


@register("$reduce")
def _reduce(arg: Any, scope: Scope) -> Fn:
    spec = named_args("$reduce", arg, ["input", "initialValue", "in"], [], 40076)
    inp = compile_expression(spec["input"], scope)
    init = compile_expression(spec["initialValue"], scope)
    body = compile_expression(spec["in"], scope.with_names("this", "value"))

    def run(v: Vars) -> Any:
        a = inp(v)
        if nullish(a):
            return None
        if not isinstance(a, list):
            raise err(40080, f"$reduce requires that 'input' be an array, found: {a!r}")
        acc = init(v)
        for e in a:
            acc = body(v.child(this=e, value=acc))
        return acc
    return run


@register("$zip")
def _zip(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping):
        raise err(34460, "$zip only supports an object as an argument")
    for k in arg:
        if k not in ("inputs", "useLongestLength", "defaults"):
            raise err(34464, f"$zip found an unknown argument: {k}")
    if "inputs" not in arg:
        raise err(34465, "$zip requires at least one input array")
    inputs = arg["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise err(34461, "inputs must be an array of expressions")
    longest = bool(arg.get("useLongestLength", False))
    if "defaults" in arg and not longest:
        raise err(34466, "cannot specify defaults unless useLongestLength is true")
    fns = [compile_expression(i, scope) for i in inputs]
    dflt = compile_expression(arg["defaults"], scope) if "defaults" in arg else None

    def run(v: Vars) -> Any:
        arrays = []
        for f in fns:
            a = f(v)
            if nullish(a):
                return None
            if not isinstance(a, list):
                raise err(34468, f"$zip found a non-array expression in input: {a!r}")
            arrays.append(a)
        defaults = [None] * len(arrays)
        if dflt is not None:
            d = dflt(v)
            if not isinstance(d, list) or len(d) != len(arrays):
                raise err(34467, "defaults and inputs must have the same length")
            defaults = d
        n = max(map(len, arrays)) if longest else min(map(len, arrays))
        return [[a[i] if i < len(a) else defaults[j] for j, a in enumerate(arrays)]
                for i in range(n)]
    return run


@register("$sortArray")
def _sort_array(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping):
        raise err(2942500, "$sortArray requires an object as an argument")
    for k in arg:
        if k not in ("input", "sortBy"):
            raise err(2942501, f"$sortArray found an unknown argument: {k}")
    if "input" not in arg:
        raise err(2942502, "$sortArray requires 'input' to be specified")
    if "sortBy" not in arg:
        raise err(2942503, "$sortArray requires 'sortBy' to be specified")
    inp = compile_expression(arg["input"], scope)
    by = arg["sortBy"]
    if isinstance(by, Mapping):
        from node.engine.sorting import Sort
        sort = Sort(by)
        key: Any = lambda e: sort.key(e if isinstance(e, Mapping) else {})  # noqa: E731
    elif by in (1, -1):
        key = SortKey
    else:
        raise err(2942505, "$sortArray sortBy must be 1, -1 or a sort specification")

    def run(v: Vars) -> Any:
        a = inp(v)
        if nullish(a):
            return None
        if not isinstance(a, list):
            raise err(2942504, f"The input argument to $sortArray must be an array, but was of "
                      f"type: {type_name(a)}")
        return sorted(a, key=key, reverse=(by == -1))
    return run


def _n_of(name: str) -> None:
    @register(name)
    def compile_(arg: Any, scope: Scope) -> Fn:
        spec = named_args(name, arg, ["input", "n"], [], 5787900)
        inp = compile_expression(spec["input"], scope)
        nf = compile_expression(spec["n"], scope)

        def run(v: Vars) -> Any:
            n = nf(v)
            if not is_number(n) or int(number_value(n)) != number_value(n):
                raise err(5787902, f"Value for 'n' must be of integral type, but found {n!r}")
            n = int(number_value(n))
            if n <= 0:
                raise err(5787908, "'n' must be greater than 0, found " + str(n))
            a = inp(v)
            if nullish(a):
                return None
            if not isinstance(a, list):
                raise err(5788200, f"Input must be an array, but found {type_name(a)}")
            if name == "$firstN":
                return a[:n]
            if name == "$lastN":
                return a[-n:]
            vals = [e for e in a if not nullish(e)]
            vals.sort(key=SortKey, reverse=(name == "$maxN"))
            return vals[:n]
        return run


# --- sets -------------------------------------------------------------------------------------

def _set_args(name: str, args: tuple[Any, ...], code: int) -> list[list[Any]] | None:
    out = []
    for a in args:
        if nullish(a):
            return None
        if not isinstance(a, list):
            raise err(code, f"All operands of {name} must be arrays. One argument is of type: "
                      f"{type_name(a)}")
        out.append(a)
    return out


def _unique(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for v in values:
        h = hash_key(v)
        if h not in seen:
            seen.add(h)
            out.append(v)
    return out


def _set_union(*args: Any) -> Any:
    arrays = _set_args("$setUnion", args, 17043)
    return None if arrays is None else _unique([e for a in arrays for e in a])


def _set_intersection(*args: Any) -> Any:
    arrays = _set_args("$setIntersection", args, 17047)
    if arrays is None:
        return None
    if not arrays:
        return []
    keep = {hash_key(e) for e in arrays[0]}
    for a in arrays[1:]:
        keep &= {hash_key(e) for e in a}
    return [e for e in _unique(arrays[0]) if hash_key(e) in keep]


def _set_difference(a: Any, b: Any) -> Any:
    if nullish(a) or nullish(b):
        return None
    if not isinstance(a, list) or not isinstance(b, list):
        raise err(17048, "both operands of $setDifference must be arrays. "
                  f"{'First' if not isinstance(a, list) else 'Second'} argument is of type: "
                  f"{type_name(a if not isinstance(a, list) else b)}")
    drop = {hash_key(e) for e in b}
    return [e for e in _unique(a) if hash_key(e) not in drop]


def _set_equals(*args: Any) -> bool:
    for a in args:
        if not isinstance(a, list):
            raise err(17044, f"All operands of $setEquals must be arrays. One argument is of "
                      f"type: {type_name(a)}")
    sets = [{hash_key(e) for e in a} for a in args]
    return all(s == sets[0] for s in sets[1:])


def _set_is_subset(a: Any, b: Any) -> bool:
    if not isinstance(a, list):
        raise err(17046, f"both operands of $setIsSubset must be arrays. First argument is of "
                  f"type: {type_name(a)}")
    if not isinstance(b, list):
        raise err(17042, f"both operands of $setIsSubset must be arrays. Second argument is of "
                  f"type: {type_name(b)}")
    return {hash_key(e) for e in a} <= {hash_key(e) for e in b}


def _elements_true(name: str, every: bool) -> Any:
    def run(a: Any) -> bool:
        if not isinstance(a, list):
            raise err(17040 if every else 17041, f"{name}'s argument must be an array, but is "
                      f"{type_name(a)}")
        return all(truthy(e) for e in a) if every else any(truthy(e) for e in a)
    return run


# --- accumulators as expressions ----------------------------------------------------------------

def _acc_expr(name: str) -> None:
    @register(name)
    def compile_(arg: Any, scope: Scope) -> Fn:
        from node.engine.accumulators import make_accumulator
        fns = [compile_expression(a, scope) for a in
               (arg if isinstance(arg, list) else [arg])]

        def run(v: Vars) -> Any:
            acc = make_accumulator(name, None)
            if not isinstance(arg, list):
                value = fns[0](v)
                for e in value if isinstance(value, list) else [value]:
                    acc.add(e)
            else:
                for f in fns:
                    acc.add(f(v))
            return acc.result()
        return run


simple("$arrayElemAt", _elem_at, 2, 2)
simple("$first", _first_last("$first", 0))
simple("$last", _first_last("$last", -1))
simple("$concatArrays", _concat_arrays, 0, None)
simple("$in", _in, 2, 2)
simple("$indexOfArray", _index_of_array, 2, 4)
simple("$isArray", _is_array)
simple("$range", _range, 2, 3)
simple("$reverseArray", _reverse)
simple("$size", _size)
simple("$slice", _slice, 2, 3)
simple("$arrayToObject", _array_to_object)
simple("$objectToArray", _object_to_array)
simple("$setUnion", _set_union, 0, None)
simple("$setIntersection", _set_intersection, 0, None)
simple("$setDifference", _set_difference, 2, 2)
simple("$setEquals", _set_equals, 2, None)
simple("$setIsSubset", _set_is_subset, 2, 2)
simple("$allElementsTrue", _elements_true("$allElementsTrue", True))
simple("$anyElementTrue", _elements_true("$anyElementTrue", False))
for _n in ("$firstN", "$lastN", "$maxN", "$minN"):
    _n_of(_n)
for _n in ("$sum", "$avg", "$min", "$max", "$stdDevPop", "$stdDevSamp"):
    _acc_expr(_n)

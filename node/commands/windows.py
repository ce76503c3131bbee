"""``$setWindowFields``, ``$densify`` and ``$fill``: blocking stages over partitions of the
documents, sorted by ``sortBy``.

Window functions are the accumulators (:mod:`node.engine.accumulators`) over a ``documents``
or ``range`` window (default: the whole partition; a running window from ``unbounded`` is
folded incrementally), plus ``$rank $denseRank $documentNumber $shift $derivative $integral
$expMovingAvg $covariancePop $covarianceSamp $locf $linearFill``.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from node.engine.accumulators import ACCUMULATORS, AccSpec
from node.engine.errors import MongoError
from node.engine.expressions import Vars, nullish
from node.engine.sorting import Sort
from node.engine.values import MISSING, compare, hash_key, is_number, number_value

if TYPE_CHECKING:
    from node.commands.pipeline import PipelineContext, Stage

RANKS = ("$rank", "$denseRank", "$documentNumber")
OTHERS = ("$shift", "$derivative", "$integral", "$expMovingAvg", "$covariancePop",
          "$covarianceSamp", "$locf", "$linearFill")
_MS = {"week": 604800000, "day": 86400000, "hour": 3600000, "minute": 60000, "second": 1000,
       "millisecond": 1}


def _err(code: int, msg: str) -> MongoError:
    return MongoError(code, msg, code_name=f"Location{code}")


def _num(v: Any) -> float | None:
    if isinstance(v, datetime.datetime):
        from node.engine.values import datetime_to_millis
        return float(datetime_to_millis(v))
    if is_number(v):
        return float(number_value(v))
    return None


def _partitions(docs: Iterable[dict[str, Any]], key: Callable[[Any], Any] | None,
                sort: Sort | None) -> list[list[dict[str, Any]]]:
    parts: dict[Any, list[dict[str, Any]]] = {}
    for d in docs:
        k = hash_key(None if key is None else (None if (v := key(d)) is MISSING else v))
        parts.setdefault(k, []).append(d)
    out = list(parts.values())
    if sort:
        out = [sort.sort(p) for p in out]  # type: ignore[misc]
    return out


def _bounds(window: Any, n: int, i: int, xs: list[float | None] | None, unit: str | None
            ) -> tuple[int, int]:
    """The window of document ``i`` as a slice ``[lo, hi)`` of its partition."""
    if window is None:
        return 0, n
    if "documents" in window:
        lo, hi = window["documents"]
        a = 0 if lo == "unbounded" else max(0, i + (0 if lo == "current" else int(lo)))
        b = n if hi == "unbounded" else min(n, i + 1 + (0 if hi == "current" else int(hi)))
        return a, max(a, b)
    lo, hi = window["range"]
    assert xs is not None
    x = xs[i]
    scale = _MS.get(unit or "", 1) if unit else 1
    if x is None:
        return i, i
    lo_v = None if lo == "unbounded" else x + (0 if lo == "current" else float(lo) * scale)
    hi_v = None if hi == "unbounded" else x + (0 if hi == "current" else float(hi) * scale)
    a = 0
    while a < n and (xs[a] is None or (lo_v is not None and xs[a] < lo_v)):  # type: ignore
        a += 1
    b = a
    while b < n and (xs[b] is not None and (hi_v is None or xs[b] <= hi_v)):  # type: ignore
        b += 1
    return a, b


def set_window_fields(arg: Any, ctx: PipelineContext) -> Stage:
    if not isinstance(arg, Mapping) or "output" not in arg:
        raise _err(40414, "BSON field '$setWindowFields.output' is missing but a required field")
    for k in arg:
        if k not in ("partitionBy", "sortBy", "output"):
            raise _err(40415, f"BSON field '$setWindowFields.{k}' is an unknown field.")
    part_key = ctx.expr(arg["partitionBy"]) if "partitionBy" in arg else None
    sort = Sort(arg["sortBy"]) if "sortBy" in arg else None
    sort_field = next(iter(arg["sortBy"])) if "sortBy" in arg else None
    outputs = []
    for field, spec in arg["output"].items():
        if not isinstance(spec, Mapping):
            raise _err(40415, f"'{field}' must be a window function object")
        fn_names = [k for k in spec if k != "window"]
        if len(fn_names) != 1:
            raise _err(5397900, "Expected exactly one function in a window output spec")
        op = fn_names[0]
        window = spec.get("window")
        unit = None
        if window is not None:
            if not isinstance(window, Mapping) or not ("documents" in window) ^ (
                    "range" in window):
                raise _err(5397901, "'window' field must specify either 'documents' or "
                           "'range'")
            unit = window.get("unit")
            if "range" in window and sort is None:
                raise _err(5339902, "Range-based windows require sortBy")
            if "range" in window and len(arg["sortBy"]) != 1:
                raise _err(5339902, "Range-based windows require a sortBy on one field")
        if op in RANKS:
            if sort is None:
                raise _err(5371602, f"{op} must be specified with a top level sortBy "
                           "expression with exactly one element")
            outputs.append((field, op, None, window, unit))
        elif op in ACCUMULATORS:
            outputs.append((field, op, AccSpec(op, spec[op], ctx.scope()), window, unit))
        elif op in OTHERS:
            if op in ("$shift", "$derivative", "$integral", "$locf", "$linearFill") and \
                    sort is None:
                raise _err(5371602, f"{op} requires a sortBy")
            outputs.append((field, op, spec[op], window, unit))
        else:
            raise _err(5397906, f"Unrecognized window function, {op}")
    xs_needed = any((w is not None and "range" in w) or op in ("$derivative", "$integral",
                                                              "$linearFill")
                    for _, op, _, w, _ in outputs)

    def run(docs: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        from node.commands.pipeline import set_path
        for part in _partitions(docs, part_key, sort):
            xs = [_num(d.get(sort_field, MISSING)) if sort_field else None for d in part] \
                if xs_needed else None
            cols: list[list[Any]] = []
            for _, op, spec, window, unit in outputs:
                cols.append(_column(op, spec, window, unit, part, xs, sort, ctx))
            for i, d in enumerate(part):
                out = dict(d)
                for (field, *_), col in zip(outputs, cols, strict=True):
                    set_path(out, field.split("."), col[i])
                yield out
    return run


def _column(op: str, spec: Any, window: Any, unit: str | None, part: list[dict[str, Any]],
            xs: list[float | None] | None, sort: Sort | None, ctx: PipelineContext
            ) -> list[Any]:
    n = len(part)
    if op in RANKS:
        assert sort is not None
        out: list[Any] = []
        rank = dense = 0
        prev: Any = None
        for i, d in enumerate(part):
            key = sort.key(d)
            if i == 0 or key != prev:
                rank, dense = i + 1, dense + 1
            prev = key
            out.append(i + 1 if op == "$documentNumber" else rank if op == "$rank" else dense)
        return out
    if isinstance(spec, AccSpec):
        vals = [spec.value(Vars(d, ctx.variables)) for d in part]
        if window is None or (window.get("documents", [None])[0] == "unbounded" and
                              window.get("documents", [None, None])[1] == "current"):
            if window is None:
                acc = spec.new()
                for v in vals:
                    acc.add(v)
                return [acc.result()] * n
            acc = spec.new()
            res = []
            for v in vals:
                acc.add(v)
                res.append(acc.result())
            return res
        res = []
        for i in range(n):
            a, b = _bounds(window, n, i, xs, unit)
            acc = spec.new()
            for v in vals[a:b]:
                acc.add(v)
            res.append(acc.result())
        return res
    if op == "$shift":
        if not isinstance(spec, Mapping) or "output" not in spec or "by" not in spec:
            raise _err(5433601, "$shift requires 'output' and 'by'")
        f = ctx.expr(spec["output"])
        by = int(spec["by"])
        dflt = spec.get("default")
        return [(None if (v := f(part[i + by])) is MISSING else v) if 0 <= i + by < n else dflt
                for i in range(n)]
    if op in ("$locf", "$linearFill"):
        f = ctx.expr(spec)
        vals = [f(d) for d in part]
        if op == "$locf":
            res, last = [], None
            for v in vals:
                if not nullish(v):
                    last = v
                res.append(last if nullish(v) else v)
            return res
        res = list(vals)
        known = [i for i, v in enumerate(vals) if not nullish(v)]
        for a, b in itertools.pairwise(known):
            xa, xb = (xs[a], xs[b]) if xs else (a, b)
            for k in range(a + 1, b):
                xk = xs[k] if xs else k
                if None in (xa, xb, xk) or xa == xb:
                    continue
                ya, yb = float(number_value(vals[a])), float(number_value(vals[b]))
                res[k] = ya + (yb - ya) * (xk - xa) / (xb - xa)  # type: ignore[operator]
        return [None if v is MISSING else v for v in res]
    if op == "$expMovingAvg":
        f = ctx.expr(spec["input"])
        if "N" in spec:
            alpha = 2.0 / (int(spec["N"]) + 1)
        elif "alpha" in spec:
            alpha = float(spec["alpha"])
        else:
            raise _err(5433602, "$expMovingAvg requires 'N' or 'alpha'")
        res, ema = [], None
        for d in part:
            v = f(d)
            if is_number(v):
                x = float(number_value(v))
                ema = x if ema is None else alpha * x + (1 - alpha) * ema
            res.append(ema)
        return res
    if op in ("$covariancePop", "$covarianceSamp"):
        fx, fy = ctx.expr(spec[0]), ctx.expr(spec[1])
        pts = [(_num(fx(d)), _num(fy(d))) for d in part]
        res = []
        for i in range(n):
            a, b = _bounds(window, n, i, xs, unit)
            sel = [(x, y) for x, y in pts[a:b] if x is not None and y is not None]
            m = len(sel) - (1 if op == "$covarianceSamp" else 0)
            if m <= 0:
                res.append(None)
                continue
            mx = sum(x for x, _ in sel) / len(sel)
            my = sum(y for _, y in sel) / len(sel)
            res.append(sum((x - mx) * (y - my) for x, y in sel) / m)
        return res
    # $derivative / $integral
    f = ctx.expr(spec["input"])
    scale = _MS.get(spec.get("unit", ""), 1) if isinstance(spec, Mapping) else 1
    ys = [_num(f(d)) for d in part]
    if window is None and op == "$derivative":
        raise _err(5490704, "$derivative requires explicit window bounds")
    res = []
    for i in range(n):
        a, b = _bounds(window, n, i, xs, unit)
        idx = [k for k in range(a, b) if ys[k] is not None and xs and xs[k] is not None]
        if len(idx) < 2 and op == "$derivative":
            res.append(None)
            continue
        if op == "$derivative":
            k0, k1 = idx[0], idx[-1]
            res.append((ys[k1] - ys[k0]) / ((xs[k1] - xs[k0]) / scale))  # type: ignore
        else:
            total = 0.0
            for k0, k1 in itertools.pairwise(idx):
                total += (ys[k0] + ys[k1]) / 2 * (xs[k1] - xs[k0]) / scale  # type: ignore
            res.append(total)
    return res


# --- $densify --------------------------------------------------------------------------------


def densify(arg: Any, ctx: PipelineContext) -> Stage:
    if not isinstance(arg, Mapping) or "field" not in arg or "range" not in arg:
        raise _err(40414, "BSON field '$densify.field' is missing but a required field")
    field = arg["field"]
    parts = list(arg.get("partitionByFields", []))
    rng = arg["range"]
    step = rng.get("step")
    unit = rng.get("unit")
    bounds = rng.get("bounds")
    if not is_number(step) or number_value(step) <= 0:
        raise _err(5733401, "the step parameter in a range statement must be a strictly "
                   "positive numeric value")
    if bounds not in ("full", "partition") and not (isinstance(bounds, list) and len(bounds)
                                                    == 2):
        raise _err(5946802, "bounds must be 'full', 'partition' or an array of two values")

    def add(v: Any, k: int) -> Any:
        if isinstance(v, datetime.datetime):
            from node.engine.expr_date import add_units, naive
            return naive(add_units(v.replace(tzinfo=datetime.UTC), unit or "millisecond",
                                   int(number_value(step)) * k, datetime.UTC))
        return v + number_value(step) * k

    def run(docs: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        from node.commands.pipeline import set_path
        from node.engine.expressions import get_path
        all_docs = list(docs)
        sort = Sort({**dict.fromkeys(parts, 1), field: 1})
        groups: dict[Any, list[dict[str, Any]]] = {}
        for d in sort.sort(all_docs):  # type: ignore[assignment]
            key = tuple(hash_key(get_path(d, p.split("."))) for p in parts)
            groups.setdefault(key, []).append(d)  # type: ignore[arg-type]
        values = [get_path(d, field.split(".")) for d in all_docs]
        values = [v for v in values if v is not MISSING and v is not None]
        full = (min(values, key=_key), max(values, key=_key)) if values else None
        for docs_p in groups.values():
            present = [get_path(d, field.split(".")) for d in docs_p]
            pv = [v for v in present if v is not MISSING and v is not None]
            if bounds == "full":
                lo_hi = full
            elif bounds == "partition":
                lo_hi = (pv[0], pv[-1]) if pv else None
            else:
                lo_hi = (bounds[0], bounds[1])
            template = {p: get_path(docs_p[0], p.split(".")) for p in parts}
            seen = {hash_key(v) for v in pv}
            out: list[dict[str, Any]] = list(docs_p)
            if lo_hi is not None:
                lo, hi = lo_hi
                k = 0
                cur = lo
                while compare(cur, hi) < (0 if isinstance(bounds, list) else 1):
                    if hash_key(cur) not in seen:
                        nd: dict[str, Any] = {}
                        for p, v in template.items():
                            set_path(nd, p.split("."), v)
                        set_path(nd, field.split("."), cur)
                        out.append(nd)
                    k += 1
                    cur = add(lo, k)
            yield from sort.sort(out)  # type: ignore[misc]
    return run


def _key(v: Any) -> Any:
    from node.engine.values import SortKey
    return SortKey(v)


# --- $fill -----------------------------------------------------------------------------------


def fill(arg: Any, ctx: PipelineContext) -> Stage:
    if not isinstance(arg, Mapping) or "output" not in arg:
        raise _err(40414, "BSON field '$fill.output' is missing but a required field")
    output = arg["output"]
    windows: dict[str, Any] = {}
    values = {}
    for field, spec in output.items():
        if "value" in spec:
            values[field] = ctx.expr(spec["value"])
        elif spec.get("method") == "locf":
            windows[field] = {"$locf": "$" + field}
        elif spec.get("method") == "linear":
            windows[field] = {"$linearFill": "$" + field}
        else:
            raise _err(6050204, "Exactly one of 'value' or 'method' must be specified")
    partition = arg.get("partitionBy")
    if "partitionByFields" in arg:
        partition = {p: "$" + p for p in arg["partitionByFields"]}
    stage = None
    if windows:
        if "sortBy" not in arg:
            raise _err(6050202, "$fill with 'method' requires 'sortBy'")
        spec: dict[str, Any] = {"sortBy": arg["sortBy"], "output": windows}
        if partition is not None:
            spec["partitionBy"] = partition
        stage = set_window_fields(spec, ctx)

    def run(docs: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        out: Iterable[dict[str, Any]] = docs
        if stage is not None:
            out = stage(out)
        for d in out:
            if values:
                d = dict(d)
                for f, fn in values.items():
                    if nullish(d.get(f, MISSING)):
                        d[f] = fn(d)
            yield d
    return run

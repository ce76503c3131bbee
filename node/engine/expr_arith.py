"""Arithmetic expressions: ``$add $subtract $multiply $divide $mod $abs $ceil $floor $round
$trunc $exp $ln $log $log10 $pow $sqrt`` and trigonometry, with MongoDB's numeric type
promotion (int -> long -> double, Decimal128 wins) and its error codes."""

from __future__ import annotations

import datetime
import decimal
import math
from typing import Any

from bson import Decimal128, Int64

from node.engine.expressions import err, nullish, simple
from node.engine.values import is_number, type_name

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_DEC = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN)


def kind(v: Any) -> int:
    """0 int32, 1 long, 2 double, 3 decimal."""
    if isinstance(v, Decimal128):
        return 3
    if isinstance(v, float):
        return 2
    if isinstance(v, Int64) or (isinstance(v, int) and not _INT32[0] <= v <= _INT32[1]):
        return 1
    return 0


def to_dec(v: Any) -> decimal.Decimal:
    if isinstance(v, Decimal128):
        return v.to_decimal()
    if isinstance(v, float):
        return _DEC.create_decimal(repr(v)) if math.isfinite(v) else decimal.Decimal(str(v))
    return decimal.Decimal(int(v))


def make(value: Any, k: int) -> Any:
    """``value`` as the number type ``k`` (overflowing int32 -> long -> double)."""
    if k == 3:
        return Decimal128(_DEC.create_decimal(value))
    if k == 2:
        return float(value)
    value = int(value)
    if k == 0 and _INT32[0] <= value <= _INT32[1]:
        return value
    if _INT64[0] <= value <= _INT64[1]:
        return Int64(value)
    return float(value)


def num(v: Any) -> Any:
    """A number as a Python value to compute with."""
    if isinstance(v, Decimal128):
        return v.to_decimal()
    if isinstance(v, Int64):
        return int(v)
    return v


def _add(*args: Any) -> Any:
    k = 0
    total: Any = 0
    date: datetime.datetime | None = None
    for a in args:
        if nullish(a):
            return None
        if isinstance(a, datetime.datetime):
            if date is not None:
                raise err(16612, "only one date allowed in an $add expression")
            date = a
            continue
        if not is_number(a):
            raise err(16554, f"$add only supports numeric or date types, not {type_name(a)}")
        k = max(k, kind(a))
    if k == 3:
        total = sum((to_dec(a) for a in args if not isinstance(a, datetime.datetime)),
                    decimal.Decimal(0))
    elif k == 2:
        total = math.fsum(float(a) for a in args if not isinstance(a, datetime.datetime))
    else:
        total = sum(int(a) for a in args if not isinstance(a, datetime.datetime))
    if date is not None:
        return date + datetime.timedelta(milliseconds=round(float(total)))
    return make(total, k)


def _subtract(a: Any, b: Any) -> Any:
    if nullish(a) or nullish(b):
        return None
    if isinstance(a, datetime.datetime):
        if isinstance(b, datetime.datetime):
            return Int64(int((a - b) / datetime.timedelta(milliseconds=1)))
        if is_number(b):
            return a - datetime.timedelta(milliseconds=round(float(num(b))))
    if is_number(a) and is_number(b):
        k = max(kind(a), kind(b))
        if k == 3:
            return make(to_dec(a) - to_dec(b), 3)
        if k == 2:
            return float(num(a)) - float(num(b))
        return make(int(a) - int(b), k)
    raise err(16556, f"cant $subtract a {type_name(b)} from a {type_name(a)}")


def _multiply(*args: Any) -> Any:
    k = 0
    for a in args:
        if nullish(a):
            return None
        if not is_number(a):
            raise err(16555, f"$multiply only supports numeric types, not {type_name(a)}")
        k = max(k, kind(a))
    if k == 3:
        p = decimal.Decimal(1)
        for a in args:
            p = _DEC.multiply(p, to_dec(a))
        return make(p, 3)
    if k == 2:
        f = 1.0
        for a in args:
            f *= float(num(a))
        return f
    n = 1
    for a in args:
        n *= int(a)
    return make(n, k)


def _divide(a: Any, b: Any) -> Any:
    if nullish(a) or nullish(b):
        return None
    if not (is_number(a) and is_number(b)):
        raise err(16609, f"$divide only supports numeric types, not {type_name(a)} and "
                  f"{type_name(b)}")
    if num(b) == 0:
        raise err(16608, "can't $divide by zero")
    if kind(a) == 3 or kind(b) == 3:
        return make(_DEC.divide(to_dec(a), to_dec(b)), 3)
    return float(num(a)) / float(num(b))


def _mod(a: Any, b: Any) -> Any:
    if nullish(a) or nullish(b):
        return None
    if not (is_number(a) and is_number(b)):
        raise err(16611, f"$mod only supports numeric types, not {type_name(a)} and "
                  f"{type_name(b)}")
    if num(b) == 0:
        raise err(16610, "can't $mod by zero")
    k = max(kind(a), kind(b))
    if k == 3:
        return make(to_dec(a) % to_dec(b), 3)
    if k == 2:
        return math.fmod(float(num(a)), float(num(b)))
    x, y = int(a), int(b)
    r = abs(x) % abs(y)
    return make(-r if x < 0 else r, k)


def _unary(name: str, f: Any, fd: Any = None, *, lo: float | None = None,
           lo_open: bool = False, code: int = 28765) -> None:
    def run(a: Any) -> Any:
        if nullish(a):
            return None
        if not is_number(a):
            raise err(28765, f"{name} only supports numeric types, not {type_name(a)}")
        v = num(a)
        if lo is not None and (v < lo or (lo_open and v == lo)) and not (
                isinstance(v, float) and math.isnan(v)):
            raise err(code, f"{name}'s argument must be a positive number, but is {v}")
        if isinstance(a, Decimal128):
            return make((fd or (lambda d: _DEC.create_decimal(f(float(d)))))(v), 3)
        return f(float(v))
    simple(name, run)


def _int_preserving(name: str, f: Any) -> None:
    def run(a: Any) -> Any:
        if nullish(a):
            return None
        if not is_number(a):
            raise err(28765, f"{name} only supports numeric types, not {type_name(a)}")
        k = kind(a)
        if k in (0, 1):
            return a
        if k == 3:
            d = a.to_decimal()
            if not d.is_finite():
                return a
            return make(f(d), 3)
        if not math.isfinite(a):
            return a
        return float(f(a))
    simple(name, run)


def _abs(a: Any) -> Any:
    if nullish(a):
        return None
    if not is_number(a):
        raise err(28765, f"$abs only supports numeric types, not {type_name(a)}")
    k = kind(a)
    if k == 3:
        return make(abs(a.to_decimal()), 3)
    if k == 2:
        return abs(a)
    if int(a) == _INT64[0]:
        raise err(28680, "can't take $abs of long long min")
    return make(abs(int(a)), k)


def _round_like(name: str, trunc: bool) -> None:
    def run(a: Any, places: Any = 0) -> Any:
        if nullish(a) or nullish(places):
            return None
        if not is_number(a):
            raise err(51081,
                      f"{name} only supports numeric types, not {type_name(a)}")
        if not is_number(places) or int(num(places)) != num(places):
            raise err(51082, f"precision argument to {name} must be a integral value")
        p = int(num(places))
        if not -20 < p < 100:
            raise err(51083, f"cannot apply {name} with precision value {p} value must be "
                      "in [-20, 100]")
        mode = decimal.ROUND_DOWN if trunc else decimal.ROUND_HALF_EVEN
        k = kind(a)
        if k == 2 and not math.isfinite(a):
            return a
        d = to_dec(a)
        if k == 3 and not d.is_finite():
            return a
        q = decimal.Decimal(1).scaleb(-p)
        r = d.quantize(q, rounding=mode) if p >= 0 else (d / q).quantize(
            decimal.Decimal(1), rounding=mode) * q
        if k == 3:
            return make(r, 3)
        if k == 2:
            return float(r)
        return make(r, k)
    simple(name, run, 1, 2)


def _pow(a: Any, b: Any) -> Any:
    if nullish(a) or nullish(b):
        return None
    if not is_number(a):
        raise err(28762, f"$pow's base must be numeric, not {type_name(a)}")
    if not is_number(b):
        raise err(28763, f"$pow's exponent must be numeric, not {type_name(b)}")
    if num(a) == 0 and num(b) < 0:
        raise err(28764, "$pow cannot take a base of 0 and a negative exponent")
    k = max(kind(a), kind(b))
    if k == 3:
        return make(_DEC.power(to_dec(a), to_dec(b)), 3)
    if k == 2 or num(b) < 0:
        return float(num(a)) ** float(num(b))
    return make(int(a) ** int(b), k)


def _log(a: Any, base: Any) -> Any:
    if nullish(a) or nullish(base):
        return None
    if not is_number(a):
        raise err(28756, f"$log's argument must be numeric, not {type_name(a)}")
    if not is_number(base):
        raise err(28757, f"$log's base must be numeric, not {type_name(base)}")
    if num(a) <= 0:
        raise err(28758, f"$log's argument must be a positive number, but is {num(a)}")
    if num(base) <= 0 or num(base) == 1:
        raise err(28759, f"$log's base must be a positive number not equal to 1, but is "
                  f"{num(base)}")
    if kind(a) == 3 or kind(base) == 3:
        return make(to_dec(a).ln(_DEC) / to_dec(base).ln(_DEC), 3)
    return math.log(float(num(a))) / math.log(float(num(base)))


simple("$add", _add, 0, None)
simple("$subtract", _subtract, 2, 2)
simple("$multiply", _multiply, 0, None)
simple("$divide", _divide, 2, 2)
simple("$mod", _mod, 2, 2)
simple("$abs", _abs)
simple("$pow", _pow, 2, 2)
simple("$log", _log, 2, 2)
_int_preserving("$ceil", lambda x: x.to_integral_value(decimal.ROUND_CEILING)
                if isinstance(x, decimal.Decimal) else math.ceil(x))
_int_preserving("$floor", lambda x: x.to_integral_value(decimal.ROUND_FLOOR)
                if isinstance(x, decimal.Decimal) else math.floor(x))
_round_like("$round", False)
_round_like("$trunc", True)
_unary("$exp", math.exp, lambda d: d.exp(_DEC))
_unary("$ln", math.log, lambda d: d.ln(_DEC), lo=0, lo_open=True, code=28766)
_unary("$log10", math.log10, lambda d: d.log10(_DEC), lo=0, lo_open=True, code=28761)
_unary("$sqrt", math.sqrt, lambda d: d.sqrt(_DEC), lo=0, code=28714)
for _n, _f in (("$sin", math.sin), ("$cos", math.cos), ("$tan", math.tan),
               ("$asin", math.asin), ("$acos", math.acos), ("$atan", math.atan),
               ("$sinh", math.sinh), ("$cosh", math.cosh), ("$tanh", math.tanh),
               ("$asinh", math.asinh), ("$acosh", math.acosh), ("$atanh", math.atanh),
               ("$degreesToRadians", math.radians), ("$radiansToDegrees", math.degrees)):
    _unary(_n, _f)


def _atan2(a: Any, b: Any) -> Any:
    if nullish(a) or nullish(b):
        return None
    if not (is_number(a) and is_number(b)):
        raise err(51044, "$atan2 only supports numeric types")
    return math.atan2(float(num(a)), float(num(b)))


simple("$atan2", _atan2, 2, 2)

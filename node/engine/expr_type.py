"""Type expressions: ``$type $isNumber $convert $toInt $toLong $toDouble $toDecimal $toString
$toBool $toDate $toObjectId``, with MongoDB's conversion table and errors (241
ConversionFailure unless ``onError`` is given; ``onNull`` for null/missing input)."""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Mapping
from typing import Any

from bson import Decimal128, Int64, ObjectId

from node.engine.errors import CONVERSION_FAILURE, MongoError
from node.engine.expr_arith import make, to_dec
from node.engine.expressions import (
    MISSING,
    Fn,
    Scope,
    Vars,
    compile_expression,
    err,
    nullish,
    register,
    simple,
)
from node.engine.values import bson_type_code, is_number, number_value, type_name

_ALIASES = {"double": 1, "string": 2, "objectId": 7, "bool": 8, "date": 9, "int": 16,
            "long": 18, "decimal": 19}
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _fail(msg: str) -> MongoError:
    return MongoError(CONVERSION_FAILURE, msg, code_name="ConversionFailure")


def to_string(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        if v == int(v) and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if isinstance(v, Decimal128):
        return str(v)
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, ObjectId):
        return str(v)
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
    raise _fail(f"Unsupported conversion from {type_name(v)} to string in $convert with no "
                "onError value")


def _parse_number(s: str, target: int) -> Any:
    try:
        if target in (16, 18):
            n = int(s.strip(), 10) if s.strip() == s else int("x")
            return n
        if target == 1:
            return float(s)
        d = decimal.Decimal(s)
        return Decimal128(d)
    except (ValueError, decimal.InvalidOperation):
        raise _fail(f"Failed to parse number '{s}' in $convert with no onError value: "
                    "Did not consume whole string.") from None


def convert(v: Any, target: int) -> Any:
    """``v`` converted to BSON type ``target`` (raises 241 ConversionFailure)."""
    src = bson_type_code(v)
    if target == 2:
        return to_string(v)
    if target == 8:
        if is_number(v):
            return number_value(v) != 0
        return True if not isinstance(v, bool) else v
    if target in (16, 18):
        lo, hi = _INT32 if target == 16 else _INT64
        if isinstance(v, bool):
            n = int(v)
        elif isinstance(v, str):
            n = _parse_number(v, target)
        elif isinstance(v, datetime.datetime) and target == 18:
            from node.engine.values import datetime_to_millis
            n = datetime_to_millis(v)
        elif is_number(v):
            x = number_value(v)
            if isinstance(x, float | decimal.Decimal) and not (
                    x.is_finite() if isinstance(x, decimal.Decimal) else math.isfinite(x)):
                raise _fail("Attempt to convert NaN or infinity value to integer type in "
                            "$convert with no onError value")
            n = int(x)
        else:
            raise _fail(f"Unsupported conversion from {type_name(v)} to "
                        f"{'int' if target == 16 else 'long'} in $convert with no onError value")
        if not lo <= n <= hi:
            raise _fail(f"Conversion would overflow target type in $convert with no onError "
                        f"value: {v}")
        return n if target == 16 else Int64(n)
    if target == 1:
        if isinstance(v, bool):
            return float(v)
        if isinstance(v, str):
            return float(_parse_number(v, 1))
        if isinstance(v, datetime.datetime):
            from node.engine.values import datetime_to_millis
            return float(datetime_to_millis(v))
        if is_number(v):
            return float(number_value(v))
    if target == 19:
        if isinstance(v, bool):
            return Decimal128(decimal.Decimal(int(v)))
        if isinstance(v, str):
            return _parse_number(v, 19)
        if isinstance(v, datetime.datetime):
            from node.engine.values import datetime_to_millis
            return Decimal128(decimal.Decimal(datetime_to_millis(v)))
        if is_number(v):
            return make(to_dec(v), 3)
    if target == 9:
        if isinstance(v, datetime.datetime):
            return v
        if isinstance(v, ObjectId):
            return v.generation_time.replace(tzinfo=None)
        if isinstance(v, str):
            from node.engine.expr_date import parse_date
            return parse_date(v, None, None)
        if is_number(v) and src in (1, 18, 19):
            x = number_value(v)
            return datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=int(x))
    if target == 7:
        if isinstance(v, ObjectId):
            return v
        if isinstance(v, str):
            try:
                return ObjectId(v)
            except Exception:
                raise _fail(f"Failed to parse objectId '{v}' in $convert with no onError "
                            "value: Invalid string length for parsing to OID, expected 24 but "
                            f"found {len(v)}") from None
    if target == src:
        return v
    names = {1: "double", 7: "objectId", 9: "date", 19: "decimal"}
    raise _fail(f"Unsupported conversion from {type_name(v)} to {names.get(target, target)} "
                "in $convert with no onError value")


def _target(t: Any) -> int:
    if isinstance(t, str):
        if t not in _ALIASES:
            raise MongoError(2, f"Unknown type name: {t}", code_name="BadValue")
        return _ALIASES[t]
    if is_number(t):
        return int(number_value(t))
    raise err(50880, f"$convert's 'to' argument must be a string or number, but is "
              f"{type_name(t)}")


@register("$convert")
def _convert(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping):
        raise MongoError(9, "$convert expects an object of named arguments but found: "
                         f"{type_name(arg)}", code_name="FailedToParse")
    for k in arg:
        if k not in ("input", "to", "onError", "onNull", "format", "base"):
            raise MongoError(9, f"$convert found an unknown argument: {k}",
                             code_name="FailedToParse")
    if "input" not in arg:
        raise MongoError(9, "Missing 'input' parameter to $convert", code_name="FailedToParse")
    if "to" not in arg:
        raise MongoError(9, "Missing 'to' parameter to $convert", code_name="FailedToParse")
    inp = compile_expression(arg["input"], scope)
    to = compile_expression(arg["to"], scope)
    on_error = compile_expression(arg["onError"], scope) if "onError" in arg else None
    on_null = compile_expression(arg["onNull"], scope) if "onNull" in arg else None

    def run(v: Vars) -> Any:
        value = inp(v)
        t = to(v)
        if nullish(t):
            return None
        target = _target(t)
        if nullish(value):
            return on_null(v) if on_null is not None else None
        try:
            return convert(value, target)
        except MongoError as e:
            if on_error is None or e.code != CONVERSION_FAILURE:
                raise
            return on_error(v)
    return run


def _to(target: int) -> Any:
    return lambda v: None if nullish(v) else convert(v, target)


def _type(v: Any) -> str:
    from node.engine.values import type_name as tn
    if v is MISSING:
        return "missing"
    return tn(v)


simple("$type", _type)
simple("$isNumber", lambda v: is_number(v))
for _name, _code in (("$toInt", 16), ("$toLong", 18), ("$toDouble", 1), ("$toDecimal", 19),
                     ("$toString", 2), ("$toBool", 8), ("$toDate", 9), ("$toObjectId", 7)):
    simple(_name, _to(_code))

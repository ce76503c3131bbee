"""Bit tests and bit arithmetic: the ``$bitsAllSet``/``$bitsAnySet``/``$bitsAllClear``/
``$bitsAnyClear`` query operators and the ``$bit`` update operator, with MongoDB's rules.

Query operators take a mask as a non-negative integer, a BinData (an arbitrary-length unsigned
little-endian number: bit 0 is the low bit of the first byte) or an array of bit positions. They
match numbers that are whole and fit a signed 64-bit integer, sign extended (bit 200 of -5 is
set), and BinData values, read the same little-endian way (bits past the end are clear); any
other value never matches. ``$bit`` applies ``and``/``or``/``xor`` to int32/int64 values only;
an int64 on either side makes an int64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from node.engine.errors import bad_value, failed_to_parse

BIT_TEST_OPERATORS = frozenset({"$bitsAllSet", "$bitsAnySet", "$bitsAllClear", "$bitsAnyClear"})
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _render(v: Any) -> str:
    from node.engine.path_update import format_value

    return format_value(v)


def _binary_bits(data: bytes) -> int:
    return int.from_bytes(bytes(data), "little")


def _mask_from_number(op: str, arg: Any) -> int:
    if isinstance(arg, float | Decimal128):
        value = float(arg.to_decimal()) if isinstance(arg, Decimal128) else arg
        if math.isnan(value):
            raise failed_to_parse(f"Expected an integer, but found NaN in: {op}: {_render(arg)}")
        if math.isinf(value) or not (_INT64_MIN <= value < 2.0**63):
            raise failed_to_parse(f"Cannot represent as a 64-bit integer: {op}: {_render(arg)}")
        if value != int(value):
            raise failed_to_parse(f"Expected an integer: {op}: {_render(arg)}")
        n = int(value)
    else:
        n = int(arg)
    if n < 0:
        raise failed_to_parse(f"Expected a non-negative number in: {op}: {_render(arg)}")
    return n


def _mask_from_positions(positions: list[Any] | tuple[Any, ...]) -> int:
    mask = 0
    for p in positions:
        if isinstance(p, bool) or not isinstance(p, int | float | Int64 | Decimal128):
            raise bad_value(f"bit positions must be an integer but got: {_render(p)}")
        value = float(p.to_decimal()) if isinstance(p, Decimal128) else p
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)
                                         or value != int(value)):
            raise bad_value(f"bit positions must be an integer but got: {_render(p)}")
        n = int(value)
        if n < 0:
            raise bad_value(f"bit positions must be >= 0 but got: {_render(p)}")
        if n > _INT32_MAX:
            raise bad_value("bit positions cannot be represented as a 32-bit signed integer: "
                            f"{_render(p)}")
        mask |= 1 << n
    return mask


def parse_mask(path: str, op: str, arg: Any) -> int:
    """The bit positions an operator's argument names, as one (non-negative) Python int."""
    if isinstance(arg, list | tuple):
        return _mask_from_positions(arg)
    if isinstance(arg, Binary | bytes) and not isinstance(arg, bool):
        return _binary_bits(arg)
    if isinstance(arg, int | float | Int64 | Decimal128) and not isinstance(arg, bool):
        return _mask_from_number(op, arg)
    raise bad_value(f"{path} takes an Array, a number, or a BinData but received: "
                    f"{op}: {_render(arg)}")


def _value_bits(value: Any) -> int | None:
    """The value as a sign-extended integer of bits, or None when bit tests never match it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Binary | bytes):
        return _binary_bits(value)
    if isinstance(value, int):  # int32, Int64
        return int(value)
    if isinstance(value, float | Decimal128):
        x = float(value.to_decimal()) if isinstance(value, Decimal128) else value
        if math.isnan(x) or math.isinf(x) or x != int(x) or not (_INT64_MIN <= x < 2.0**63):
            return None
        return int(x)
    return None


def bit_test(path: str, op: str, arg: Any) -> Callable[[Any], bool]:
    """The test one element of a field must pass for ``{path: {op: arg}}``."""
    mask = parse_mask(path, op, arg)

    def test(value: Any) -> bool:
        bits = _value_bits(value)
        if bits is None:
            return False
        hit = bits & mask  # Python ints sign-extend: bit 200 of -5 is set
        if op == "$bitsAllSet":
            return hit == mask
        if op == "$bitsAnySet":
            return hit != 0
        if op == "$bitsAllClear":
            return hit == 0
        return hit != mask  # $bitsAnyClear

    return test


# --- $bit --------------------------------------------------------------------------------------

BIT_OPS = ("and", "or", "xor")
_FORMAT = "{$bit: {field: {and/or/xor: #}}"


def is_integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def compile_bit(arg: Any) -> list[tuple[str, int | Int64]]:
    """The ``(operation, operand)`` pairs of ``{$bit: {field: arg}}``, in order."""
    if not isinstance(arg, Mapping):
        raise bad_value(f"The $bit modifier is not compatible with a {_type(arg)}. You must "
                        f"pass in an embedded document: {_FORMAT}")
    if not arg:
        raise bad_value(f"You must pass in at least one bitwise operation. The format is: "
                        f"{_FORMAT}")
    ops: list[tuple[str, int | Int64]] = []
    for name, operand in arg.items():
        if name not in BIT_OPS:
            raise bad_value(f"The $bit modifier only supports 'and', 'or', and 'xor', not "
                            f"'{name}' which is an unknown operator: {{{name}: "
                            f"{_render(operand)}}}")
        if not is_integer(operand):
            raise bad_value(f"The $bit modifier field must be an Integer(32/64 bit); a "
                            f"'{_type(operand)}' is not supported here: {{{name}: "
                            f"{_render(operand)}}}")
        ops.append((name, operand))
    return ops


def _type(v: Any) -> str:
    from node.engine.values import type_name

    return type_name(v)


def _is_int64(v: Any) -> bool:
    return isinstance(v, Int64) or not (_INT32_MIN <= int(v) <= _INT32_MAX)


def apply_bit(current: Any, ops: list[tuple[str, int | Int64]]) -> int | Int64:
    """The value after ``ops`` on an integer ``current`` (the caller refuses any other value
    and starts a missing field at int32 0)."""
    wide = _is_int64(current)
    value = int(current)
    for name, operand in ops:
        wide = wide or _is_int64(operand)
        x = int(operand)
        value = value & x if name == "and" else value | x if name == "or" else value ^ x
        # two's complement within the result's width
        bits = 64 if wide else 32
        value &= (1 << bits) - 1
        if value >= 1 << (bits - 1):
            value -= 1 << bits
    return Int64(value) if wide else value

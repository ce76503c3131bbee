"""Memcomparable encoding of BSON values, in the spirit of MongoDB's KeyString.

``encode_key(v)`` turns a value into bytes whose unsigned lexicographic order is exactly the
order of :func:`node.engine.values.compare`; ``encode_compound`` concatenates several values,
each ascending or descending, into one index key. Equal values encode identically (``1``,
``1.0``, ``Int64(1)`` and ``Decimal128("1")`` give the same bytes), so a unique index can compare
keys by bytes. Every encoding is *prefix-free* (no encoding is a proper prefix of another), so
concatenations compare field by field, a record key can be appended after an index key, and a
descending field is simply the bitwise inverse of its ascending bytes.

Layout: one type byte (in BSON type order), then a self-delimiting payload:

* numbers: a class byte (NaN < -inf < negative < zero < positive < +inf); finite values as the
  exact decimal ``0.d1d2... x 10**E`` -- ``E`` in two offset bytes, the significant digits in
  ASCII without trailing zeros, then ``0x00``; negatives have exponent and digits inverted.
  Floats are converted exactly, so integers beyond float precision keep their exact order.
* strings, field names, regex pattern/flags: UTF-8 with ``0x00`` escaped as ``00 FF``, ended by
  ``00 00`` (so ``"a" < "a\\0" < "a\\1"``).
* documents: per field ``type byte, name, payload``, ended by ``0x00``; arrays: per element
  ``type byte, payload``, ended by ``0x00`` (type bytes are never ``0x00``).
* binData: 4-byte length, subtype, bytes (MongoDB orders by length, then subtype, then bytes);
  ObjectId: 12 bytes; bool: one byte; date: offset milliseconds since the epoch (sub-millisecond
  digits dropped, as BSON and ``values.compare`` drop them); Timestamp: time, increment.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

from node.engine.values import (
    MISSING,
    RANK_ARRAY,
    RANK_BINDATA,
    RANK_BOOL,
    RANK_CODE,
    RANK_CODE_W_SCOPE,
    RANK_DATE,
    RANK_MAXKEY,
    RANK_MINKEY,
    RANK_NULL,
    RANK_NUMBER,
    RANK_OBJECT,
    RANK_OBJECTID,
    RANK_REGEX,
    RANK_STRING,
    RANK_TIMESTAMP,
    RANK_UNDEFINED,
    UNDEFINED,
    binary_parts,
    datetime_to_millis,
    regex_parts,
)

# Type bytes: MongoDB's canonical type rank + 2 (values.RANK_*), so 0x01 (MinKey), 0x02
# (undefined: the key of an empty array) .. 0x81
# (MaxKey). Never 0x00 (the document/array terminator) and never 0xFF.
T_MINKEY = RANK_MINKEY + 2
T_UNDEFINED = RANK_UNDEFINED + 2
T_NULL = RANK_NULL + 2
T_NUMBER = RANK_NUMBER + 2
T_STRING = RANK_STRING + 2
T_OBJECT = RANK_OBJECT + 2
T_ARRAY = RANK_ARRAY + 2
T_BINDATA = RANK_BINDATA + 2
T_OBJECTID = RANK_OBJECTID + 2
T_BOOL = RANK_BOOL + 2
T_DATE = RANK_DATE + 2
T_TIMESTAMP = RANK_TIMESTAMP + 2
T_REGEX = RANK_REGEX + 2
T_CODE = RANK_CODE + 2
T_CODE_W_SCOPE = RANK_CODE_W_SCOPE + 2
T_MAXKEY = RANK_MAXKEY + 2

# Number classes (the byte after T_NUMBER).
_N_NAN = 0x01
_N_NEG_INF = 0x02
_N_NEG = 0x03
_N_ZERO = 0x04
_N_POS = 0x05
_N_POS_INF = 0x06

_EXP_BIAS = 0x8000
_SMALL_INT_LIMIT = 10**18
_POS_INT_HEADER = bytes([T_NUMBER, _N_POS])
_POS_INT_PREFIXES = [_POS_INT_HEADER + (n + _EXP_BIAS).to_bytes(2, "big") for n in range(19)]
"""Type, class and exponent bytes of a positive integer with n digits (fast path)."""
_STR_HEADER = bytes([T_STRING])
_INVERT = bytes(255 - i for i in range(256))
_DATE_BIAS = 1 << 63  # signed milliseconds since the epoch, offset into 8 unsigned bytes


class KeyEncodingError(ValueError):
    """A value that has no place in the BSON order (not a BSON type, or out of range)."""


def invert(data: bytes) -> bytes:
    """Bitwise inverse of every byte: reverses the order of prefix-free encodings."""
    return data.translate(_INVERT)


def encode_key(value: Any, descending: bool = False) -> bytes:
    """The memcomparable encoding of one value (inverted when ``descending``)."""
    kind = type(value)
    if kind is int and 0 < value < _SMALL_INT_LIMIT:  # fast path: positive ints (common _ids)
        digits = str(value)
        data = _POS_INT_PREFIXES[len(digits)] + digits.rstrip("0").encode("ascii") + b"\x00"
    elif kind is str and "\x00" not in value:
        data = _STR_HEADER + value.encode("utf-8", "surrogatepass") + b"\x00\x00"
    else:
        out = bytearray()
        _encode(value, out)
        data = bytes(out)
    return data.translate(_INVERT) if descending else data


def encode_compound(values: Sequence[Any], directions: Sequence[int | bool] | None = None) -> bytes:
    """One key for several fields: each value encoded, inverted where its direction is descending.

    ``directions`` holds ``1``/``-1`` (anything negative or ``True`` meaning descending); ``None``
    means all ascending. Byte order equals lexicographic order of the value tuples under the
    given directions.
    """
    if directions is None:
        out = bytearray()
        for v in values:
            _encode(v, out)
        return bytes(out)
    if len(directions) != len(values):
        raise ValueError("encode_compound: values and directions differ in length")
    parts: list[bytes] = []
    for v, d in zip(values, directions):
        part = bytearray()
        _encode(v, part)
        parts.append(bytes(part).translate(_INVERT) if is_descending(d) else bytes(part))
    return b"".join(parts)


def is_descending(direction: int | bool | Any) -> bool:
    """Whether an index direction means descending (``-1``; ``True`` for a boolean flag)."""
    if isinstance(direction, bool):
        return direction
    if isinstance(direction, int | float):
        return direction < 0
    return False


def prefix_successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with ``prefix``.

    ``None`` when there is none (empty prefix or all ``0xFF``): scan to the end of the table.
    """
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])



def decode_uint(data: bytes) -> int:
    """The non-negative integer whose :func:`encode_key` (ascending) starts ``data``.

    The inverse of ``encode_key(n)`` for ints ``n >= 0`` (a 2d index's cell numbers), reading
    only the leading value, so an index entry (key, then record key) can be passed whole."""
    if data[1] == _N_ZERO:
        return 0
    if data[0] != T_NUMBER or data[1] != _N_POS:
        raise KeyEncodingError("not the encoding of a non-negative integer")
    end = data.index(0, 4)
    digits = data[4:end]
    return int(digits) * 10 ** (int.from_bytes(data[2:4], "big") - _EXP_BIAS - len(digits))

# --- the encoder ---------------------------------------------------------------------------------


def _escape(text: str, out: bytearray) -> None:
    data = text.encode("utf-8", "surrogatepass")
    if b"\x00" in data:
        data = data.replace(b"\x00", b"\x00\xff")
    out += data
    out += b"\x00\x00"


def _number_payload(value: Any, out: bytearray) -> None:
    """Class byte plus exact decimal payload for int, Int64, float and Decimal128."""
    if isinstance(value, int):
        _int_payload(value, out)
        return
    if isinstance(value, float):
        if value != value:
            out.append(_N_NAN)
        elif value == math.inf:
            out.append(_N_POS_INF)
        elif value == -math.inf:
            out.append(_N_NEG_INF)
        elif value.is_integer():
            _int_payload(int(value), out)
        else:
            _decimal_payload(Decimal(value), out)
        return
    dec = value.to_decimal()
    if dec.is_nan():
        out.append(_N_NAN)
    elif dec.is_infinite():
        out.append(_N_NEG_INF if dec.is_signed() else _N_POS_INF)
    else:
        _decimal_payload(dec, out)


def _int_payload(n: int, out: bytearray) -> None:
    if n == 0:
        out.append(_N_ZERO)
        return
    digits = str(-n if n < 0 else n)
    _finite_payload(n < 0, len(digits), digits.rstrip("0"), out)


def _decimal_payload(dec: Decimal, out: bytearray) -> None:
    sign, digit_tuple, exponent = dec.as_tuple()
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        out.append(_N_ZERO)
        return
    assert isinstance(exponent, int)
    stripped = digits.rstrip("0")
    # value = digits * 10**exponent = 0.digits * 10**(len(digits) + exponent)
    _finite_payload(bool(sign), len(digits) + exponent, stripped, out)


def _finite_payload(negative: bool, exp10: int, digits: str, out: bytearray) -> None:
    biased = exp10 + _EXP_BIAS
    if not 0 <= biased <= 0xFFFF:
        raise KeyEncodingError(f"number out of the encodable range (exponent {exp10})")
    body = biased.to_bytes(2, "big") + digits.encode("ascii") + b"\x00"
    if negative:
        out.append(_N_NEG)
        out += body.translate(_INVERT)
    else:
        out.append(_N_POS)
        out += body


def _encode(value: Any, out: bytearray) -> None:
    enc = _ENCODERS.get(type(value))
    if enc is None:
        enc = _encoder_for(value)
    enc(value, out)


def _enc_null(value: Any, out: bytearray) -> None:
    out.append(T_NULL)


def _enc_number(value: Any, out: bytearray) -> None:
    out.append(T_NUMBER)
    _number_payload(value, out)


def _enc_bool(value: Any, out: bytearray) -> None:
    out.append(T_BOOL)
    out.append(0x02 if value else 0x01)


def _enc_string(value: Any, out: bytearray) -> None:
    out.append(T_STRING)
    _escape(value, out)


def _enc_document(value: Any, out: bytearray) -> None:
    out.append(T_OBJECT)
    _document_body(value, out)


def _document_body(value: Mapping[str, Any], out: bytearray) -> None:
    for name, item in value.items():
        # type byte first (MongoDB compares element type, then name, then value)
        inner = bytearray()
        _encode(item, inner)
        out.append(inner[0])
        _escape(name, out)
        out += inner[1:]
    out.append(0x00)


def _enc_array(value: Any, out: bytearray) -> None:
    out.append(T_ARRAY)
    for item in value:
        _encode(item, out)
    out.append(0x00)


def _enc_binary(value: Any, out: bytearray) -> None:
    _, subtype, data = binary_parts(value)
    out.append(T_BINDATA)
    out += len(data).to_bytes(4, "big")
    out.append(subtype)
    out += data


def _enc_objectid(value: Any, out: bytearray) -> None:
    out.append(T_OBJECTID)
    out += value.binary


def _enc_datetime(value: Any, out: bytearray) -> None:
    out.append(T_DATE)
    out += (datetime_to_millis(value) + _DATE_BIAS).to_bytes(8, "big")


def _enc_timestamp(value: Any, out: bytearray) -> None:
    out.append(T_TIMESTAMP)
    out += value.time.to_bytes(4, "big")
    out += value.inc.to_bytes(4, "big")


def _enc_regex(value: Any, out: bytearray) -> None:
    out.append(T_REGEX)
    pattern, flags = regex_parts(value)
    _escape(pattern, out)
    _escape(flags, out)


def _enc_code(value: Any, out: bytearray) -> None:
    if value.scope is None:
        out.append(T_CODE)
        _escape(str(value), out)
    else:
        out.append(T_CODE_W_SCOPE)
        _escape(str(value), out)
        _document_body(value.scope, out)


def _enc_undefined(value: Any, out: bytearray) -> None:
    out.append(T_UNDEFINED)


def _enc_minkey(value: Any, out: bytearray) -> None:
    out.append(T_MINKEY)


def _enc_maxkey(value: Any, out: bytearray) -> None:
    out.append(T_MAXKEY)


def _enc_dbref(value: Any, out: bytearray) -> None:
    _enc_document(value.as_doc(), out)


_Encoder = Callable[[Any, bytearray], None]

_ENCODERS: dict[type, _Encoder] = {
    type(None): _enc_null,
    type(MISSING): _enc_null,
    type(UNDEFINED): _enc_undefined,
    int: _enc_number,
    float: _enc_number,
    Decimal128: _enc_number,
    bool: _enc_bool,
    str: _enc_string,
    dict: _enc_document,
    list: _enc_array,
    tuple: _enc_array,
    bytes: _enc_binary,
    Binary: _enc_binary,
    ObjectId: _enc_objectid,
    _dt.datetime: _enc_datetime,
    DatetimeMS: _enc_datetime,
    uuid.UUID: _enc_binary,
    Timestamp: _enc_timestamp,
    Regex: _enc_regex,
    re.Pattern: _enc_regex,
    Code: _enc_code,
    MinKey: _enc_minkey,
    MaxKey: _enc_maxkey,
    DBRef: _enc_dbref,
}


def _encoder_for(value: Any) -> _Encoder:
    """Encoder for subclasses (Int64, SON, ...), cached by exact type."""
    kind = type(value)
    checks: tuple[tuple[type | tuple[type, ...], _Encoder], ...] = (
        (bool, _enc_bool),
        (int, _enc_number),
        (float, _enc_number),
        (Code, _enc_code),
        (str, _enc_string),
        (Mapping, _enc_document),
        (list | tuple, _enc_array),
        (bytes, _enc_binary),
        (_dt.datetime, _enc_datetime),
        (Regex, _enc_regex),
        (DBRef, _enc_dbref),
    )
    for base, enc in checks:
        if isinstance(value, base):
            _ENCODERS[kind] = enc
            return enc
    raise KeyEncodingError(f"cannot encode a value of type {kind.__name__} in an index key")

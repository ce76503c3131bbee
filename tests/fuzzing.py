"""Shared pieces of the fuzz suites (``tests/test_*fuzz*.py``): run settings, hostile values of
every BSON type, and malformed BSON bytes.

Settings (docs/failure-model.md): the default suite runs a few examples of each fuzz test,
derandomized so CI is reproducible and cheap; ``-m slow`` runs the long versions. Two
environment variables change any of them:

- ``HELOGALE_FUZZ_EXAMPLES=N``: run N examples per test instead of the test's own number;
- ``HELOGALE_FUZZ_RANDOM=1``: draw fresh random examples (a failure prints the example and
  a ``@reproduce_failure`` blob to replay it).
"""

from __future__ import annotations

import datetime as dt
import os
import struct
from typing import Any

import bson
from bson import (
    Binary,
    Code,
    Decimal128,
    Int64,
    MaxKey,
    MinKey,
    ObjectId,
    Regex,
    Timestamp,
)
from bson.datetime_ms import DatetimeMS
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ_EXAMPLES = int(os.environ.get("HELOGALE_FUZZ_EXAMPLES", "0") or 0)
FUZZ_RANDOM = os.environ.get("HELOGALE_FUZZ_RANDOM", "") not in ("", "0")


def fuzz_settings(examples: int, **kw: Any) -> settings:
    """Hypothesis settings for a fuzz test: ``examples`` unless ``HELOGALE_FUZZ_EXAMPLES``
    says otherwise, derandomized unless ``HELOGALE_FUZZ_RANDOM=1``, no example database
    (nothing written into the checkout), no deadline (a loaded CI machine is slow)."""
    return settings(
        max_examples=FUZZ_EXAMPLES or examples,
        derandomize=not FUZZ_RANDOM,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.function_scoped_fixture,
                               HealthCheck.filter_too_much, HealthCheck.large_base_example],
        **kw,
    )


# --- hostile values ---------------------------------------------------------------------------

PATHOLOGICAL_REGEXES = [
    "^(a+)+$", "(a|aa)+$", "(a*)*b", "(.*a){20}", "^(\\w+\\s?)*$", "(x+x+)+y", "a{1000000}",
    "(?=a)*", "(a)\\1", "(?<=x)y", "[", "(", "\\", "*", "a**", "(?P<n>a)(?P=n)", "\\p{L}+",
    "(?i)(?m)(?s)(?x)", "(" * 300 + ")" * 300, "a" * 5000, "[^\\x00-\\x{10FFFF}]",
]
HOSTILE_NUMBERS: list[Any] = [
    0, -1, 1, 2**31 - 1, -(2**31), Int64(2**63 - 1), Int64(-(2**63)), Int64(0),
    float("nan"), float("inf"), float("-inf"), -0.0, 1e308, -1e308, 5e-324, 1e30, -1e30,
    2.0**63, 2.0**62, 0.5, -0.5, 1.5, Decimal128("NaN"), Decimal128("Infinity"),
    Decimal128("-Infinity"), Decimal128("1E+6144"), Decimal128("-0"), Decimal128("1.5"),
]
HOSTILE_STRINGS = ["", "$", "$where", "$set", "a.b", ".a", "a.", "a..b", "$$ROOT", "_id",
                   "\x00x", "é", "\U0001F600", "a" * 300, "majority", "admin", "1e400",
                   "..", "a.$", "a.$[]", "a.$[x]", "a.0", "a.-1"]
HOSTILE_SCALARS: list[Any] = [
    None, True, False, *HOSTILE_NUMBERS, *HOSTILE_STRINGS, b"", b"\xff" * 17,
    Binary(b"\x00" * 16, 4), Binary(b"x", 0x80), ObjectId("000000000000000000000000"),
    ObjectId("ffffffffffffffffffffffff"), dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
    DatetimeMS(2**62), DatetimeMS(-(2**62)), Timestamp(0, 0), Timestamp(2**32 - 1, 2**32 - 1),
    Regex("^(a+)+$"), Regex("[", "imsx"), Regex("a", "q"), Code("function(){}"),
    Code("x", {"a": 1}), MinKey(), MaxKey(), [], {}, [[]], {"": 1}, {"$": 1},
]

scalars = st.one_of(
    st.sampled_from(HOSTILE_SCALARS),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=12),
)
keys = st.one_of(st.sampled_from(["a", "b", "_id", "x.y", "a.0", "$gt", "$in", "$set", "$inc",
                                  "$regex", "$ne", "$exists", "$elemMatch", "$and", "$or",
                                  "$not", "$type", "$size", "$all", "$mod", "$where",
                                  "$near", "$unset", "$push", "$each", "$", ""]),
                 st.text(max_size=6).filter(lambda k: "\x00" not in k))


def values(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Nested documents and arrays of hostile scalars, any keys (``$`` operators included)."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(keys, inner, max_size=4)),
        max_leaves=max_leaves,
    )


def nested(depth: int, leaf: Any = 1, *, key: str = "a", arrays: bool = False) -> Any:
    """A value nested ``depth`` levels (documents, or arrays when ``arrays``), built without
    recursion."""
    out = leaf
    for _ in range(depth):
        out = [out] if arrays else {key: out}
    return out


NESTING_DEPTHS = [99, 100, 101, 179, 180, 181, 199, 200, 201]
"""Around the limits of node/engine/limits.py: queries 100, stored documents 180, BSON 200."""


# --- malformed BSON ---------------------------------------------------------------------------

def deep_bson(depth: int) -> bytes:
    """BSON bytes of a document nested ``depth`` levels (encoded by hand: ``bson.encode``
    itself recurses)."""
    body = b"\x10a\x00\x01\x00\x00\x00\x00"  # {a: 1}
    body = struct.pack("<i", len(body) + 4) + body
    for _ in range(depth):
        inner = b"\x03a\x00" + body + b"\x00"
        body = struct.pack("<i", len(inner) + 4) + inner
    return body


@st.composite
def malformed_bson(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]] | None = None
                   ) -> bytes:
    """Bytes that look like BSON and mostly are not: flipped bytes, truncations, lengths that
    lie, every element type byte, invalid UTF-8 in keys and strings, very deep nesting."""
    doc = draw(base if base is not None else st.dictionaries(keys, values(6), max_size=4))
    try:
        good = bson.encode(doc)
    except Exception:  # e.g. a key bson refuses
        good = bson.encode({"ping": 1})
    kind = draw(st.sampled_from(["flip", "truncate", "length", "type", "utf8", "deep",
                                 "garbage", "append"]))
    if kind == "flip":
        out = bytearray(good)
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(out) - 1))
            out[pos] ^= draw(st.integers(1, 255))
        return bytes(out)
    if kind == "truncate":
        return good[:draw(st.integers(0, len(good) - 1))]
    if kind == "length":
        lie = draw(st.sampled_from([-(2**31), -1, 0, 1, 4, 5, len(good) - 1, len(good) + 1,
                                    2**31 - 1, 16 * 1024 * 1024 + 1]))
        return struct.pack("<i", lie) + good[4:]
    if kind == "type":
        t = draw(st.integers(0, 255))
        payload = draw(st.binary(max_size=16))
        body = bytes([t]) + b"k\x00" + payload
        return struct.pack("<i", len(body) + 5) + body + b"\x00"
    if kind == "utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]))
        if draw(st.booleans()):  # in a key
            body = b"\x10" + bad + b"\x00" + struct.pack("<i", 1)
        else:  # in a string value
            body = b"\x02s\x00" + struct.pack("<i", len(bad) + 1) + bad + b"\x00"
        return struct.pack("<i", len(body) + 5) + body + b"\x00"
    if kind == "deep":
        return deep_bson(draw(st.sampled_from([199, 200, 201, 1000, 3000])))
    if kind == "garbage":
        return draw(st.binary(max_size=64))
    return good + draw(st.binary(min_size=1, max_size=8))  # trailing bytes

"""Regex benchmark: ``$regex`` on RE2 (what the engine runs) against Python's backtracking ``re``
(what it ran before), in the engine and on the pathological pattern (see docs/regex.md).

``python -m bench regex [--docs N] [--repeat R] [--json PATH]`` loads N documents into an
in-memory engine and times ``count`` with typical patterns (an anchored prefix, a
case-insensitive substring, an alternation, a general pattern), once with the engine's RE2 and
once with the matcher's regex compiler swapped for ``re`` (same documents, same plan: a
collection scan); then one string per pattern over N strings (the regex alone); then
``^(a+)+$`` over ``"a" * n + "!"``, where ``re`` doubles its time with every ``a`` and RE2 stays
linear. ``--json PATH`` writes ``{"engine": [...], "match": [...], "pathological": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from node.commands.engine_ops import open_engine
from node.engine import matcher as matcher_module
from node.engine.memory_store import MemoryStore
from node.engine.regex import compile_regex

PATTERNS: list[tuple[str, str, str]] = [  # (label, pattern, options)
    ("prefix ^user0001", "^user0001", ""),
    ("substring, i", "EXAMPLE42", "i"),
    ("alternation", "foo|bar|example3\\.", ""),
    ("general", "^user\\d+@example1\\d\\.", ""),
]
PATHOLOGICAL = "^(a+)+$"
RE_LENGTHS = (14, 16, 18, 20, 22)
RE2_LENGTHS = (22, 1_000, 100_000)


class _PythonRe:
    """The compiled-pattern interface the matcher expects, on Python's ``re``."""

    def __init__(self, pattern: str, options: str) -> None:
        flags = 0
        for letter, flag in (("i", re.I), ("m", re.M), ("s", re.S), ("x", re.X)):
            if letter in options:
                flags |= flag
        self._search = re.compile(pattern, flags).search

    def search(self, text: str) -> bool:
        return self._search(text) is not None


@contextmanager
def python_re() -> Iterator[None]:
    """The matcher compiles patterns with ``re`` inside this block."""
    saved = matcher_module.compile_regex
    matcher_module.compile_regex = _PythonRe  # type: ignore[assignment]
    try:
        yield
    finally:
        matcher_module.compile_regex = saved


def email(i: int) -> str:
    return f"user{i:06d}@example{i % 97}.com"


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_engine(docs: int, repeat: int) -> list[dict[str, Any]]:
    engine = open_engine(MemoryStore())
    coll = engine.collection("bench", "regex")
    for start in range(0, docs, 1000):
        coll.insert([{"_id": i, "email": email(i), "n": i}
                     for i in range(start, min(docs, start + 1000))])
    rows = []
    for label, pattern, options in PATTERNS:
        flt = {"email": {"$regex": pattern, "$options": options}}
        coll.count({"n": -1})  # warm the plan cache alike for both runs
        re2_s, n_re2 = best_of(repeat, lambda flt=flt: coll.count(flt))
        with python_re():
            re_s, n_re = best_of(repeat, lambda flt=flt: coll.count(flt))
        assert n_re2 == n_re, (label, n_re2, n_re)
        rows.append({"pattern": label, "regex": pattern, "options": options, "docs": docs,
                     "matches": n_re2, "re2_ms": re2_s * 1e3, "re_ms": re_s * 1e3})
    return rows


def bench_match(count: int, repeat: int) -> list[dict[str, Any]]:
    texts = [email(i) for i in range(count)]
    rows = []
    for label, pattern, options in PATTERNS:
        fast, slow = compile_regex(pattern, options), _PythonRe(pattern, options)
        re2_s, _ = best_of(repeat, lambda r=fast: sum(map(r.search, texts)))
        re_s, _ = best_of(repeat, lambda r=slow: sum(map(r.search, texts)))
        rows.append({"pattern": label, "strings": count, "re2_us": re2_s / count * 1e6,
                     "re_us": re_s / count * 1e6})
    return rows


def bench_pathological() -> list[dict[str, Any]]:
    fast, slow = compile_regex(PATHOLOGICAL, ""), _PythonRe(PATHOLOGICAL, "")
    rows = []
    for n in sorted(set(RE_LENGTHS) | set(RE2_LENGTHS)):
        text = "a" * n + "!"
        row: dict[str, Any] = {"a_count": n, "re2_ms": best_of(3, lambda t=text: fast.search(t))[0]
                               * 1e3, "re_ms": None}
        if n in RE_LENGTHS:
            row["re_ms"] = best_of(1, lambda t=text: slow.search(t))[0] * 1e3
        rows.append(row)
    return rows


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench regex", description=__doc__)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    engine_rows = bench_engine(args.docs, args.repeat)
    print(f"count over {args.docs:,} documents (collection scan), best of {args.repeat}:")
    print(f"  {'pattern':<18} {'matches':>8} {'RE2 ms':>9} {'re ms':>9} {'RE2/re':>7}")
    for r in engine_rows:
        print(f"  {r['pattern']:<18} {r['matches']:>8} {r['re2_ms']:>9.1f} {r['re_ms']:>9.1f} "
              f"{r['re2_ms'] / r['re_ms']:>7.2f}")
    match_rows = bench_match(args.docs, args.repeat)
    print(f"the regex alone, per string ({args.docs:,} strings):")
    print(f"  {'pattern':<18} {'RE2 us':>9} {'re us':>9}")
    for r in match_rows:
        print(f"  {r['pattern']:<18} {r['re2_us']:>9.2f} {r['re_us']:>9.2f}")
    patho = bench_pathological()
    print(f"{PATHOLOGICAL} over 'a' * n + '!':")
    print(f"  {'n':>8} {'RE2 ms':>9} {'re ms':>10}")
    for r in patho:
        print(f"  {r['a_count']:>8,} {r['re2_ms']:>9.3f} {_ms(r['re_ms']):>10}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"engine": engine_rows, "match": match_rows, "pathological": patho}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

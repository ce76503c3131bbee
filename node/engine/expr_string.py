"""String expressions: ``$concat $substr $substrBytes $substrCP $toLower $toUpper $strLenBytes
$strLenCP $split $trim $ltrim $rtrim $indexOfBytes $indexOfCP $strcasecmp $replaceOne
$replaceAll $regexMatch $regexFind $regexFindAll``. Code points are Python characters; byte
offsets are UTF-8's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson.regex import Regex

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
)
from node.engine.regex import compile_capturing
from node.engine.values import is_number, number_value, type_name


def _concat(*args: Any) -> Any:
    out = []
    for a in args:
        if nullish(a):
            return None
        if not isinstance(a, str):
            raise err(16702, f"$concat only supports strings, not {type_name(a)}")
        out.append(a)
    return "".join(out)


def to_str_loose(v: Any, name: str) -> str:
    """``$toLower``/``$substr`` coercion: null -> "", numbers and dates as strings."""
    from node.engine.expr_type import to_string
    if nullish(v):
        return ""
    if isinstance(v, str):
        return v
    if is_number(v) or hasattr(v, "isoformat"):
        return to_string(v)
    raise err(16007, f"can't convert from BSON type {type_name(v)} to String")


def _int(v: Any, name: str, code: int) -> int:
    if not is_number(v) or int(number_value(v)) != number_value(v):
        raise err(code, f"{name}: starting index must be a numeric type (is BSON type "
                  f"{type_name(v)})")
    return int(number_value(v))


def _substr_bytes(s: Any, start: Any, length: Any) -> str:
    text = to_str_loose(s, "$substrBytes").encode("utf-8")
    b = _int(start, "$substrBytes", 16034)
    n = _int(length, "$substrBytes", 16035)
    if b < 0:
        return ""
    end = len(text) if n < 0 else b + n
    for pos, what in ((b, "starting"), (min(end, len(text)), "ending")):
        if 0 < pos < len(text) and (text[pos] & 0xC0) == 0x80:
            raise err(28656 if what == "starting" else 28657,
                      f"$substrBytes:  Invalid range, {what} index is a UTF-8 continuation byte.")
    return text[b:end].decode("utf-8")


def _substr_cp(s: Any, start: Any, length: Any) -> str:
    text = to_str_loose(s, "$substrCP")
    if not is_number(start):
        raise err(34450, f"$substrCP: starting index must be a numeric type (is BSON type "
                  f"{type_name(start)})")
    if not is_number(length):
        raise err(34452, f"$substrCP: length must be a numeric type (is BSON type "
                  f"{type_name(length)})")
    b, n = number_value(start), number_value(length)
    if int(b) != b:
        raise err(34451, "$substrCP: starting index cannot be represented as a 32-bit "
                  "integral value")
    if int(n) != n:
        raise err(34453, "$substrCP: length cannot be represented as a 32-bit integral value")
    if b < 0:
        raise err(34455, f"$substrCP: the starting index must be nonnegative integer: {b}")
    if n < 0:
        raise err(34454, f"$substrCP: length must be a nonnegative integer: {n}")
    return text[int(b):int(b) + int(n)]


def _case(fn: Any, name: str) -> Any:
    return lambda s: fn(to_str_loose(s, name))


def _str_len(name: str, code: int, measure: Any) -> Any:
    def run(s: Any) -> int:
        if not isinstance(s, str):
            raise err(code, f"{name} requires a string argument, found: {type_name(s)}")
        return measure(s)
    return run


def _split(s: Any, sep: Any) -> Any:
    if nullish(s):
        return None
    if not isinstance(s, str):
        raise err(40085, f"$split requires an expression that evaluates to a string as a first "
                  f"argument, found: {type_name(s)}")
    if not isinstance(sep, str):
        raise err(40086, f"$split requires an expression that evaluates to a string as a second "
                  f"argument, found: {type_name(sep)}")
    if not sep:
        raise err(40087, "$split requires a non-empty separator")
    return s.split(sep)


def _strcasecmp(a: Any, b: Any) -> int:
    x = to_str_loose(a, "$strcasecmp").lower()
    y = to_str_loose(b, "$strcasecmp").lower()
    return (x > y) - (x < y)


def _index_of(name: str, as_bytes: bool) -> Any:
    def run(s: Any, sub: Any, start: Any = 0, end: Any = None) -> Any:
        if nullish(s):
            return None
        if not isinstance(s, str):
            raise err(40091, f"{name} requires a string as the first argument, found: "
                      f"{type_name(s)}")
        if not isinstance(sub, str):
            raise err(40092, f"{name} requires a string as the second argument, found: "
                      f"{type_name(sub)}")
        text: Any = s.encode("utf-8") if as_bytes else s
        needle: Any = sub.encode("utf-8") if as_bytes else sub
        for v in (start, end):
            if v is None:
                continue
            if not is_number(v) or int(number_value(v)) != number_value(v):
                raise err(40096, f"{name} requires an integral starting index, found a value "
                          f"of type: {type_name(v)}")
            if number_value(v) < 0:
                raise err(40097, f"{name} requires a nonnegative start index, found: {v}")
        b = int(number_value(start))
        e = len(text) if end is None else int(number_value(end))
        if b > len(text) or b > e:
            return -1
        return text.find(needle, b, e)
    return run


def _trim(name: str, which: str) -> Any:
    @register(name)
    def compile_(arg: Any, scope: Scope) -> Fn:
        spec = named_args(name, arg, ["input"], ["chars"], 50695)
        inp = compile_expression(spec["input"], scope)
        chars = compile_expression(spec["chars"], scope) if "chars" in spec else None

        def run(v: Vars) -> Any:
            s = inp(v)
            if nullish(s):
                return None
            if not isinstance(s, str):
                raise err(50699, f"{name} requires its input to be a string, got {s!r} "
                          f"(of type {type_name(s)}) instead.")
            cs: Any = None
            if chars is not None:
                cs = chars(v)
                if nullish(cs):
                    return None
                if not isinstance(cs, str):
                    raise err(50700, f"{name} requires 'chars' to be a string, got {cs!r} "
                              f"(of type {type_name(cs)}) instead.")
            else:
                cs = " \0\t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" \
                     "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
            if which == "both":
                return s.strip(cs)
            return s.lstrip(cs) if which == "left" else s.rstrip(cs)
        return run


def _replace(name: str, every: bool) -> None:
    @register(name)
    def compile_(arg: Any, scope: Scope) -> Fn:
        spec = named_args(name, arg, ["input", "find", "replacement"], [], 51750)
        fns = [compile_expression(spec[k], scope) for k in ("input", "find", "replacement")]

        def run(v: Vars) -> Any:
            values = [f(v) for f in fns]
            for k, value in zip(("input", "find", "replacement"), values, strict=True):
                if not nullish(value) and not isinstance(value, str):
                    raise err(51746, f"{name} requires that '{k}' be a string, found: "
                              f"{value!r}")
            if any(nullish(x) for x in values):
                return None
            s, f, r = values
            return s.replace(f, r) if every else s.replace(f, r, 1)
        return run


def _regex(name: str) -> None:
    @register(name)
    def compile_(arg: Any, scope: Scope) -> Fn:
        if not isinstance(arg, Mapping):
            raise err(51103, f"{name} expects an object of named arguments but found: "
                      f"{type_name(arg)}")
        for k in arg:
            if k not in ("input", "regex", "options"):
                raise err(31024, f"{name} found an unknown argument: {k}")
        if "input" not in arg:
            raise err(31022, f"{name} requires 'input' parameter")
        if "regex" not in arg:
            raise err(31023, f"{name} requires 'regex' parameter")
        inp = compile_expression(arg["input"], scope)
        rx = compile_expression(arg["regex"], scope)
        opts = compile_expression(arg.get("options", ""), scope)
        cache: dict[tuple[str, str], Any] = {}

        def run(v: Vars) -> Any:
            s, pattern, options = inp(v), rx(v), opts(v)
            if isinstance(pattern, Regex):
                if not nullish(options) and options and pattern.flags:
                    raise err(51075, f"{name}: found regex option(s) specified in both "
                              "'regex' and 'option' fields")
                options = options if not nullish(options) and options else _flags(pattern)
                pattern = pattern.pattern
            if nullish(options):
                options = ""
            if not nullish(pattern) and not isinstance(pattern, str):
                raise err(51105, f"{name} needs 'regex' to be of type string or regex")
            if not isinstance(options, str):
                raise err(51106, f"{name} needs 'options' to be of type string")
            if not nullish(s) and not isinstance(s, str):
                raise err(51104, f"{name} needs 'input' to be of type string")
            if nullish(s) or nullish(pattern):
                return False if name == "$regexMatch" else ([] if name == "$regexFindAll"
                                                            else None)
            key = (pattern, options)
            compiled = cache.get(key)
            if compiled is None:
                compiled = cache[key] = compile_capturing(pattern, options)
            if name == "$regexMatch":
                return compiled.search(s) is not None
            out = []
            pos = 0
            for m in compiled.finditer(s):
                if m.start() < pos:
                    continue
                out.append({"match": m.group(0), "idx": m.start(),
                            "captures": list(m.groups())})
                if name == "$regexFind":
                    return out[0]
            return out if name == "$regexFindAll" else None
        return run


def _flags(rx: Regex) -> str:
    f = rx.flags
    if isinstance(f, str):
        return f
    out = ""
    for bit, letter in ((2, "i"), (8, "m"), (16, "s"), (64, "x"), (32, "u")):
        if f & bit:
            out += letter
    return out


simple("$concat", _concat, 0, None)
simple("$substr", _substr_bytes, 3, 3)
simple("$substrBytes", _substr_bytes, 3, 3)
simple("$substrCP", _substr_cp, 3, 3)
simple("$toLower", _case(str.lower, "$toLower"))
simple("$toUpper", _case(str.upper, "$toUpper"))
simple("$strLenBytes", _str_len("$strLenBytes", 34473, lambda s: len(s.encode("utf-8"))))
simple("$strLenCP", _str_len("$strLenCP", 34471, len))
simple("$split", _split, 2, 2)
simple("$strcasecmp", _strcasecmp, 2, 2)
simple("$indexOfBytes", _index_of("$indexOfBytes", True), 2, 4)
simple("$indexOfCP", _index_of("$indexOfCP", False), 2, 4)
_trim("$trim", "both")
_trim("$ltrim", "left")
_trim("$rtrim", "right")
_replace("$replaceOne", False)
_replace("$replaceAll", True)
for _n in ("$regexMatch", "$regexFind", "$regexFindAll"):
    _regex(_n)

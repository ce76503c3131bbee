"""Variables and the rest: ``$let $literal $rand $binarySize $bsonSize $meta``
(``$$ROOT $$CURRENT $$REMOVE $$NOW`` are resolved by :mod:`node.engine.expressions`)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import bson

from node.engine.expressions import (
    Fn,
    Scope,
    Vars,
    compile_expression,
    err,
    nullish,
    register,
    simple,
)
from node.engine.values import type_name


@register("$literal")
def _literal(arg: Any, scope: Scope) -> Fn:
    return lambda v: arg


@register("$let")
def _let(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping):
        raise err(16874, "$let only supports an object as its argument")
    for k in arg:
        if k not in ("vars", "in"):
            raise err(16875, f"Unrecognized parameter to $let: {k}")
    if "vars" not in arg:
        raise err(16876, "Missing 'vars' parameter to $let")
    if "in" not in arg:
        raise err(16877, "Missing 'in' parameter to $let")
    if not isinstance(arg["vars"], Mapping):
        raise err(10065, "invalid parameter: expected an object (vars)")
    defs = []
    for name, expr in arg["vars"].items():
        check_variable_name(name)
        defs.append((name, compile_expression(expr, scope)))
    body = compile_expression(arg["in"], scope.with_names(*(n for n, _ in defs)))

    def run(v: Vars) -> Any:
        return body(v.child(**{n: f(v) for n, f in defs}))
    return run


def check_variable_name(name: str) -> None:
    """User variable names start with a lowercase letter (or a non-ASCII character)."""
    if not name:
        raise err(16866, "empty variable names are not allowed")
    if not (name[0].islower() or ord(name[0]) > 127):
        raise err(16867, f"'{name}' starts with an invalid character for a user variable name")
    for ch in name:
        if not (ch.isalnum() or ch == "_" or ord(ch) > 127):
            raise err(16868, f"'{name}' contains an invalid character for a variable name: "
                      f"'{ch}'")


@register("$rand")
def _rand(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping) or arg:
        raise err(3040500, "$rand not allowed with arguments")
    if not scope.allow_rand:
        raise err(5155601, "$rand is not allowed in a write's filter or update: the result "
                  "must be the same on every replica set member")
    return lambda v: random.random()


def _binary_size(v: Any) -> Any:
    if nullish(v):
        return None
    if isinstance(v, str):
        return len(v.encode("utf-8"))
    if isinstance(v, bytes):
        return len(v)
    raise err(51276, f"$binarySize requires a string or BinData argument, found: "
              f"{type_name(v)}")


def _bson_size(v: Any) -> Any:
    if nullish(v):
        return None
    if not isinstance(v, Mapping):
        raise err(31393, f"$bsonSize requires a document input, found: {type_name(v)}")
    return len(bson.encode(v))


@register("$meta")
def _meta(arg: Any, scope: Scope) -> Fn:
    if arg not in ("textScore", "indexKey", "randVal", "searchScore", "sortKey"):
        raise err(17308, f"Unsupported argument to $meta: {arg}")
    return lambda v: v.values.get("__meta_" + str(arg), None)


simple("$binarySize", _binary_size)
simple("$bsonSize", _bson_size)

"""Comparison, boolean and conditional expressions: ``$cmp $eq $ne $gt $gte $lt $lte``,
``$and $or $not``, ``$cond $ifNull $switch``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.engine.expressions import (
    Fn,
    Scope,
    Vars,
    args_list,
    compile_expression,
    err,
    register,
    simple,
    truthy,
)
from node.engine.values import MISSING, compare


def _cmp_value(v: Any) -> Any:
    return None if v is MISSING else v


simple("$cmp", lambda a, b: compare(_cmp_value(a), _cmp_value(b)), 2, 2)
for _name, _test in (("$eq", lambda c: c == 0), ("$ne", lambda c: c != 0),
                     ("$gt", lambda c: c > 0), ("$gte", lambda c: c >= 0),
                     ("$lt", lambda c: c < 0), ("$lte", lambda c: c <= 0)):
    simple(_name, (lambda t: lambda a, b: t(compare(_cmp_value(a), _cmp_value(b))))(_test),
           2, 2)


@register("$and")
def _and(arg: Any, scope: Scope) -> Fn:
    fns = [compile_expression(a, scope) for a in args_list("$and", arg, 0, None)]
    return lambda v: all(truthy(f(v)) for f in fns)


@register("$or")
def _or(arg: Any, scope: Scope) -> Fn:
    fns = [compile_expression(a, scope) for a in args_list("$or", arg, 0, None)]
    return lambda v: any(truthy(f(v)) for f in fns)


simple("$not", lambda a: not truthy(a))


@register("$cond")
def _cond(arg: Any, scope: Scope) -> Fn:
    if isinstance(arg, Mapping):
        for k in arg:
            if k not in ("if", "then", "else"):
                raise err(17083, f"Unrecognized parameter to $cond: {k}")
        for k, code in (("if", 17080), ("then", 17081), ("else", 17082)):
            if k not in arg:
                raise err(code, f"Missing '{k}' parameter to $cond")
        parts = [arg["if"], arg["then"], arg["else"]]
    else:
        parts = args_list("$cond", arg, 3, 3)
    c, t, e = (compile_expression(p, scope) for p in parts)
    return lambda v: t(v) if truthy(c(v)) else e(v)


@register("$ifNull")
def _if_null(arg: Any, scope: Scope) -> Fn:
    fns = [compile_expression(a, scope) for a in args_list("$ifNull", arg, 2, None)]

    def run(v: Vars) -> Any:
        for f in fns[:-1]:
            value = f(v)
            if value is not MISSING and value is not None:
                return value
        return fns[-1](v)
    return run


@register("$switch")
def _switch(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping):
        raise err(40060, "$switch requires an object as an argument")
    branches = arg.get("branches")
    for k in arg:
        if k not in ("branches", "default"):
            raise err(40067, f"$switch found an unknown argument: {k}")
    if not isinstance(branches, list):
        raise err(40061, "$switch expected an array for 'branches'")
    if not branches:
        raise err(40068, "$switch requires at least one branch.")
    compiled = []
    for b in branches:
        if not isinstance(b, Mapping):
            raise err(40062, "$switch expected each branch to be an object")
        for k in b:
            if k not in ("case", "then"):
                raise err(40063, f"$switch found an unknown argument to a branch: {k}")
        if "case" not in b:
            raise err(40064, "$switch requires each branch have a 'case' expression")
        if "then" not in b:
            raise err(40065, "$switch requires each branch have a 'then' expression.")
        compiled.append((compile_expression(b["case"], scope),
                         compile_expression(b["then"], scope)))
    default = compile_expression(arg["default"], scope) if "default" in arg else None

    def run(v: Vars) -> Any:
        for case, then in compiled:
            if truthy(case(v)):
                return then(v)
        if default is None:
            raise err(40066, "$switch could not find a matching branch for an input, and no "
                      "default was specified.")
        return default(v)
    return run

"""Object expressions: ``$mergeObjects $getField $setField $unsetField``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from node.engine.values import type_name


def merge_objects(*args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in args:
        if nullish(a):
            continue
        if not isinstance(a, Mapping):
            raise err(40400, f"$mergeObjects requires object inputs, but input {a!r} is of type "
                      f"{type_name(a)}")
        out.update(a)
    return out


def _field_arg(name: str, field: Any) -> str:
    if isinstance(field, Mapping) and set(field) == {"$literal"}:
        field = field["$literal"]
    if not isinstance(field, str):
        raise err(5654601, f"{name} requires 'field' to evaluate to type String, but got "
                  f"{type_name(field)}")
    return field


@register("$getField")
def _get_field(arg: Any, scope: Scope) -> Fn:
    if isinstance(arg, Mapping) and "field" in arg:
        for k in arg:
            if k not in ("field", "input"):
                raise err(3041701, f"$getField found an unknown argument: {k}")
        field = _field_arg("$getField", arg["field"])
        inp = compile_expression(arg.get("input", "$$CURRENT"), scope)
    else:
        field = _field_arg("$getField", arg)
        inp = compile_expression("$$CURRENT", scope)

    def run(v: Vars) -> Any:
        o = inp(v)
        if nullish(o):
            return MISSING if o is MISSING else None
        if not isinstance(o, Mapping):
            raise err(3041705, f"$getField requires 'input' to evaluate to type Object, but got "
                      f"{type_name(o)}")
        return o.get(field, MISSING)
    return run


def _set_like(name: str, unset: bool) -> None:
    @register(name)
    def compile_(arg: Any, scope: Scope) -> Fn:
        want = ("field", "input") if unset else ("field", "input", "value")
        if not isinstance(arg, Mapping):
            raise err(4161100, f"{name} only supports an object as its argument")
        for k in arg:
            if k not in want:
                raise err(4161101, f"{name} found an unknown argument: {k}")
        for k in want:
            if k not in arg:
                raise err(4161102 + want.index(k), f"{name} requires '{k}' to be specified")
        field = _field_arg(name, arg["field"])
        inp = compile_expression(arg["input"], scope)
        val = None if unset else compile_expression(arg["value"], scope)

        def run(v: Vars) -> Any:
            o = inp(v)
            if nullish(o):
                return None
            if not isinstance(o, Mapping):
                raise err(4161105, f"{name} requires 'input' to evaluate to type Object")
            out = dict(o)
            value = MISSING if val is None else val(v)
            if value is MISSING:
                out.pop(field, None)
            else:
                out[field] = value
            return out
        return run


simple("$mergeObjects", merge_objects, 0, None)
_set_like("$setField", False)
_set_like("$unsetField", True)

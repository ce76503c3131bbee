"""The aggregation expression language: an expression compiled once into a function of the
variables (``$$CURRENT``, ``$$ROOT``, ``$let`` names, ...), evaluated per document.

``compile_expression(expr, scope)`` returns ``Fn`` (``Callable[[Vars], Any]``); ``evaluate``
is the one-shot form. Values follow the engine's rules (:mod:`node.engine.values`); a missing
field evaluates to ``MISSING`` (object expressions drop it, most operators read it as null).

Operators live in one module per family (``expr_arith``, ``expr_compare``, ``expr_string``,
``expr_array``, ``expr_date``, ``expr_type``, ``expr_object``, ``expr_misc``); each registers
its operators in :data:`OPERATORS` with :func:`register` (a compiler of the operator's raw
argument) or :func:`simple` (a function of the evaluated arguments). The families are imported
on first use, so they may import this module freely (no import cycle).
"""

from __future__ import annotations

import contextvars
import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from node.engine.errors import MongoError, location
from node.engine.values import MISSING

Fn = Callable[["Vars"], Any]
Compiler = Callable[[Any, "Scope"], Fn]

OPERATORS: dict[str, Compiler] = {}
"""Operator name -> compiler of its raw argument."""

ENTRY_NOW: contextvars.ContextVar[datetime.datetime | None] = contextvars.ContextVar(
    "entry_now", default=None)
"""The time of the log entry being applied: ``$$NOW`` in a write's ``$expr`` (and in
validators) is that, identical on every member."""

SYSTEM_VARIABLES = frozenset({"ROOT", "CURRENT", "REMOVE", "NOW", "CLUSTER_TIME", "DESCEND",
                              "PRUNE", "KEEP", "SEARCH_META", "USER_ROLES"})


class Vars:
    """The variables of one evaluation: ``CURRENT`` and ``ROOT`` are the document."""

    __slots__ = ("values",)

    def __init__(self, doc: Any = None, values: Mapping[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values) if values else {}
        if doc is not None:
            self.values["CURRENT"] = doc
            self.values["ROOT"] = doc

    def child(self, **more: Any) -> Vars:
        out = Vars.__new__(Vars)
        out.values = {**self.values, **more}
        return out


class Scope:
    """Compile-time context: the variable names defined where an expression appears, and the
    evaluation-wide constants (``$$NOW``; whether ``$rand`` is allowed)."""

    __slots__ = ("allow_rand", "names", "now")

    def __init__(self, names: Sequence[str] = (), *, now: datetime.datetime | None = None,
                 allow_rand: bool = True) -> None:
        self.names = frozenset(names) | SYSTEM_VARIABLES
        self.now = now
        self.allow_rand = allow_rand

    def with_names(self, *names: str) -> Scope:
        out = Scope.__new__(Scope)
        out.names = self.names | frozenset(names)
        out.now, out.allow_rand = self.now, self.allow_rand
        return out


def err(code: int, msg: str) -> MongoError:
    return location(code, msg)


def register(*names: str) -> Callable[[Compiler], Compiler]:
    """Decorator: ``compiler(arg, scope) -> Fn`` handles the operators ``names``."""
    def deco(fn: Compiler) -> Compiler:
        for n in names:
            OPERATORS[n] = fn
        return fn
    return deco


def args_list(name: str, arg: Any, lo: int, hi: int | None) -> list[Any]:
    """An operator's arguments: an array, or one non-array value as a one-element list;
    checked against ``lo..hi`` (``hi`` None: unbounded) with MongoDB's codes: 28667 for a
    range (``lo < hi``), 16020 otherwise."""
    args = list(arg) if isinstance(arg, list) else [arg]
    if len(args) < lo or (hi is not None and len(args) > hi):
        if hi is not None and lo < hi:  # MongoDB's ranged arity
            raise MongoError(28667, f"Expression {name} takes at least {lo} argument"
                             f"{'s' if lo != 1 else ''}, and at most {hi}, but {len(args)} "
                             "were passed in.", code_name="Location28667")
        want = f"{'' if lo == hi else 'at least '}{lo} argument{'s' if lo != 1 else ''}"
        raise MongoError(16020, f"Expression {name} takes {want}. {len(args)} were passed in.",
                         code_name="Location16020")
    return args


def simple(name: str, fn: Callable[..., Any], lo: int = 1, hi: int | None = 1) -> None:
    """Register ``name`` as a function of its evaluated arguments (MISSING passed through)."""
    def compile_(arg: Any, scope: Scope) -> Fn:
        fns = [compile_expression(a, scope) for a in args_list(name, arg, lo, hi)]
        if len(fns) == 1:
            f0 = fns[0]
            return lambda v: fn(f0(v))
        if len(fns) == 2:
            f0, f1 = fns
            return lambda v: fn(f0(v), f1(v))
        return lambda v: fn(*[f(v) for f in fns])
    OPERATORS[name] = compile_


def named_args(name: str, arg: Any, required: Sequence[str], optional: Sequence[str],
               code: int = 40163) -> dict[str, Any]:
    """An operator taking a document of named arguments (``$dateAdd``, ``$filter`` ...)."""
    if not isinstance(arg, Mapping):
        raise err(code, f"{name} only supports an object as its argument")
    for k in arg:
        if k not in required and k not in optional:
            raise err(code, f"Unrecognized parameter to {name}: {k}")
    for k in required:
        if k not in arg:
            raise err(code, f"Missing '{k}' parameter to {name}")
    return dict(arg)


_loaded = False


def _load_families() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from node.engine import (  # noqa: F401
        expr_arith,
        expr_array,
        expr_compare,
        expr_date,
        expr_misc,
        expr_object,
        expr_string,
        expr_type,
    )


def is_expression_name(name: str) -> bool:
    """True when ``name`` is an operator of the expression language (``"$concat"``)."""
    _load_families()
    return name in OPERATORS


def _field_path(path: str) -> Fn:
    parts = path.split(".")
    for p in parts:
        if not p:
            raise err(15998, "FieldPath field names may not be empty strings.")
        if p.startswith("$"):
            raise err(16410, "FieldPath field names may not start with '$'.")
    if len(parts) == 1:
        name = parts[0]

        def top(v: Vars) -> Any:
            doc = v.values["CURRENT"]
            return doc.get(name, MISSING) if isinstance(doc, Mapping) else MISSING
        return top
    return lambda v: get_path(v.values["CURRENT"], parts)


def get_path(value: Any, parts: Sequence[str]) -> Any:
    """Aggregation field-path semantics: through documents, and over arrays element-wise
    (``"$a.b"`` of ``{a: [{b: 1}, {b: 2}, {}]}`` is ``[1, 2]``); no numeric indexes."""
    for i, name in enumerate(parts):
        if isinstance(value, Mapping):
            value = value.get(name, MISSING)
            if value is MISSING:
                return MISSING
        elif isinstance(value, list):
            rest = parts[i:]
            out = []
            for e in value:
                if isinstance(e, Mapping | list):
                    r = get_path(e, rest)
                    if r is not MISSING:
                        out.append(r)
            return out
        else:
            return MISSING
    return value


def _variable(ref: str, scope: Scope) -> Fn:
    name, _, rest = ref.partition(".")
    if not name:
        raise err(16869, "empty variable name")
    if name not in scope.names:
        raise MongoError(17276, f"Use of undefined variable: {name}", code_name="Location17276")
    parts = rest.split(".") if rest else []
    if name == "REMOVE":
        return lambda v: MISSING
    if name == "NOW" and scope.now is not None:
        now = scope.now
        return lambda v: now
    if name in ("NOW", "CLUSTER_TIME"):
        def now_(v: Vars) -> Any:
            value = v.values.get(name, MISSING)
            if value is MISSING:
                value = ENTRY_NOW.get()
            if value is None or value is MISSING:
                value = datetime.datetime.now(datetime.UTC).replace(microsecond=(
                    datetime.datetime.now(datetime.UTC).microsecond // 1000) * 1000)
                v.values[name] = value
            return value
        return now_
    if not parts:
        return lambda v: v.values.get(name, MISSING)
    return lambda v: get_path(v.values.get(name, MISSING), parts)


def compile_expression(expr: Any, scope: Scope | None = None) -> Fn:
    """Compile ``expr`` (an aggregation expression) once; raises MongoError when malformed."""
    _load_families()
    if scope is None:
        scope = Scope()
    if isinstance(expr, str):
        if expr.startswith("$$"):
            return _variable(expr[2:], scope)
        if expr.startswith("$"):
            if len(expr) == 1:
                raise err(16872, "'$' by itself is not a valid FieldPath")
            return _field_path(expr[1:])
        return lambda v: expr
    if isinstance(expr, Mapping):
        keys = list(expr)
        if keys and isinstance(keys[0], str) and keys[0].startswith("$"):
            if len(keys) != 1:
                raise MongoError(15983, "An object representing an expression must have "
                                 f"exactly one field: {dict(expr)!r}", code_name="Location15983")
            op = keys[0]
            compiler = OPERATORS.get(op)
            if compiler is None:
                raise MongoError(168, f"Unrecognized expression '{op}'",
                                 code_name="InvalidPipelineOperator")
            return compiler(expr[op], scope)
        fields: list[tuple[str, Fn]] = []
        for k, sub in expr.items():
            if isinstance(k, str) and k.startswith("$"):
                raise err(16410, f"FieldPath field names may not start with '$'. Given: {k}")
            if "." in k:
                raise err(16412, f"FieldPath field names may not contain '.'. Given: {k}")
            fields.append((k, compile_expression(sub, scope)))

        def obj(v: Vars) -> Any:
            out = {}
            for k, f in fields:
                value = f(v)
                if value is not MISSING:
                    out[k] = value
            return out
        return obj
    if isinstance(expr, list):
        fns = [compile_expression(e, scope) for e in expr]

        def arr(v: Vars) -> Any:
            out = []
            for f in fns:
                value = f(v)
                out.append(None if value is MISSING else value)
            return out
        return arr
    return lambda v: expr


def evaluate(expr: Any, doc: Any, variables: Mapping[str, Any] | None = None) -> Any:
    """One-shot: the value of ``expr`` for ``doc`` (MISSING when it is missing)."""
    scope = Scope(list(variables or ()))
    return compile_expression(expr, scope)(Vars(doc, variables))


def truthy(value: Any) -> bool:
    """MongoDB's boolean coercion: false, null, missing, undefined and 0 are false."""
    from node.engine.values import UNDEFINED, is_number
    if value is MISSING or value is None or value is UNDEFINED or value is False:
        return False
    if is_number(value):
        from node.engine.values import number_value
        return number_value(value) != 0
    return True


def nullish(value: Any) -> bool:
    from node.engine.values import UNDEFINED
    return value is MISSING or value is None or value is UNDEFINED


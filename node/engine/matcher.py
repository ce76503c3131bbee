"""The query language: a query document compiled once into a :class:`Matcher`.

Semantics follow MongoDB's manual: implicit AND of fields; dot paths with implicit array
traversal (:mod:`node.engine.paths`); a leaf operator ($eq, $gt, $in, $regex, ...) matches when the
field value, or any element of an array field value, satisfies it; array operators ($size,
$elemMatch) look at arrays themselves; comparisons only match values of the operand's type
bracket (``{$gt: 5}`` never matches a string); ``null`` matches missing fields; ``$ne``/``$nin``/
``$not``/``$nor`` are negations of the whole per-field test. Geo operators ($near, $nearSphere,
$within, $geoWithin) are delegated to :mod:`node.engine.geo`.

Malformed queries raise MongoError code 2 (BadValue) with MongoDB's messages at compile time.
"""

from __future__ import annotations

import contextvars
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bson.regex import Regex

from node.engine import bitwise
from node.engine.errors import MongoError, bad_value, location
from node.engine.limits import MAX_QUERY_DEPTH, short_render
from node.engine.paths import Parts, iter_path, split_path
from node.engine.regex import Regex2, compile_regex
from node.engine.values import (
    MISSING,
    RANK_MAXKEY,
    RANK_MINKEY,
    RANK_STRING,
    bson_type_code,
    canonical_rank,
    compare,
    hash_key,
    is_nan,
    is_number,
    number_value,
    regex_parts,
    type_codes,
)

# evaluation results: a position (>= 0), or one of these
NO_MATCH = -2
MATCH = -1

Raw = list[tuple[Any, "int | None"]]  # values along a path with their first-array positions

_GEO_OPERATORS = frozenset({"$near", "$nearSphere", "$within", "$geoWithin"})
_DBREF_KEYS = frozenset({"$ref", "$id", "$db"})


def _found(pos: int | None) -> int:
    return MATCH if pos is None else pos


def _candidates(raw: Raw, expand: bool) -> Iterable[tuple[Any, int | None]]:
    """Leaf candidates: each array's elements (with their index) and then the array itself."""
    for value, pos in raw:
        if expand and isinstance(value, list | tuple):
            for k, element in enumerate(value):
                yield element, (k if pos is None else pos)
        yield value, pos


# --- field-level operators ----------------------------------------------------------------------


class _Op:
    """One operator applied to the values a path reached."""

    def eval(self, raw: Raw, expand: bool) -> int:
        raise NotImplementedError


class _Leaf(_Op):
    """An operator that tests single values; arrays match when any element (or the whole) does."""

    def __init__(self, test: Callable[[Any], bool]) -> None:
        self.test = test

    def eval(self, raw: Raw, expand: bool) -> int:
        test = self.test
        if len(raw) == 1:  # fast path: one value that is not an array to expand
            value, pos = raw[0]
            if not expand or (type(value) in _SCALARS or not isinstance(value, list | tuple)):
                if test(value):
                    return MATCH if pos is None else pos
                return NO_MATCH
        for value, pos in _candidates(raw, expand):
            if test(value):
                return _found(pos)
        return NO_MATCH


class _Not(_Op):
    def __init__(self, inner: _Op) -> None:
        self.inner = inner

    def eval(self, raw: Raw, expand: bool) -> int:
        return MATCH if self.inner.eval(raw, expand) == NO_MATCH else NO_MATCH


class _AllOf(_Op):
    """Every operator must match (the operators of one field, ``$all``); last position wins."""

    def __init__(self, ops: list[_Op]) -> None:
        self.ops = ops

    def eval(self, raw: Raw, expand: bool) -> int:
        result = MATCH
        for op in self.ops:
            r = op.eval(raw, expand)
            if r == NO_MATCH:
                return NO_MATCH
            if r >= 0:
                result = r
        return result


class _Never(_Op):
    def eval(self, raw: Raw, expand: bool) -> int:
        return NO_MATCH


class _Exists(_Op):
    def __init__(self, want: bool) -> None:
        self.want = want

    def eval(self, raw: Raw, expand: bool) -> int:
        present = any(v is not MISSING for v, _ in raw)
        return MATCH if present == self.want else NO_MATCH


class _Size(_Op):
    def __init__(self, size: int) -> None:
        self.size = size

    def eval(self, raw: Raw, expand: bool) -> int:
        for value, pos in raw:
            if isinstance(value, list | tuple) and len(value) == self.size:
                return _found(pos)
        return NO_MATCH


class _ElemMatch(_Op):
    """``$elemMatch``: some element of an array satisfies a query (object form) or operators."""

    def __init__(self, node: _Node | None, value_op: _Op | None) -> None:
        self.node = node
        self.value_op = value_op

    def eval(self, raw: Raw, expand: bool) -> int:
        for value, pos in raw:
            if not isinstance(value, list | tuple):
                continue
            for k, element in enumerate(value):
                if self.node is not None:
                    if isinstance(element, list | tuple):  # an inner array is matched as the
                        element = {str(i): v for i, v in enumerate(element)}  # document it is
                    ok = isinstance(element, Mapping) and self.node.eval(element) != NO_MATCH
                else:
                    assert self.value_op is not None
                    ok = self.value_op.eval([(element, None)], False) != NO_MATCH
                if ok:
                    return k if pos is None else pos
        return NO_MATCH


class _Geo(_Op):
    def __init__(self, query: Any) -> None:
        self.query = query

    def eval(self, raw: Raw, expand: bool) -> int:
        for value, pos in raw:
            if value is not MISSING and self.query.matches(value):
                return _found(pos)
        return NO_MATCH


# --- value tests --------------------------------------------------------------------------------


_SCALARS = frozenset({int, float, str, bool, type(None)})
_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def _plain_operand(rhs: Any) -> type | None:
    """``int``/``float`` for a plain non-NaN number, ``str`` for a string, else None: operands
    whose comparison with a value of one of these exact types is Python's own (the fast path
    of the value tests; every other value takes the general path)."""
    kind = type(rhs)
    if kind is str or ((kind is int or kind is float) and rhs == rhs):
        return kind
    return None


def _equals(rhs: Any) -> Callable[[Any], bool]:
    rank = canonical_rank(rhs)

    def test(v: Any) -> bool:
        return canonical_rank(v) == rank and compare(v, rhs) == 0

    kind = _plain_operand(rhs)
    if kind is str:

        def str_test(v: Any) -> bool:
            return v == rhs if type(v) is str else test(v)

        return str_test
    if kind is not None:

        def number_test(v: Any) -> bool:
            t = type(v)
            return v == rhs if t is int or t is float else test(v)

        return number_test
    return test


def _comparison(op: str, rhs: Any) -> Callable[[Any], bool]:
    rank = canonical_rank(rhs)
    rhs_nan = is_nan(rhs)
    accept = {
        "$gt": lambda c: c > 0,
        "$gte": lambda c: c >= 0,
        "$lt": lambda c: c < 0,
        "$lte": lambda c: c <= 0,
    }[op]
    inclusive = op in ("$gte", "$lte")

    def test(v: Any) -> bool:
        v_rank = canonical_rank(v)
        if v_rank != rank:
            # MinKey and MaxKey operands compare against every type
            if rank in (RANK_MINKEY, RANK_MAXKEY) and v is not MISSING:
                return accept(compare(v, rhs))
            return False
        if rhs_nan or is_nan(v):
            return inclusive and rhs_nan and is_nan(v)
        return accept(compare(v, rhs))

    kind = _plain_operand(rhs)
    fast = _ORDER_OPS[op]
    if kind is str:

        def str_test(v: Any) -> bool:
            return fast(v, rhs) if type(v) is str else test(v)

        return str_test
    if kind is not None:

        def number_test(v: Any) -> bool:
            t = type(v)
            if t is int or (t is float and v == v):
                return fast(v, rhs)
            return test(v)

        return number_test
    return test


def _regex_test(pattern: Regex2, as_value: Any) -> Callable[[Any], bool]:
    value_key = hash_key(as_value)
    search = pattern.search

    def test(v: Any) -> bool:
        if isinstance(v, str):
            return canonical_rank(v) == RANK_STRING and search(v)
        if isinstance(v, Regex | re.Pattern):
            return hash_key(v) == value_key
        return False

    return test


def _regex_from_value(value: Regex[Any] | re.Pattern[Any], options: str | None = None) -> _Leaf:
    pattern, letters = regex_parts(value)
    if options is not None:
        letters = options
    letters = letters.replace("l", "")
    return _Leaf(_regex_test(compile_regex(pattern, letters), Regex(pattern, letters)))


def _is_regex(value: Any) -> bool:
    return isinstance(value, Regex | re.Pattern)


def _in_test(values: list[Any], op: str) -> Callable[[Any], bool]:
    keys = set()
    regexes: list[Callable[[Any], bool]] = []
    for v in values:
        t = type(v)
        if t is int or t is str or t is float:  # the common case, without the checks below
            keys.add(hash_key(v))
            continue
        if isinstance(v, Mapping) and v and _is_operator_dict(v):
            raise bad_value(f"cannot nest $ under {op}")
        if _is_regex(v):
            regexes.append(_regex_from_value(v).test)
        else:
            keys.add(hash_key(v))

    def test(v: Any) -> bool:
        if keys and hash_key(v) in keys:
            return True
        return any(r(v) for r in regexes)

    return test


def _mod_test(spec: Any) -> Callable[[Any], bool]:
    if not isinstance(spec, list | tuple):
        raise bad_value("malformed mod, needs to be an array")
    if len(spec) < 2:
        raise bad_value("malformed mod, not enough elements")
    if len(spec) > 2:
        raise bad_value("malformed mod, too many elements")
    divisor_v, remainder_v = spec
    if not is_number(divisor_v):
        raise bad_value("malformed mod, divisor not a number")
    if not is_number(remainder_v):
        raise bad_value("malformed mod, remainder not a number")
    if is_nan(divisor_v) or is_nan(remainder_v) or _infinite(divisor_v) or _infinite(remainder_v):
        raise bad_value("malformed mod, divisor or remainder value is invalid")
    divisor = int(number_value(divisor_v))
    remainder = int(number_value(remainder_v))
    if divisor == 0:
        raise bad_value("divisor cannot be 0")

    def test(v: Any) -> bool:
        if not is_number(v) or is_nan(v) or _infinite(v):
            return False
        x = int(number_value(v))
        r = abs(x) % abs(divisor)
        return (-r if x < 0 else r) == remainder

    return test


def _infinite(v: Any) -> bool:
    n = number_value(v)
    return n in (float("inf"), float("-inf"))


def _type_test(spec: Any) -> Callable[[Any], bool]:
    codes = type_codes(spec)

    def test(v: Any) -> bool:
        return v is not MISSING and bson_type_code(v) in codes

    return test


def _truthy(v: Any) -> bool:
    if v is None or v is MISSING:
        return False
    if is_number(v):
        return number_value(v) != 0
    return bool(v) if isinstance(v, bool) else True


# --- compilation --------------------------------------------------------------------------------


def _is_operator_dict(value: Mapping[str, Any]) -> bool:
    """An operator document starts with a ``$`` field (and is not a DBRef-shaped literal)."""
    first = next(iter(value))
    return isinstance(first, str) and first.startswith("$") and first not in _DBREF_KEYS


def _deeper(depth: int, sub: Any) -> int:
    """The depth of a query document nested in one at ``depth`` ($and/$or/$nor clauses,
    $elemMatch, $not); past MongoDB's limit the query is refused (BadValue), so compiling
    never recurses more than :data:`~node.engine.limits.MAX_QUERY_DEPTH` levels."""
    depth += 1
    if depth > MAX_QUERY_DEPTH:
        raise bad_value(f"exceeded maximum query tree depth of {MAX_QUERY_DEPTH} at "
                        f"{short_render(sub)}")
    return depth


def _compile_equality(value: Any) -> _Op:
    if _is_regex(value):
        return _regex_from_value(value)
    return _Leaf(_equals(value))


def _compile_operators(spec: Mapping[str, Any], depth: int, path: str = "") -> _Op:
    """The operators of one field, ``{"$gt": 1, "$lt": 5}``, as one AND."""
    if any(k in _GEO_OPERATORS for k in spec):
        return _compile_geo(spec)
    ops: list[_Op] = []
    options = spec.get("$options")
    if options is not None and "$regex" not in spec:
        raise bad_value("$options needs a $regex")
    for name, arg in spec.items():
        if name == "$options":
            continue
        ops.append(_compile_operator(name, arg, spec, depth, path))
    return ops[0] if len(ops) == 1 else _AllOf(ops)


def _compile_geo(spec: Mapping[str, Any]) -> _Op:
    try:
        from node.engine import geo
    except ImportError:  # pragma: no cover - geo is part of the engine
        op = next(k for k in spec if k in _GEO_OPERATORS)
        raise bad_value(f"{op} is not supported") from None
    return _Geo(geo.compile_geo(spec))


def _compile_operator(name: str, arg: Any, spec: Mapping[str, Any], depth: int,
                      path: str = "") -> _Op:
    if name == "$eq":
        return _Leaf(_equals(arg))
    if name == "$ne":
        if _is_regex(arg):
            raise bad_value("Can't have regex as arg to $ne.")
        return _Not(_Leaf(_equals(arg)))
    if name in ("$gt", "$gte", "$lt", "$lte"):
        return _Leaf(_comparison(name, arg))
    if name in ("$in", "$nin"):
        if not isinstance(arg, list | tuple):
            raise bad_value(f"{name} needs an array")
        test = _Leaf(_in_test(list(arg), name))
        return test if name == "$in" else _Not(test)
    if name == "$all":
        return _compile_all(arg, depth)
    if name == "$exists":
        return _Exists(_truthy(arg))
    if name == "$mod":
        return _Leaf(_mod_test(arg))
    if name == "$size":
        return _Size(_size_arg(arg))
    if name == "$type":
        return _Leaf(_type_test(arg))
    if name in bitwise.BIT_TEST_OPERATORS:
        return _Leaf(bitwise.bit_test(path, name, arg))
    if name == "$regex":
        keys = list(spec)
        options_first = "$options" in spec and keys.index("$options") < keys.index("$regex")
        return _compile_regex_operator(arg, spec.get("$options"), options_first)
    if name == "$not":
        return _compile_not(arg, depth, path)
    if name == "$elemMatch":
        return _compile_elem_match(arg, depth)
    if name in ("$maxDistance", "$minDistance", "$uniqueDocs"):
        raise bad_value(f"{name} can only be used with $near, $nearSphere or $within")
    raise bad_value(f"unknown operator: {name}")


def _size_arg(arg: Any) -> int:
    if not is_number(arg):
        raise bad_value("$size needs a number")
    if is_nan(arg) or _infinite(arg):
        raise bad_value("$size must be a whole number")
    n = number_value(arg)
    if n != int(n):
        raise bad_value("$size must be a whole number")
    if n < 0:
        raise bad_value("$size may not be negative")
    return int(n)


def _compile_regex_operator(arg: Any, options: Any, options_first: bool = False) -> _Op:
    if options is not None and not isinstance(options, str):
        raise bad_value("$options has to be a string")
    if isinstance(arg, str):
        letters = options or ""
        return _Leaf(_regex_test(compile_regex(arg, letters), Regex(arg, letters)))
    if _is_regex(arg):
        if regex_parts(arg)[1]:  # a regex value with flags of its own (re's 'u' included)
            if options:
                code = 51074 if options_first else 51075
                raise location(code, "options set in both $regex and $options")
            options = None
        return _regex_from_value(arg, options)
    raise bad_value("$regex has to be a string")


def _compile_not(arg: Any, depth: int, path: str = "") -> _Op:
    if _is_regex(arg):
        return _Not(_regex_from_value(arg))
    if isinstance(arg, Mapping):
        if not arg:
            raise bad_value("$not cannot be empty")
        if not _is_operator_dict(arg):
            raise bad_value(f"unknown operator: {next(iter(arg))}")
        return _Not(_compile_operators(arg, _deeper(depth, arg), path))
    raise bad_value("$not needs a regex or a document")


def _compile_all(arg: Any, depth: int) -> _Op:
    if not isinstance(arg, list | tuple):
        raise bad_value("$all needs an array")
    if not arg:
        return _Never()
    elem_matches = [
        isinstance(v, Mapping) and len(v) > 0 and next(iter(v)) == "$elemMatch" for v in arg
    ]
    if any(elem_matches):
        if not all(elem_matches):
            raise bad_value("$all/$elemMatch has to be consistent")
        return _AllOf([_compile_elem_match(v["$elemMatch"], depth) for v in arg])
    ops: list[_Op] = []
    for v in arg:
        if isinstance(v, Mapping) and v and _is_operator_dict(v):
            raise bad_value("no $ expressions in $all")
        ops.append(_compile_equality(v))
    return _AllOf(ops)


_LOGICAL = frozenset({"$and", "$or", "$nor", "$where", "$expr", "$text", "$comment"})


def _compile_elem_match(arg: Any, depth: int) -> _Op:
    if not isinstance(arg, Mapping):
        raise bad_value("$elemMatch needs an Object")
    if arg and _is_operator_dict(arg) and next(iter(arg)) not in _LOGICAL:
        return _ElemMatch(None, _compile_operators(arg, _deeper(depth, arg)))
    return _ElemMatch(_compile_query(arg, [], _deeper(depth, arg)), None)


class _Node:
    """A boolean expression over a whole document."""

    def eval(self, doc: Any) -> int:
        raise NotImplementedError


class _Field(_Node):
    def __init__(self, parts: Parts, op: _Op) -> None:
        self.parts = parts
        self.op = op
        self.name = parts[0] if len(parts) == 1 else None

    def eval(self, doc: Any) -> int:
        if self.name is not None and isinstance(doc, Mapping):
            # fast path for a top-level field: the one value it has (or MISSING)
            return self.op.eval([(doc.get(self.name, MISSING), None)], True)
        return self.op.eval(list(iter_path(doc, self.parts)), True)


class _And(_Node):
    def __init__(self, children: list[_Node]) -> None:
        self.children = children

    def eval(self, doc: Any) -> int:
        result = MATCH
        for child in self.children:
            r = child.eval(doc)
            if r == NO_MATCH:
                return NO_MATCH
            if r >= 0:
                result = r
        return result


class _Or(_Node):
    def __init__(self, children: list[_Node], keeps_position: bool = True) -> None:
        self.children = children
        self.keeps_position = keeps_position

    def eval(self, doc: Any) -> int:
        for child in self.children:
            r = child.eval(doc)
            if r != NO_MATCH:
                return r if self.keeps_position else MATCH
        return NO_MATCH


def _or_keeps_position(clauses: list[Any]) -> bool:
    """MongoDB reads a one-clause ``$or`` as its clause and an ``$or`` of equalities on one path
    as an ``$in``; any other ``$or`` reports no array position (for ``$`` and ``.$``)."""
    if len(clauses) == 1:
        return True
    paths: set[str] = set()
    for clause in clauses:
        if not isinstance(clause, Mapping) or len(clause) != 1:
            return False
        ((path, value),) = clause.items()
        if path.startswith("$"):
            return False
        if isinstance(value, Mapping) and value and _is_operator_dict(value):
            if set(value) != {"$eq"}:
                return False
            value = value["$eq"]
        if _is_regex(value):
            return False
        paths.add(path)
    return len(paths) == 1


class _Nor(_Node):
    def __init__(self, children: list[_Node]) -> None:
        self.children = children

    def eval(self, doc: Any) -> int:
        for child in self.children:
            if child.eval(doc) != NO_MATCH:
                return NO_MATCH
        return MATCH


class _Const(_Node):
    def __init__(self, value: bool) -> None:
        self.value = value

    def eval(self, doc: Any) -> int:
        return MATCH if self.value else NO_MATCH


_OPTIONS: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("matcher_options")


class _Expr(_Node):
    """``$expr``: an aggregation expression, true when its value is truthy."""

    def __init__(self, expr: Any) -> None:
        from node.engine.expressions import Scope, compile_expression
        opts = _OPTIONS.get({})
        variables = opts.get("variables") or {}
        self.variables = variables
        self.fn = compile_expression(expr, Scope(list(variables), now=opts.get("now"),
                                                 allow_rand=opts.get("allow_rand", True)))

    def eval(self, doc: Any) -> int:
        from node.engine.expressions import Vars, truthy
        return MATCH if truthy(self.fn(Vars(doc, self.variables))) else NO_MATCH


class _Schema(_Node):
    def __init__(self, schema: Any) -> None:
        self.schema = schema

    def eval(self, doc: Any) -> int:
        return MATCH if self.schema.valid(doc) else NO_MATCH


def _compile_logical(arg: Any, geo_out: list[tuple[str, Any]], depth: int) -> list[_Node]:
    if not isinstance(arg, list | tuple) or not arg:
        raise bad_value("$and/$or/$nor must be a nonempty array")
    children: list[_Node] = []
    for entry in arg:
        if not isinstance(entry, Mapping):
            raise bad_value("$or/$and/$nor entries need to be full objects")
        children.append(_compile_query(entry, geo_out, _deeper(depth, entry)))
    return children


def _compile_query(query: Mapping[str, Any], geo_out: list[tuple[str, Any]], depth: int = 0
                   ) -> _Node:
    children: list[_Node] = []
    for name, arg in query.items():
        if not isinstance(name, str):
            raise bad_value(f"field names must be strings, got {name!r}")
        if name.startswith("$"):
            if name in ("$and", "$or", "$nor"):
                subs = _compile_logical(arg, geo_out, depth)
                if name == "$and":
                    children.append(_And(subs))
                elif name == "$or":
                    children.append(_Or(subs, _or_keeps_position(arg)))
                else:
                    children.append(_Nor(subs))
            elif name == "$comment":
                continue
            elif name in ("$alwaysTrue", "$alwaysFalse"):
                if arg != 1:
                    raise bad_value(f"{name} must be an integer value of 1")
                children.append(_Const(name == "$alwaysTrue"))
            elif name == "$expr":
                children.append(_Expr(arg))
            elif name == "$jsonSchema":
                from node.engine.jsonschema import compile_schema
                children.append(_Schema(compile_schema(arg)))
            elif name == "$where":
                raise bad_value("$where is not allowed: JavaScript is not supported, use $expr "
                                "instead")
            elif name == "$text":
                raise bad_value(f"{name} is not supported")
            else:
                raise bad_value(f"unknown top level operator: {name}")
            continue
        if isinstance(arg, Mapping) and arg and _is_operator_dict(arg):
            op = _compile_operators(arg, depth, name)
            if isinstance(op, _Geo):
                geo_out.append((name, op.query))
        else:
            op = _compile_equality(arg)
        children.append(_Field(split_path(name), op))
    if len(children) == 1:
        return children[0]
    return _And(children)


class Matcher:
    """A compiled query document.

    ``Matcher(query)`` raises MongoError (BadValue) for malformed queries; ``matches(doc)`` tests
    a document; ``match_position(doc)`` also gives the index of the first matched element of the
    array the query traversed (``None`` when no array was involved), for the positional ``$``.
    """

    __slots__ = ("_root", "geo", "query")

    def __init__(self, query: Mapping[str, Any] | None = None, *,
                 variables: Mapping[str, Any] | None = None, now: Any = None,
                 allow_rand: bool = True) -> None:
        """``variables`` (``$$name`` values), ``now`` (``$$NOW``) and ``allow_rand`` are for
        ``$expr``."""
        if query is None:
            query = {}
        if not isinstance(query, Mapping):
            raise bad_value("query filter must be an object")
        self.query = query
        self.geo: list[tuple[str, Any]] = []
        """``(path, geo.GeoQuery)`` for each geo predicate (the planner sorts by ``$near``)."""
        token = _OPTIONS.set({"variables": variables, "now": now, "allow_rand": allow_rand})
        try:
            self._root = _compile_query(query, self.geo)
        finally:
            _OPTIONS.reset(token)

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """Whether ``doc`` satisfies the query."""
        return self._root.eval(doc) != NO_MATCH

    def match_position(self, doc: Mapping[str, Any]) -> tuple[bool, int | None]:
        """``(matched, position of the first matched array element or None)``."""
        r = self._root.eval(doc)
        if r == NO_MATCH:
            return False, None
        return True, (r if r >= 0 else None)

    def __repr__(self) -> str:
        return f"Matcher({self.query!r})"


def matches(query: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    """One-shot convenience: ``Matcher(query).matches(doc)``."""
    return Matcher(query).matches(doc)


__all__ = ["Matcher", "MongoError", "compile_regex", "matches"]

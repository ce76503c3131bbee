"""The projection language: which fields of a document a read returns, and what it computes.

Follows MongoDB 8's projection parser, for ``find`` (and ``findAndModify``'s ``fields``) and,
with ``aggregate=True``, for the ``$project`` stage (no find-only operators: ``$slice`` is the
aggregation one, ``$elemMatch`` and ``.$`` are refused, an empty projection too):

* inclusion (``{a: 1, "b.c": 1}``) keeps only the named paths, in document order; exclusion
  (``{a: 0}``) removes them; the two cannot be mixed except for ``_id``, which is returned unless
  ``_id: 0``. Dotted paths reach into embedded documents and into arrays of documents; nested
  projection documents (``{a: {b: 1}}``) mean the same as dotted paths.
* any other value is an aggregation expression (:mod:`node.engine.expressions`) evaluated on the
  whole document: ``{x: "$y"}``, ``{x: {$concat: [...]}}``, ``{x: {$literal: 1}}``, ``{x: "s"}``,
  ``$$ROOT``, ``$$NOW`` (one value per projection). A computed field makes the projection an
  inclusion; it replaces an included field in place and is otherwise added after the included
  fields, in specification order; under an array it is set in each element.
* ``{field: {$slice: n}}`` / ``{$slice: [skip, limit]}`` returns part of an array (and by itself
  does not make the projection an inclusion); any other ``$slice`` argument is read as the
  aggregation ``$slice`` (a computed field), as MongoDB does.
* ``{field: {$elemMatch: query}}`` returns the first matching element as a one-element array
  (top-level fields only; computed like an expression, so after the included fields).
* ``{"path.$": 1}`` returns the element of the array at ``path`` that the *query* matched, using
  :meth:`Matcher.match_position`.

Malformed projections raise MongoError with MongoDB's codes and messages when compiled;
expressions fail (28724 and the like) only when a document is projected. ``Projection(spec)``
compiles once; ``apply(doc, position)`` returns a new document (values not copied deeply).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from node.engine.errors import MongoError, bad_value, location
from node.engine.expressions import (
    ENTRY_NOW,
    Fn,
    Scope,
    Vars,
    compile_expression,
    is_expression_name,
)
from node.engine.matcher import Matcher
from node.engine.values import MISSING, is_nan, is_number, number_value, type_name

INCLUDE = "include"
EXCLUDE = "exclude"

ProjectionSpec = Mapping[str, Any] | Sequence[str]


class _Slice:
    __slots__ = ("limit", "skip")

    def __init__(self, skip: int | None, limit: int) -> None:
        self.skip = skip
        self.limit = limit

    def apply(self, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        value = list(value)
        if self.skip is None:
            n = self.limit
            return value[:n] if n >= 0 else value[max(len(value) + n, 0) :]
        start = self.skip if self.skip >= 0 else max(len(value) + self.skip, 0)
        return value[start : start + self.limit]


class _Positional:
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


class _Computed:
    """A field whose value is computed from the whole document (an expression, ``$elemMatch``)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Fn) -> None:
        self.fn = fn


class _Tree(dict[str, Any]):
    """One level of a projection: name -> leaf (INCLUDE, EXCLUDE, _Slice, _Positional,
    _Computed) or sub-tree. ``computed`` (set by :func:`_seal`): the names, in specification
    order, that are computed or hold computed fields below."""

    __slots__ = ("computed",)

    def __init__(self) -> None:
        super().__init__()
        self.computed: list[str] = []


def _seal(tree: _Tree) -> bool:
    """Fill in ``computed`` through the tree; True when ``tree`` computes anything."""
    tree.computed = []
    for name, node in tree.items():
        if isinstance(node, _Computed) or (isinstance(node, _Tree) and _seal(node)):
            tree.computed.append(name)
    return bool(tree.computed)


def _as_int(value: Any) -> int:
    """MongoDB's ``numberInt``: NaN is 0, infinities saturate."""
    if is_nan(value):
        return 0
    n = number_value(value)
    if n in (float("inf"), float("-inf")):
        return 2**31 - 1 if n > 0 else -(2**31)
    return max(-(2**31), min(2**31 - 1, int(n)))


def _parse_slice(arg: Any) -> _Slice:
    """The find() ``$slice`` (MongoDB then tries the aggregation ``$slice`` if this fails)."""
    if is_number(arg):
        return _Slice(None, _as_int(arg))
    if not isinstance(arg, list | tuple):
        raise location(31273, "$slice only supports numbers and [skip, limit] arrays")
    if len(arg) != 2:
        raise location(31272, "$slice array argument should be of form [skip, limit]")
    if not is_number(arg[0]):
        raise location(31257, "$slice expects the skip argument to be a number, got "
                       f"{type_name(arg[0])}")
    if not is_number(arg[1]):
        raise location(31258, "$slice expects the limit argument to be a number, got "
                       f"{type_name(arg[1])}")
    limit = _as_int(arg[1])
    if limit <= 0:
        raise location(31259, f"$slice limit must be positive, got {limit}")
    return _Slice(_as_int(arg[0]), limit)


def _is_flag(value: Any) -> bool:
    """Booleans and numbers include or exclude; anything else is an expression."""
    return isinstance(value, bool) or is_number(value)


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return bool(number_value(value)) or is_nan(value)


def _check_path(path: str) -> list[str]:
    """MongoDB's FieldPath rules for a projection path."""
    if path == "":
        raise location(40352, "FieldPath cannot be constructed with empty string")
    parts = path.split(".")
    for part in parts:
        if part == "":
            raise location(15998, "FieldPath field names may not be empty strings.")
        if part.startswith("$"):
            raise location(16410, f"FieldPath field names may not start with '$'. Given: {path}")
    return parts


def _query_now() -> datetime.datetime:
    """``$$NOW`` of one projection: the log entry's time when applying one, else now (ms)."""
    now = ENTRY_NOW.get()
    if now is not None:
        return now
    now = datetime.datetime.now(datetime.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Projection:
    """A compiled projection specification."""

    __slots__ = (
        "_aggregate",
        "_has_elem_match",
        "_has_slice",
        "_id_excluded",
        "_id_included",
        "_mode",
        "_now",
        "_scope_",
        "_tree",
        "_variables",
        "inclusion",
        "needs_position",
        "spec",
    )

    def __init__(self, spec: ProjectionSpec | None, *,
                 variables: Mapping[str, Any] | None = None,
                 now: datetime.datetime | None = None, aggregate: bool = False) -> None:
        if spec is None:
            spec = {}
        if isinstance(spec, list | tuple):
            spec = {str(name): 1 for name in spec}
        if not isinstance(spec, Mapping):
            raise bad_value("projection must be an object")
        if aggregate and not spec:
            raise location(51272, "projection specification must have at least one field")
        self._aggregate = aggregate
        self.spec: Mapping[str, Any] = spec
        self._variables = dict(variables or {})
        self._now = now
        self._scope_: Scope | None = None
        self._tree = _Tree()
        self._mode: str | None = None
        self._has_slice = self._has_elem_match = False
        self._id_included = self._id_excluded = False
        self.needs_position = False
        """True when the projection has a positional ``.$`` (call ``Matcher.match_position``)."""
        id_specified = False
        for name, value in spec.items():
            if not isinstance(name, str):
                raise bad_value(f"projection field names must be strings, got {name!r}")
            id_specified |= name == "_id" or name.startswith("_id.")
            self._element(name, value, self._tree)
        self.inclusion = self._projection_type() == INCLUDE
        """True for an inclusion projection (only named fields returned)."""
        if not id_specified and self.inclusion:
            self._tree["_id"] = INCLUDE
        if not self.inclusion and self._id_included:
            del self._tree["_id"]  # {_id: 1} in an exclusion: legal, and changes nothing
        _seal(self._tree)

    @property
    def _scope(self) -> Scope:
        """The expressions' scope, made when the first one is compiled."""
        if self._scope_ is None:
            self._scope_ = Scope(list(self._variables), now=self._now or _query_now())
        return self._scope_

    def _projection_type(self) -> str:
        """MongoDB's type of a projection without inclusions or exclusions of other fields."""
        if self._mode is not None:
            return self._mode
        if self._has_slice:
            return INCLUDE if self._id_included else EXCLUDE
        return INCLUDE if self._has_elem_match or self._id_included else EXCLUDE

    # --- parsing ---------------------------------------------------------------------------------

    def _element(self, name: str, value: Any, parent: _Tree) -> None:
        positional = name.endswith(".$")
        if positional and self._aggregate:
            raise location(31324, "Cannot use positional projection in aggregation projection")
        if ".$." in name:
            raise location(
                31394,
                "As of 4.4, it's illegal to specify positional operator in the middle of a path."
                "Positional projection may only be used at the end, for example: a.b.$. If the "
                "query previously used a form like a.b.$.d, remove the parts following the '$' "
                "and the results will be equivalent.",
            )
        if isinstance(value, Mapping):
            if positional:
                raise location(31271, "positional projection cannot be used with an expression "
                               "or sub object")
            self._sub_object(name, value, parent)
        elif _is_flag(value):
            if _truthy(value):
                self._inclusion(name, parent, positional)
            elif positional:
                raise location(31395, "positional projection cannot be used with exclusion")
            else:
                self._exclusion(name, parent)
        elif positional:
            raise location(31308, "positional projection cannot be used with a literal")
        else:
            self._literal(name, value, parent)

    def _inclusion(self, name: str, parent: _Tree, positional: bool) -> None:
        top_id = name == "_id" and parent is self._tree
        if not positional:
            self._add(parent, name, INCLUDE)
            self._id_included |= top_id
        else:
            if self.needs_position:
                raise location(31276, "Cannot specify more than one positional projection per "
                               "query.")
            if self._has_elem_match:
                raise location(31256, "Cannot specify positional operator and $elemMatch.")
            path = name[:-2]
            self._add(parent, path, _Positional(path))
            self.needs_position = True
        if not top_id:
            self._set_mode(INCLUDE, name)

    def _exclusion(self, name: str, parent: _Tree) -> None:
        self._add(parent, name, EXCLUDE)
        if name == "_id" and parent is self._tree:
            self._id_excluded = True
        else:
            self._set_mode(EXCLUDE, name)

    def _literal(self, name: str, value: Any, parent: _Tree) -> None:
        """``{x: "$y"}``, ``{x: "text"}``, ``{x: [..]}``, ``{x: null}``: an expression."""
        fn = compile_expression(value, self._scope)
        self._add(parent, name, _Computed(fn))
        if self._mode == EXCLUDE:
            raise location(31310, f"Cannot use an expression {name}: {value!r} in an exclusion "
                           "projection")
        self._mode = INCLUDE

    def _sub_object(self, name: str, obj: Mapping[str, Any], parent: _Tree) -> None:
        if not obj:
            raise location(51270, "An empty sub-projection is not a valid value. Found empty "
                           "object at path")
        first = next(iter(obj))
        if len(obj) == 1 and isinstance(first, str) and first.startswith("$"):
            if self._find_operator(name, first, obj[first], parent):
                return
            raise location(31325, f"Unknown expression {first}")
        node = self._inner_node(parent, name)
        for key, value in obj.items():
            if not isinstance(key, str):
                raise bad_value(f"projection field names must be strings, got {key!r}")
            self._element(key, value, node)

    def _find_operator(self, name: str, op: str, arg: Any, parent: _Tree) -> bool:
        """``{name: {op: arg}}`` as a find-only operator or an expression; False if neither."""
        if self._aggregate and op == "$elemMatch":
            raise MongoError(168, "Cannot use $elemMatch in this context",
                             code_name="InvalidPipelineOperator")
        if self._aggregate and op in ("$slice", "$meta"):
            self._expression(name, {op: arg}, parent)
        elif op == "$slice":
            self._slice(name, arg, parent)
        elif op == "$elemMatch":
            self._elem_match(name, arg, parent)
        elif op == "$meta":
            raise bad_value(f"$meta projection ({arg!r}) is not supported")
        elif is_expression_name(op):
            self._expression(name, {op: arg}, parent)
        else:
            return False
        return True

    def _expression(self, name: str, expr: Mapping[str, Any], parent: _Tree) -> None:
        if self._mode == EXCLUDE:
            raise location(31252, "Cannot use expression other than $meta in exclusion "
                           "projection")
        self._mode = INCLUDE
        self._add(parent, name, _Computed(compile_expression(expr, self._scope)))

    def _slice(self, name: str, arg: Any, parent: _Tree) -> None:
        try:
            self._add(parent, name, _parse_slice(arg))
            self._has_slice = True
            return
        except MongoError as exc:
            find_error = exc
        try:
            self._expression(name, {"$slice": arg}, parent)
        except MongoError as exc:
            raise MongoError(
                exc.code,
                f"Invalid $slice syntax. The given syntax {{ $slice: {arg!r} }} did not match "
                f"the find() syntax because :: {find_error.code_name}: {find_error.errmsg} :: "
                "The given syntax did not match the expression $slice syntax. :: caused by :: "
                f"{exc.errmsg}",
                code_name=exc.code_name,
            ) from exc

    def _elem_match(self, name: str, arg: Any, parent: _Tree) -> None:
        if not isinstance(arg, Mapping):
            raise location(31274, "elemMatch: Invalid argument, object required, but got "
                           f"{type_name(arg)}")
        if self.needs_position:
            raise location(31255, "Cannot specify positional operator and $elemMatch.")
        if "." in name or parent is not self._tree:
            raise location(31275, "Cannot use $elemMatch projection on a nested field.")
        matcher = Matcher({name: {"$elemMatch": arg}})

        def first_match(v: Vars) -> Any:
            value = v.values["ROOT"].get(name, MISSING)
            if isinstance(value, list | tuple):
                matched, pos = matcher.match_position({name: value})
                if matched and pos is not None:
                    return [value[pos]]
            return MISSING

        self._set_mode(INCLUDE, name)
        self._add(parent, name, _Computed(first_match))
        self._has_elem_match = True

    def _set_mode(self, kind: str, path: str) -> None:
        if self._mode is not None and self._mode != kind:
            if kind == EXCLUDE:
                raise location(31254, f"Cannot do exclusion on field {path} in inclusion "
                               "projection")
            raise location(31253, f"Cannot do inclusion on field {path} in exclusion projection")
        self._mode = kind

    @staticmethod
    def _add(parent: _Tree, name: str, leaf: Any) -> None:
        """Put ``leaf`` at the dotted ``name`` under ``parent`` (31249/31250 on a collision)."""
        parts = _check_path(name)
        node = parent
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = _Tree()
            elif not isinstance(child, _Tree):
                raise location(31249, f"Path collision at {name} remaining portion "
                               f"{'.'.join(parts[1:])}")
            node = child
        if parts[-1] in node:
            raise location(31250, f"Path collision at {name}")
        node[parts[-1]] = leaf

    def _inner_node(self, parent: _Tree, name: str) -> _Tree:
        """The sub-tree at ``name`` for a nested projection document (made if new)."""
        node: Any = parent
        for part in _check_path(name):
            node = node.get(part)
            if not isinstance(node, _Tree):
                node = _Tree()
                self._add(parent, name, node)
                return node
        return node  # type: ignore[no-any-return]

    # --- application ----------------------------------------------------------------------------

    def apply(self, doc: Mapping[str, Any], position: int | None = None) -> dict[str, Any]:
        """The projected document; ``position`` is the query's matched array index (for ``.$``)."""
        tree = self._tree
        if not tree:
            return dict(doc)
        if self.inclusion:
            variables = Vars(doc, self._variables) if tree.computed else None
            return _include_doc(doc, tree, position, variables)
        return _exclude_doc(doc, tree)


_APPLIED = -1
"""``position`` once ``.$`` has selected its element: deeper arrays are kept whole."""


def _positional_element(array: Sequence[Any], position: int | None) -> Any:
    if position is None or not 0 <= position < len(array):
        raise location(
            51246,
            "Executor error during find command :: caused by :: positional operator "
            "'.$' couldn't find a matching element in the array",
        )
    return array[position]


def _has_positional(tree: _Tree) -> bool:
    return any(
        isinstance(node, _Positional) or (isinstance(node, dict) and _has_positional(node))
        for node in tree.values()
    )


def _leaf_value(leaf: Any, value: Any, position: int | None) -> Any:
    if isinstance(leaf, _Slice):
        return leaf.apply(value)
    if isinstance(leaf, _Positional):
        if not isinstance(value, list | tuple) or position == _APPLIED:
            return value
        return [_positional_element(value, position)]
    return value


def _include_doc(doc: Mapping[str, Any], tree: _Tree, position: int | None,
                 variables: Vars | None) -> dict[str, Any]:
    """The included fields of ``doc`` (document order), then the computed ones."""
    out: dict[str, Any] = {}
    for name, value in doc.items():
        node = tree.get(name)
        if node is None or node is EXCLUDE or isinstance(node, _Computed):
            continue
        if not isinstance(node, _Tree):
            out[name] = _leaf_value(node, value, position)
            continue
        sub = _include_value(value, node, position, variables)
        if sub is not MISSING:
            out[name] = sub
    for name in tree.computed:
        node = tree[name]
        if isinstance(node, _Computed):
            computed = node.fn(variables)  # type: ignore[arg-type]
            if computed is MISSING:
                out.pop(name, None)
            else:
                out[name] = computed
        elif name not in out:  # nothing there (or not a document): only its computed fields
            out[name] = _include_doc({}, node, position, variables)
    return out


def _include_value(value: Any, tree: _Tree, position: int | None, variables: Vars | None
                   ) -> Any:
    if isinstance(value, Mapping):
        return _include_doc(value, tree, position, variables)
    if isinstance(value, list | tuple):
        if position != _APPLIED and _has_positional(tree):
            # '.$' selects from the first array on its path, whatever lies below
            element = _positional_element(value, position)
            return _include_array([element], tree, _APPLIED, variables)
        return _include_array(value, tree, position, variables)
    return MISSING


def _include_array(array: Sequence[Any], tree: _Tree, position: int | None,
                   variables: Vars | None) -> list[Any]:
    """Each element projected; scalars are dropped, or replaced by the computed fields."""
    out: list[Any] = []
    for element in array:
        if isinstance(element, Mapping | list | tuple):
            out.append(_include_value(element, tree, position, variables))
        elif tree.computed:
            out.append(_include_doc({}, tree, position, variables))
    return out


def _exclude_doc(doc: Mapping[str, Any], tree: _Tree) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in doc.items():
        node = tree.get(name)
        if node is None:
            out[name] = value
        elif isinstance(node, dict):
            if isinstance(value, Mapping):
                out[name] = _exclude_doc(value, node)
            elif isinstance(value, list | tuple):
                out[name] = _exclude_array(value, node)
            else:
                out[name] = value
        elif node != EXCLUDE:
            out[name] = _leaf_value(node, value, None)
    return out


def _exclude_array(array: Sequence[Any], tree: _Tree) -> list[Any]:
    out: list[Any] = []
    for element in array:
        if isinstance(element, Mapping):
            out.append(_exclude_doc(element, tree))
        elif isinstance(element, list | tuple):
            out.append(_exclude_array(element, tree))
        else:
            out.append(element)
    return out


def project(
    doc: Mapping[str, Any], spec: ProjectionSpec | Projection | None, position: int | None = None
) -> dict[str, Any]:
    """One-shot convenience: ``Projection(spec).apply(doc, position)``."""
    projection = spec if isinstance(spec, Projection) else Projection(spec)
    return projection.apply(doc, position)

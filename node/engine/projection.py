"""The projection language: which fields of a document a read returns.

Follows MongoDB's ``find`` projection (4.4 semantics, without aggregation expressions):

* inclusion (``{a: 1, "b.c": 1}``) keeps only the named paths, in document order; exclusion
  (``{a: 0}``) removes them; the two cannot be mixed except for ``_id``, which is returned unless
  ``_id: 0``. Dotted paths reach into embedded documents and into arrays of documents; nested
  projection documents (``{a: {b: 1}}``) mean the same as dotted paths.
* ``{field: {$slice: n}}`` / ``{$slice: [skip, limit]}`` returns part of an array (and by itself
  does not make the projection an inclusion).
* ``{field: {$elemMatch: query}}`` returns the first matching element as a one-element array
  (top-level fields only; the field comes after the other included fields).
* ``{"path.$": 1}`` returns the element of the array at ``path`` that the *query* matched, using
  :meth:`Matcher.match_position`.

Malformed projections raise MongoError with MongoDB's codes and messages. ``Projection(spec)``
compiles once; ``apply(doc, position)`` returns a new document (values not copied deeply).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from node.engine.errors import MongoError, bad_value, location
from node.engine.matcher import Matcher
from node.engine.values import is_nan, is_number, number_value, type_name

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


_Leaf = str | _Slice | _Positional
_Tree = dict[str, Any]  # name -> _Leaf | _Tree


def _as_int(value: Any) -> int:
    """MongoDB's ``numberInt``: NaN is 0, infinities saturate."""
    if is_nan(value):
        return 0
    n = number_value(value)
    if n in (float("inf"), float("-inf")):
        return 2**31 - 1 if n > 0 else -(2**31)
    return max(-(2**31), min(2**31 - 1, int(n)))


def _slice_syntax_error(arg: Any, find_error: str) -> MongoError:
    """What MongoDB 8 answers for a ``$slice`` that is not find() syntax: it then reads it as the
    aggregation ``$slice`` expression, and fails as that does (28667: wrong argument count;
    28724: a first argument that can never be an array)."""
    args = list(arg) if isinstance(arg, list | tuple) else [arg]
    if len(args) < 2 or len(args) > 3:
        return location(28667, f"Invalid $slice syntax. The given syntax {{ $slice: {arg!r} }} "
                        f"did not match the find() syntax because :: {find_error} :: The "
                        "given syntax did not match the expression $slice syntax. :: caused by "
                        ":: Expression $slice takes at least 2 arguments, and at most 3, but "
                        f"{len(args)} were passed in.")
    first = args[0]
    if isinstance(first, str) and first.startswith("$"):
        return bad_value("aggregation expressions in find projections ($slice on "
                         f"{first!r}) are not supported")
    if first is None:
        return bad_value("$slice of null in a find projection is not supported")
    return location(28724, "First argument to $slice must be an array, but is of type: "
                    f"{type_name(first)}")


def _parse_slice(arg: Any) -> _Slice:
    if is_number(arg):
        return _Slice(None, _as_int(arg))
    if isinstance(arg, list | tuple):
        if len(arg) != 2:
            raise _slice_syntax_error(arg, "Location31272: $slice array argument should be of "
                                      "form [skip, limit]")
        if not is_number(arg[0]):
            raise _slice_syntax_error(arg, "Location31257: $slice expects the skip argument "
                                      f"to be a number, got {type_name(arg[0])}")
        if not is_number(arg[1]):
            raise _slice_syntax_error(arg, "Location31258: $slice expects the limit argument "
                                      f"to be a number, got {type_name(arg[1])}")
        skip = _as_int(arg[0])
        limit = _as_int(arg[1])
        if limit <= 0:
            raise _slice_syntax_error(arg, f"Location31259: $slice limit must be positive, "
                                      f"got {limit}")
        return _Slice(skip, limit)
    raise _slice_syntax_error(arg, "Location31273: $slice only supports numbers and [skip, "
                              "limit] arrays")


def _truthy(path: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if is_number(value):
        return bool(number_value(value)) or is_nan(value)
    raise bad_value(f"Unsupported projection option: {path}: {value!r}")


def _flatten(spec: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name, value in spec.items():
        if not isinstance(name, str):
            raise bad_value(f"projection field names must be strings, got {name!r}")
        path = f"{prefix}{name}"
        if isinstance(value, Mapping) and value and not str(next(iter(value))).startswith("$"):
            out.extend(_flatten(value, path + "."))
        elif isinstance(value, Mapping) and not value:
            raise bad_value(
                f"An empty sub-projection is not a valid value. Found empty object at path {path}"
            )
        else:
            out.append((path, value))
    return out


def _check_path(path: str) -> list[str]:
    if path == "":
        raise location(40352, "FieldPath cannot be constructed with empty string")
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part == "":
            raise location(15998, "FieldPath field names may not be empty strings.")
        if part == "$" and i != len(parts) - 1:
            raise location(
                31394,
                "As of 4.4, it's illegal to specify positional operator in the middle of a path."
                "Positional projection may only be used at the end, for example: a.b.$.",
            )
        if part.startswith("$") and part != "$":
            raise location(16410, "FieldPath field names may not start with '$'.")
    if parts[0] == "$":
        raise location(16410, "FieldPath field names may not start with '$'.")
    return parts


class Projection:
    """A compiled projection specification."""

    __slots__ = (
        "_elem_matches",
        "_tree",
        "inclusion",
        "needs_position",
        "spec",
    )

    def __init__(self, spec: ProjectionSpec | None) -> None:
        if spec is None:
            spec = {}
        if isinstance(spec, list | tuple):
            spec = {str(name): 1 for name in spec}
        if not isinstance(spec, Mapping):
            raise bad_value("projection must be an object")
        self.spec: Mapping[str, Any] = spec
        self._tree: _Tree = {}
        self._elem_matches: list[tuple[str, Matcher]] = []
        self.needs_position = False
        """True when the projection has a positional ``.$`` (call ``Matcher.match_position``)."""
        mode: str | None = None
        id_value: bool | None = None
        for path, value in _flatten(spec):
            parts = _check_path(path)
            if path == "_id" and not isinstance(value, Mapping):
                id_value = _truthy(path, value)
                continue
            kind: str
            leaf: _Leaf
            if parts[-1] == "$":
                if self.needs_position:
                    raise location(
                        31276, "Cannot specify more than one positional projection per query."
                    )
                if isinstance(value, Mapping) or not _truthy(path, value):
                    raise location(31395, "positional projection cannot be used with exclusion")
                self.needs_position = True
                parts = parts[:-1]
                kind, leaf = INCLUDE, _Positional(".".join(parts))
            elif isinstance(value, Mapping):
                op, arg = next(iter(value.items()))
                if len(value) != 1:
                    raise bad_value(f"Unsupported projection option: {path}: {dict(value)!r}")
                if op == "$slice":
                    kind, leaf = "slice", _parse_slice(arg)
                elif op == "$elemMatch":
                    if len(parts) > 1:
                        raise location(31275, "Cannot use $elemMatch projection on a nested field.")
                    if not isinstance(arg, Mapping):
                        raise location(31274, "elemMatch: Invalid argument, object "
                                       f"required, but got {type_name(arg)}")
                    mode = self._set_mode(mode, INCLUDE, path)
                    self._reserve(parts)
                    self._elem_matches.append((path, Matcher({path: {"$elemMatch": arg}})))
                    continue
                elif op == "$meta":
                    raise bad_value(f"$meta projection ({arg!r}) is not supported")
                else:
                    raise bad_value(f"Unsupported projection option: {path}: {dict(value)!r}")
            else:
                kind = INCLUDE if _truthy(path, value) else EXCLUDE
                leaf = kind
            if kind != "slice":
                mode = self._set_mode(mode, kind, path)
            self._insert(parts, leaf)
        if self.needs_position and self._elem_matches:
            raise location(31255, "Cannot specify positional operator and $elemMatch.")
        if mode is None:
            # only _id and/or $slice: an exclusion projection, unless it is exactly {_id: 1}
            mode = INCLUDE if id_value is True and not self._tree else EXCLUDE
        self.inclusion = mode == INCLUDE
        """True for an inclusion projection (only named fields returned)."""
        if "_id" not in self._tree:
            if self.inclusion and id_value is not False:
                self._tree["_id"] = INCLUDE
            elif not self.inclusion and id_value is False:
                self._tree["_id"] = EXCLUDE

    @staticmethod
    def _set_mode(mode: str | None, kind: str, path: str) -> str:
        if mode is None or mode == kind:
            return kind
        if kind == EXCLUDE:
            raise location(31254, f"Cannot do exclusion on field {path} in inclusion projection")
        raise location(31253, f"Cannot do inclusion on field {path} in exclusion projection")

    def _reserve(self, parts: list[str]) -> None:
        """Claim a top-level field for ``$elemMatch`` (it collides like any other path)."""
        name = parts[0]
        if name in self._tree or any(n == name for n, _ in self._elem_matches):
            raise location(31250, f"Path collision at {name}")

    def _insert(self, parts: list[str], leaf: _Leaf) -> None:
        if any(n == parts[0] for n, _ in self._elem_matches):
            raise location(31250, f"Path collision at {'.'.join(parts)}")
        node = self._tree
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                full = ".".join(parts)
                rest = ".".join(parts[i + 1 :])
                raise location(31250, f"Path collision at {full} remaining portion {rest}")
            node = child
        if parts[-1] in node:
            raise location(31250, f"Path collision at {'.'.join(parts)}")
        node[parts[-1]] = leaf

    # --- application ----------------------------------------------------------------------------

    def apply(self, doc: Mapping[str, Any], position: int | None = None) -> dict[str, Any]:
        """The projected document; ``position`` is the query's matched array index (for ``.$``)."""
        if not self._tree and not self._elem_matches:
            return dict(doc)
        if self.inclusion:
            out = _include_doc(doc, self._tree, position)
            for name, matcher in self._elem_matches:
                value = doc.get(name)
                if isinstance(value, list | tuple):
                    matched, pos = matcher.match_position({name: value})
                    if matched and pos is not None:
                        out[name] = [value[pos]]
            return out
        return _exclude_doc(doc, self._tree)


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


def _leaf_value(leaf: _Leaf, value: Any, position: int | None) -> Any:
    if isinstance(leaf, _Slice):
        return leaf.apply(value)
    if isinstance(leaf, _Positional):
        if not isinstance(value, list | tuple) or position == _APPLIED:
            return value
        return [_positional_element(value, position)]
    return value


def _include_doc(doc: Mapping[str, Any], tree: _Tree, position: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in doc.items():
        node = tree.get(name)
        if node is None:
            continue
        if not isinstance(node, dict):
            out[name] = _leaf_value(node, value, position)
        elif isinstance(value, Mapping):
            out[name] = _include_doc(value, node, position)
        elif isinstance(value, list | tuple):
            if position != _APPLIED and _has_positional(node):
                # '.$' selects from the first array on its path, whatever lies below
                element = _positional_element(value, position)
                out[name] = _include_array([element], node, _APPLIED)
            else:
                out[name] = _include_array(value, node, position)
    return out


def _include_array(array: Sequence[Any], tree: _Tree, position: int | None) -> list[Any]:
    out: list[Any] = []
    for element in array:
        if isinstance(element, Mapping):
            out.append(_include_doc(element, tree, position))
        elif isinstance(element, list | tuple):
            out.append(_include_array(element, tree, position))
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

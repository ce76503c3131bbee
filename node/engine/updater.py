"""The update language: :class:`Update` compiles a replacement or a modifier document once and
applies it to documents; :func:`upsert_seed` builds an upsert's base document from a query.

Modifiers: ``$inc $mul $set $unset $min $max $rename $currentDate $setOnInsert $push`` (with
``$each $slice $sort $position``) ``$pushAll $addToSet`` (with ``$each``) ``$pop $pull $pullAll``.
Paths use dot notation (intermediate documents are created, numeric components address array
elements), the positional ``$`` (the array index the query matched, passed in by the caller),
``$[]`` (every element) and ``$[<identifier>]`` (the elements the update's ``arrayFilters`` entry
for that identifier matches). Overlapping paths are rejected at compile time with MongoDB's code
40 message. As in MongoDB 5.0+, modifications are applied in path order (numeric components in
numeric order, names lexicographically), so new fields appear in that order.

Deterministic: the time ``$currentDate`` writes is the caller's ``now``.
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64
from bson.regex import Regex
from bson.timestamp import Timestamp

from node.engine import bitwise
from node.engine.errors import (
    MongoError,
    bad_value,
    conflicting_update_operators,
    dollar_prefixed_field_name,
    failed_to_parse,
    immutable_field,
    invalid_options,
    location,
    path_not_viable,
    type_mismatch,
)
from node.engine.path_update import (
    ALL_POSITIONAL,
    POSITIONAL,
    check_storable,
    expand_positional,
    format_id,
    format_value,
    is_array_filter,
    is_positional_part,
    set_value,
    split_update_path,
    unset_value,
)
from node.engine.paths import array_index, lookup
from node.engine.values import MISSING, compare, hash_key, is_number, type_name, values_equal

MODIFIERS = frozenset(
    {
        "$inc",
        "$mul",
        "$set",
        "$unset",
        "$min",
        "$max",
        "$rename",
        "$currentDate",
        "$setOnInsert",
        "$push",
        "$pushAll",
        "$addToSet",
        "$pop",
        "$pull",
        "$pullAll",
        "$bit",
    }
)
NOT_SINGLE_VALUE_FIELD = 54
NOT_EXACT_VALUE_FIELD = 111
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_DECIMAL_CONTEXT = create_decimal128_context()


# --- value helpers ------------------------------------------------------------------------------

_SCALARS = frozenset({str, int, float, bool, type(None), bytes, datetime.datetime})


def clone(value: Any) -> Any:
    """A deep copy of a BSON value (documents and arrays copied, scalars shared)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {k: clone(v) for k, v in value.items()}
    if kind is list:
        return [clone(v) for v in value]
    if isinstance(value, Mapping):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [clone(v) for v in value]
    return value


def _same_bson(a: Any, b: Any) -> bool:
    """Equal value AND type, as MongoDB's binary comparison of elements."""
    return bson.encode({"v": a}) == bson.encode({"v": b})


def _number_kind(v: Any) -> int:
    """0 int32, 1 int64, 2 double, 3 decimal."""
    if isinstance(v, Decimal128):
        return 3
    if isinstance(v, float):
        return 2
    if isinstance(v, Int64) or not (_INT32_MIN <= v <= _INT32_MAX):
        return 1
    return 0


def _to_decimal(v: Any) -> decimal.Decimal:
    if isinstance(v, Decimal128):
        return v.to_decimal()
    if isinstance(v, float):
        return _DECIMAL_CONTEXT.create_decimal(format(v, ".15g"))
    return decimal.Decimal(int(v))


def arithmetic(op: str, a: Any, b: Any) -> Any:
    """``a + b`` (op ``"+"``) or ``a * b`` (``"*"``) with MongoDB's numeric type promotion.

    int32 results that overflow become int64; any double makes a double; any Decimal128 makes
    a Decimal128. An int64 result that overflows is not representable: None (MongoDB refuses
    the update rather than losing precision).
    """
    kind = max(_number_kind(a), _number_kind(b))
    if kind == 3:
        x, y = _to_decimal(a), _to_decimal(b)
        with decimal.localcontext(_DECIMAL_CONTEXT) as ctx:
            result = ctx.add(x, y) if op == "+" else ctx.multiply(x, y)
        return Decimal128(result)
    if kind == 2:
        x, y = float(_plain(a)), float(_plain(b))
        return x + y if op == "+" else x * y
    x, y = int(a), int(b)
    r = x + y if op == "+" else x * y
    if kind == 0 and _INT32_MIN <= r <= _INT32_MAX:
        return r
    if _INT64_MIN <= r <= _INT64_MAX:
        return Int64(r)
    return None


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, Int64) else v


def _zero_like(v: Any) -> Any:
    kind = _number_kind(v)
    return [0, Int64(0), 0.0, Decimal128("0")][kind]


def _is_integral(v: Any) -> bool:
    if not is_number(v):
        return False
    if isinstance(v, Decimal128):
        d = v.to_decimal()
        return d.is_finite() and d == d.to_integral_value()
    if isinstance(v, float):
        return v.is_integer()
    return True


def _millis(now: datetime.datetime) -> datetime.datetime:
    """``now`` truncated to BSON's millisecond precision."""
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# --- compiled operations ------------------------------------------------------------------------


@dataclass
class _Op:
    name: str  # modifier, or "$renameFrom"/"$renameTo"
    path: str
    parts: list[str]
    arg: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _path_order_key(parts: list[str]) -> tuple[tuple[int, int | str], ...]:
    return tuple((1, p) if array_index(p) is None else (0, int(p)) for p in parts)


class _ConflictTrie:
    """Detects overlapping update paths (one a prefix of the other), MongoDB's code 40.

    Also MongoDB's rule that an array updated through ``$[<id>]`` takes no other kind of
    component at that level (``a.$[i]`` with ``a.0``, ``a.$`` or ``a.b``: a conflict at ``a``).
    """

    _END = "\0end"

    def __init__(self) -> None:
        self._root: dict[str, Any] = {}

    def add(self, path: str, parts: list[str], *, original: list[str] | None = None) -> None:
        """Record ``path``. ``original``: ``parts`` is a path whose ``$``/``$[]``/``$[<id>]``
        were replaced by the document's indexes and ``original`` is the path as written;
        conflicts are then reported as MongoDB does when merging such paths at apply time."""
        node = self._root
        for depth, part in enumerate(parts):
            other = node.get(self._END)
            if other is not None:
                self._conflict(path, parts, depth, original, other)
            if original is None and part not in node and _mixes_array_filters(node, part):
                self._conflict(path, parts, depth, None, None)
            node = node.setdefault(part, {})
        if node:
            other = node.get(self._END) or _first_end(node)
            self._conflict(path, parts, len(parts), original, other)
        node[self._END] = original if original is not None else parts

    @staticmethod
    def _conflict(
        path: str,
        parts: list[str],
        depth: int,
        original: list[str] | None,
        other: list[str] | None,
    ) -> None:
        if original is None:
            at = ".".join(parts[:depth])
            raise conflicting_update_operators(
                f"Updating the path '{path}' would create a conflict at '{at}'"
            )
        # as MongoDB's merge of the update tree names it: a component both paths wrote the
        # same way ('b', '$[k]') stays as written, one they reach differently is the index
        assert other is not None
        shown = [original[i] if original[i] == other[i] else parts[i] for i in range(depth)]
        raise conflicting_update_operators(f"Update created a conflict at '{'.'.join(shown)}'")


def _mixes_array_filters(node: Mapping[str, Any], part: str) -> bool:
    """Whether adding ``part`` beside ``node``'s components mixes ``$[<id>]`` with a field name,
    index or ``$`` (``$[]`` beside an index stays allowed, checked when resolved)."""
    kind = is_array_filter(part)
    for key in node:
        if key == _ConflictTrie._END or is_array_filter(key) == kind:
            continue
        if (kind and part != ALL_POSITIONAL) or (not kind and key != ALL_POSITIONAL):
            return True
    return False


def _first_end(node: Mapping[str, Any]) -> list[str]:
    """The path recorded first below ``node`` (every one of them shares its prefix)."""
    found: list[str] = node.get(_ConflictTrie._END) or []
    for key, child in node.items():
        if found:
            break
        if key != _ConflictTrie._END:
            found = _first_end(child)
    return found


class _PullCondition:
    """What ``$pull`` removes: a query on sub-documents, a condition on values, or a value."""

    def __init__(self, arg: Any) -> None:
        self.arg = arg
        self.mode = "equal"
        self.matcher: Any = None
        if isinstance(arg, Mapping):
            from node.engine.matcher import Matcher

            first = next(iter(arg), None)
            if (
                first is not None
                and first.startswith("$")
                and first
                not in (
                    "$and",
                    "$or",
                    "$nor",
                    "$expr",
                    "$where",
                    "$comment",
                )
            ):
                self.mode = "wrapped"
                self.matcher = Matcher({"v": arg})
            else:
                self.mode = "object"
                self.matcher = Matcher(arg)
        elif isinstance(arg, Regex | re.Pattern):
            from node.engine.matcher import Matcher

            self.mode = "wrapped"
            self.matcher = Matcher({"v": arg})

    def removes(self, element: Any) -> bool:
        if self.mode == "equal":
            return values_equal(element, self.arg)
        if self.mode == "object":
            return isinstance(element, Mapping) and self.matcher.matches(element)
        return self.matcher.matches({"v": element})


def _check_int_arg(value: Any, what: str) -> int:
    if not _is_integral(value):
        raise bad_value(
            f"The value for {what} must be an integer value but was given type: {type_name(value)}"
        )
    return int(value.to_decimal()) if isinstance(value, Decimal128) else int(value)


def _compile_sort(spec: Any) -> Any:
    message = (
        "The $sort is invalid: use 1/-1 to sort the whole element, "
        "or {field:1/-1} to sort embedded fields"
    )
    if is_number(spec):
        if compare(spec, 1) == 0 or compare(spec, -1) == 0:
            return 1 if compare(spec, 1) == 0 else -1
        raise bad_value(message)
    if isinstance(spec, Mapping) and spec:
        fields: list[tuple[list[str], int]] = []
        for key, direction in spec.items():
            if key == "" or key.startswith(".") or key.endswith(".") or ".." in key:
                raise bad_value("The $sort field is a dotted field but has an empty part: " + key)
            if key.startswith("$"):
                raise bad_value(message)
            if not is_number(direction) or (compare(direction, 1) and compare(direction, -1)):
                raise bad_value("The $sort element value must be either 1 or -1")
            fields.append((key.split("."), 1 if compare(direction, 1) == 0 else -1))
        return fields
    raise bad_value(message)


def _compile_push(name: str, path: str, arg: Any) -> dict[str, Any]:
    """``{"each": [...], "slice": int|None, "sort": ..., "position": int|None}``."""
    if name == "$pushAll":
        if not isinstance(arg, list):
            raise bad_value(
                f"$pushAll requires an array of values but was given type: {type_name(arg)}"
            )
        return {"each": arg, "slice": None, "sort": None, "position": None}
    if not (isinstance(arg, Mapping) and "$each" in arg):
        return {"each": [arg], "slice": None, "sort": None, "position": None}
    out: dict[str, Any] = {"each": None, "slice": None, "sort": None, "position": None}
    for key, value in arg.items():
        if key == "$each":
            if not isinstance(value, list):
                raise bad_value(
                    f"The argument to $each in {name} must be an array but it was of type: "
                    f"{type_name(value)}"
                )
            out["each"] = value
        elif name == "$addToSet":
            raise bad_value(
                f"Found unexpected fields after $each in $addToSet: {format_value(arg)}"
            )
        elif key == "$slice":
            out["slice"] = _check_int_arg(value, "$slice")
        elif key == "$position":
            if not _is_integral(value):
                raise bad_value(
                    "The value for $position must be an integer value, not of type: "
                    f"{type_name(value)}"
                )
            out["position"] = _check_int_arg(value, "$position")
        elif key == "$sort":
            out["sort"] = _compile_sort(value)
        else:
            raise bad_value(f"Unrecognized clause in $push: {key}")
    return out


def _compile_current_date(path: str, arg: Any) -> str:
    if isinstance(arg, bool):
        return "date"
    if isinstance(arg, Mapping):
        kind = arg.get("$type")
        if len(arg) == 1 and kind in ("date", "timestamp"):
            return str(kind)
        raise bad_value(
            "The '$type' string field is required to be 'date' or 'timestamp': "
            "{$currentDate: {field : {$type: 'date'}}}"
        )
    raise bad_value(
        f"{type_name(arg)} is not valid type for $currentDate. Please use a boolean ('true') or "
        "a $type expression ({$type: 'timestamp/date'})."
    )


# --- array filters ($[<identifier>]) ------------------------------------------------------------

_IDENTIFIER = re.compile(r"[a-z][a-zA-Z0-9]*")


class ArrayFilter:
    """One element of an update's ``arrayFilters``: a query on the identifier, compiled once.

    An array element is tested as the value of a field named by the identifier (as MongoDB
    does), so ``{x: {$gte: 100}}`` tests the element itself and ``{"x.grade": {$gte: 85}}``
    tests a field of a document element.
    """

    __slots__ = ("identifier", "matcher")

    def __init__(self, identifier: str, matcher: Any) -> None:
        self.identifier = identifier
        self.matcher = matcher

    def __call__(self, element: Any) -> bool:
        return bool(self.matcher.matches({self.identifier: element}))


def compile_array_filters(filters: Any) -> dict[str, ArrayFilter]:
    """``arrayFilters`` compiled by identifier, validated with MongoDB's errors: TypeMismatch
    (14) for a non-array or a non-document element, the query's own error (prefixed "Error
    parsing array filter"), FailedToParse (9) for several or no top-level names and repeated
    identifiers, BadValue (2) for an identifier that is not a lowercase-led alphanumeric."""
    if filters is None:
        return {}
    if not isinstance(filters, list | tuple):
        raise type_mismatch(f"arrayFilters must be an array, not {type_name(filters)}")
    from node.engine.matcher import Matcher

    compiled: dict[str, ArrayFilter] = {}
    for i, raw in enumerate(filters):
        if not isinstance(raw, Mapping):
            raise type_mismatch(f"arrayFilters.{i} must be an object, not {type_name(raw)}")
        try:
            matcher = Matcher(raw)
            identifier = _filter_identifier(raw)
        except MongoError as exc:
            raise MongoError(
                exc.code,
                f"Error parsing array filter :: caused by :: {exc.errmsg}",
                code_name=exc.code_name,
            ) from None
        if identifier is None:
            raise failed_to_parse(
                "Cannot use an expression without a top-level field name in arrayFilters"
            )
        if not _IDENTIFIER.fullmatch(identifier):
            raise bad_value(
                "Error parsing array filter :: caused by :: The top-level field name must be an "
                f"alphanumeric string beginning with a lowercase letter, found '{identifier}'"
            )
        if identifier in compiled:
            raise failed_to_parse(
                f"Found multiple array filters with the same top-level field name {identifier}"
            )
        compiled[identifier] = ArrayFilter(identifier, matcher)
    return compiled


def _filter_identifier(query: Mapping[str, Any]) -> str | None:
    """The one top-level field name (before any dot) of a filter, looking through ``$and``,
    ``$or`` and ``$nor``; None when it has none. Two different names: FailedToParse (9)."""
    found: str | None = None
    for key, value in query.items():
        if key in ("$and", "$or", "$nor"):
            names = [_filter_identifier(clause) for clause in value]
        elif key.startswith("$"):
            continue
        else:
            names = [key.split(".", 1)[0]]
        for name in names:
            if name is None:
                continue
            if found is None:
                found = name
            elif name != found:
                raise failed_to_parse(
                    f"Expected a single top-level field name, found '{found}' and '{name}'"
                )
    return found


# --- the compiled update ------------------------------------------------------------------------


class Update:
    """A compiled update: a replacement document or a set of modifiers.

    ``Update(spec)`` validates everything that can be checked without a document (unknown
    modifiers, malformed arguments, conflicting paths) and raises :class:`MongoError`.
    """

    def __new__(cls, spec: Any, array_filters: Any = None, constants: Any = None) -> Any:
        """A list is a pipeline-style update (:mod:`node.engine.pipeline_update`)."""
        if isinstance(spec, list):
            from node.engine.pipeline_update import PipelineUpdate
            if array_filters:
                raise invalid_options("arrayFilters may not be specified for pipeline-style "
                                      "updates")
            return PipelineUpdate(spec, constants)
        return super().__new__(cls)

    def __init__(
        self, spec: Mapping[str, Any], array_filters: list[Mapping[str, Any]] | None = None,
        constants: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(spec, Mapping):
            raise failed_to_parse(
                "Update argument must be either an object or an array (pipeline updates are "
                "not supported)"
            )
        self.spec = spec
        first = next(iter(spec), None)
        self.is_replacement = first is None or not first.startswith("$")
        self._ops: list[_Op] = []
        self._renames: list[tuple[list[str], str, list[str], str]] = []
        self.replacement: dict[str, Any] | None = None
        self._positional = False
        self._filters = compile_array_filters(array_filters)
        if self.is_replacement:
            if self._filters:
                raise invalid_options(
                    "arrayFilters may not be specified for replacement-style updates"
                )
            self._compile_replacement(spec)
        else:
            self._compile_modifiers(spec)

    # -- compilation ----------------------------------------------------------------------------
    def _compile_replacement(self, spec: Mapping[str, Any]) -> None:
        for key in spec:
            if key.startswith("$"):
                raise dollar_prefixed_field_name(
                    f"The dollar ($) prefixed field '{key}' in '{key}' is not allowed in the "
                    "context of an update's replacement document. Consider using an aggregation "
                    "pipeline with $replaceWith."
                )
        check_storable(spec)
        self.replacement = clone(spec)

    def _compile_modifiers(self, spec: Mapping[str, Any]) -> None:
        trie = _ConflictTrie()
        used: set[str] = set()
        for name, fields in spec.items():
            if name not in MODIFIERS:
                raise failed_to_parse(
                    f"Unknown modifier: {name}. Expected a valid update modifier or "
                    "pipeline-style update specified as an array"
                )
            if not isinstance(fields, Mapping):
                raise failed_to_parse(
                    f"Modifiers operate on fields but we found type {type_name(fields)} instead. "
                    f"For example: {{$mod: {{<field>: ...}}}} not {{{name}: {format_value(fields)}}}"
                )
            for path, arg in fields.items():
                parts = split_update_path(path)
                if name == "$rename":
                    self._compile_rename(trie, path, parts, arg)
                    continue
                if parts.count(POSITIONAL) > 1:
                    raise bad_value(
                        f"Too many positional (i.e. '$') elements found in path '{path}'"
                    )
                if parts[0] == POSITIONAL:
                    raise bad_value(
                        "Cannot have positional (i.e. '$') element in the first position in "
                        f"path '{path}'"
                    )
                if is_array_filter(parts[0]):
                    raise bad_value(
                        "Cannot have array filter identifier (i.e. '$[<id>]') element in the "
                        f"first position in path '{path}'"
                    )
                if parts[0].startswith("$"):
                    raise dollar_prefixed_field_name(
                        f"The dollar ($) prefixed field '{parts[0]}' in '{path}' is not valid "
                        "for storage."
                    )
                for part in parts:
                    identifier = part[2:-1] if is_array_filter(part) else ""
                    if identifier and identifier not in self._filters:
                        raise bad_value(
                            f"No array filter found for identifier '{identifier}' in path '{path}'"
                        )
                    if identifier:
                        used.add(identifier)
                trie.add(path, parts)
                self._ops.append(self._compile_op(name, path, parts, arg))
        for identifier in sorted(self._filters):
            if identifier not in used:
                raise failed_to_parse(
                    f"The array filter for identifier '{identifier}' was not used in the update "
                    f"{format_value(spec)}"
                )
        self._ops.sort(key=lambda op: _path_order_key(op.parts))
        self._positional = any(is_positional_part(p) for op in self._ops for p in op.parts)

    def _compile_op(self, name: str, path: str, parts: list[str], arg: Any) -> _Op:
        op = _Op(name, path, parts, arg)
        if name in ("$inc", "$mul"):
            if not is_number(arg):
                verb = "increment" if name == "$inc" else "multiply"
                raise type_mismatch(
                    f"Cannot {verb} with non-numeric argument: {{{path}: {format_value(arg)}}}"
                )
        elif name in ("$set", "$setOnInsert", "$min", "$max"):
            op.arg = clone(arg)
        elif name == "$currentDate":
            op.arg = _compile_current_date(path, arg)
        elif name in ("$push", "$pushAll", "$addToSet"):
            op.extra = _compile_push(name, path, arg)
        elif name == "$pop":
            if not is_number(arg):
                raise failed_to_parse(f"Expected a number in: {path}: {format_value(arg)}")
            if compare(arg, 1) and compare(arg, -1):
                raise failed_to_parse(f"$pop expects 1 or -1, found: {format_value(arg)}")
            op.arg = 1 if compare(arg, 1) == 0 else -1
        elif name == "$pull":
            op.extra["cond"] = _PullCondition(arg)
        elif name == "$bit":
            op.extra["bit"] = bitwise.compile_bit(arg)
        elif name == "$pullAll" and not isinstance(arg, list):
            raise bad_value(f"$pullAll requires an array argument but was given a {type_name(arg)}")
        return op

    def _compile_rename(self, trie: _ConflictTrie, path: str, parts: list[str], arg: Any) -> None:
        if not isinstance(arg, str):
            raise bad_value(
                f"The 'to' field for $rename must be a string: {path}: {format_value(arg)}"
            )
        if any(p.startswith("$") for p in parts):
            raise bad_value(f"The source field for $rename may not be dynamic: {path}")
        to_parts = split_update_path(arg)
        if any(p.startswith("$") for p in to_parts):
            raise bad_value(f"The destination field for $rename may not be dynamic: {arg}")
        if path == arg:
            raise bad_value(f'The source and target field for $rename must differ: {path}: "{arg}"')
        shorter = min(len(parts), len(to_parts))
        if parts[:shorter] == to_parts[:shorter]:
            raise bad_value(
                f"The source and target field for $rename must not be on the same path: "
                f'{path}: "{arg}"'
            )
        trie.add(path, parts)
        trie.add(arg, to_parts)
        self._renames.append((parts, path, to_parts, arg))
        self._ops.append(_Op("$renameFrom", path, parts))
        self._ops.append(_Op("$renameTo", arg, to_parts, extra={"from": path}))

    # -- application ----------------------------------------------------------------------------
    @property
    def uses_positional(self) -> bool:
        """True when some path uses the positional ``$`` (needs the query's match position)."""
        return any(POSITIONAL in op.parts for op in self._ops)

    def apply(
        self,
        doc: Mapping[str, Any],
        *,
        position: int | None = None,
        is_insert: bool = False,
        now: datetime.datetime | None = None,
    ) -> dict[str, Any]:
        """The updated document (``doc`` itself is not modified).

        ``position``: the array index the query matched (for ``$``); ``is_insert``: the
        document is an upsert's new document (``$setOnInsert`` applies); ``now``: the time
        ``$currentDate`` writes (required only if the update uses it).
        """
        if self.replacement is not None:
            return self._apply_replacement(doc)
        new = clone(doc)
        renamed = self._read_rename_sources(new)
        ctx = _Context(original=doc, is_insert=is_insert, now=now, renamed=renamed)
        ops = [op for op in self._ops if is_insert or op.name != "$setOnInsert"]
        plan = [(op, op.parts) for op in ops]
        if self._positional:
            # '$', '$[]' and '$[<id>]' resolve against the document as it was, and may resolve
            # onto a path another operator names ('a.$[]' and 'a.0', or '$[i]' and '$[j]'
            # matching one element): a conflict, as in MongoDB
            resolved = _ConflictTrie()
            plan = []
            for op in ops:
                for parts in expand_positional(
                    new, op.parts, position, is_insert=is_insert, filters=self._filters
                ):
                    resolved.add(_dotted(parts), parts, original=op.parts)
                    plan.append((op, parts))
        for op, parts in plan:
            _APPLIERS[op.name](new, parts, op, ctx)
        if "_id" in doc and ("_id" not in new or not _same_bson(doc["_id"], new["_id"])):
            raise immutable_field(
                "Performing an update on the path '_id' would modify the immutable field '_id'"
            )
        check_storable(new)
        return _id_first(new)

    def _apply_replacement(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        assert self.replacement is not None
        new = clone(self.replacement)
        if "_id" in doc:
            if "_id" in new and not _same_bson(doc["_id"], new["_id"]):
                raise immutable_field(
                    "After applying the update, the (immutable) field '_id' was found to have "
                    f"been altered to _id: {format_value(new['_id'])}"
                )
            new["_id"] = clone(doc["_id"])
        return _id_first(new)

    def _read_rename_sources(self, doc: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for parts, path, to_parts, to_path in self._renames:
            _check_rename_source(doc, parts, path)
            _no_array_on_path(doc, to_parts, to_path, "destination")
            value = lookup(doc, parts)
            if value is not MISSING:
                found[path] = value
        return found

    def upsert_document(
        self,
        query: Mapping[str, Any],
        *,
        now: datetime.datetime | None = None,
    ) -> dict[str, Any]:
        """The document an upsert inserts: the query's equality fields, then this update.

        For a replacement only the query's ``_id`` is kept. The caller adds ``_id`` if the
        result has none.
        """
        seed = upsert_seed(query, id_only=self.replacement is not None)
        if self.replacement is not None:
            return self._apply_replacement(seed)  # the query's _id is immutable here too
        return self.apply(seed, position=None, is_insert=True, now=now)


def _id_first(doc: dict[str, Any]) -> dict[str, Any]:
    if "_id" in doc and next(iter(doc)) != "_id":
        out = {"_id": doc["_id"]}
        out.update((k, v) for k, v in doc.items() if k != "_id")
        return out
    return doc


def _id_element(doc: Mapping[str, Any]) -> str:
    """``_id: <value>`` as MongoDB prints the element (no braces), or ``no id``."""
    return f"_id: {format_value(doc['_id'])}" if "_id" in doc else "no id"


def _no_array_on_path(doc: Any, parts: list[str], path: str, which: str) -> None:
    cur = doc
    for depth, part in enumerate(parts):
        if isinstance(cur, list):
            raise bad_value(
                f"The {which} field cannot be an array element, '{path}' in doc with "
                f"{_id_element(doc)} has an array field called '{parts[depth - 1]}'"
            )
        if not isinstance(cur, Mapping) or part not in cur:
            return
        cur = cur[part]


def _check_rename_source(doc: dict[str, Any], parts: list[str], path: str) -> None:
    """MongoDB's walk to a ``$rename`` source: a field name through an array, or any part
    through a scalar, is PathNotViable (28); a source found inside an array is BadValue (2);
    a source that is not there is fine (the rename does nothing)."""
    cur: Any = doc
    array_field: str | None = None
    for depth, part in enumerate(parts):
        index = array_index(part) if isinstance(cur, list) else None
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, Mapping) or (index is not None and index >= len(cur)):
            return
        elif index is not None:
            array_field, cur = parts[depth - 1], cur[index]
        else:
            name = parts[depth - 1]
            raise path_not_viable(
                f"cannot use the part ({name} of {path}) to traverse the element "
                f"({{{name}: {format_value(cur)}}})"
            )
    if array_field is not None:
        raise bad_value(
            f"The source field cannot be an array element, '{path}' in doc with "
            f"{_id_element(doc)} has an array field called '{array_field}'"
        )


@dataclass
class _Context:
    original: Mapping[str, Any]
    is_insert: bool
    now: datetime.datetime | None
    renamed: dict[str, Any]


# --- appliers: one per modifier -----------------------------------------------------------------

_Applier = Callable[[dict[str, Any], list[str], _Op, _Context], None]


def _dotted(parts: list[str]) -> str:
    return ".".join(parts)


def _apply_set(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    set_value(doc, parts, clone(op.arg))


def _apply_unset(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    unset_value(doc, parts)


def _apply_arith(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    current = lookup(doc, parts)
    if current is MISSING:
        set_value(doc, parts, op.arg if op.name == "$inc" else _zero_like(op.arg))
        return
    if not is_number(current):
        raise type_mismatch(
            f"Cannot apply {op.name} to a value of non-numeric type. {format_id(ctx.original)} "
            f"has the field '{parts[-1]}' of non-numeric type {type_name(current)}"
        )
    result = arithmetic("+" if op.name == "$inc" else "*", current, op.arg)
    if result is None:
        kind = "NumberLong" if _number_kind(current) == 1 else "NumberInt"
        raise bad_value(
            f"Failed to apply {op.name} operations to current value (({kind}){int(current)}) "
            f"for document {format_id(ctx.original)}"
        )
    set_value(doc, parts, result)


def _apply_bit(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    current = lookup(doc, parts)
    if current is MISSING:
        current = 0
    elif not bitwise.is_integer(current):
        raise bad_value(
            f"Cannot apply $bit to a value of non-integral type.{format_id(ctx.original)} has the "
            f"field {parts[-1]} of non-integer type {type_name(current)}"
        )
    set_value(doc, parts, bitwise.apply_bit(current, op.extra["bit"]))


def _apply_min_max(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    current = lookup(doc, parts)
    if current is not MISSING:
        c = compare(op.arg, current)
        if (op.name == "$min" and c >= 0) or (op.name == "$max" and c <= 0):
            return
    set_value(doc, parts, clone(op.arg))


def _apply_current_date(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    if ctx.now is None:
        raise ValueError("$currentDate needs the caller's `now`")
    now = _millis(ctx.now)
    if op.arg == "timestamp":
        aware = now if now.tzinfo else now.replace(tzinfo=datetime.UTC)
        set_value(doc, parts, Timestamp(int(aware.timestamp()), 1))
    else:
        set_value(doc, parts, now)


def _apply_rename_from(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    if op.path in ctx.renamed:
        unset_value(doc, parts)


def _apply_rename_to(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    source = op.extra["from"]
    if source in ctx.renamed:
        set_value(doc, parts, ctx.renamed[source])


def _array_at(doc: dict[str, Any], parts: list[str]) -> Any:
    return lookup(doc, parts)


def _apply_push(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    current = _array_at(doc, parts)
    if current is MISSING:
        current = []
    elif not isinstance(current, list):
        raise bad_value(
            f"The field '{_dotted(parts)}' must be an array but is of type "
            f"{type_name(current)} in document {format_id(ctx.original)}"
        )
    else:
        current = list(current)
    spec = op.extra
    items = [clone(v) for v in spec["each"]]
    position = spec["position"]
    if position is None:
        current.extend(items)
    else:
        if position < 0:
            position = max(0, len(current) + position)
        position = min(position, len(current))
        current[position:position] = items
    if spec["sort"] is not None:
        current = _push_sorted(current, spec["sort"])
    if spec["slice"] is not None:
        n = spec["slice"]
        current = (
            current[:n] if n >= 0 else current[len(current) + n :] if -n < len(current) else current
        )
    set_value(doc, parts, current)


class _FieldsKey:
    """Sort key for ``$push``'s ``$sort: {field: ±1}`` using values.compare per field."""

    __slots__ = ("fields", "values")

    def __init__(self, element: Any, fields: list[tuple[list[str], int]]) -> None:
        self.fields = fields
        self.values = [
            (lookup(element, path) if isinstance(element, Mapping) else MISSING)
            for path, _ in fields
        ]

    def __lt__(self, other: _FieldsKey) -> bool:
        for (_, direction), a, b in zip(self.fields, self.values, other.values):
            c = compare(a, b)
            if c:
                return c * direction < 0
        return False


class _WholeKey:
    __slots__ = ("direction", "value")

    def __init__(self, value: Any, direction: int) -> None:
        self.value = value
        self.direction = direction

    def __lt__(self, other: _WholeKey) -> bool:
        return compare(self.value, other.value) * self.direction < 0


def _push_sorted(items: list[Any], sort: Any) -> list[Any]:
    if isinstance(sort, int):
        return sorted(items, key=lambda v: _WholeKey(v, sort))
    return sorted(items, key=lambda v: _FieldsKey(v, sort))


def _apply_add_to_set(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    current = _array_at(doc, parts)
    if current is MISSING:
        current = []
    elif not isinstance(current, list):
        raise bad_value(
            f"Cannot apply $addToSet to non-array field. Field named '{parts[-1]}' has "
            f"non-array type {type_name(current)}"
        )
    else:
        current = list(current)
    seen = {hash_key(v) for v in current}
    changed = False
    for item in op.extra["each"]:
        key = hash_key(item)
        if key not in seen:
            seen.add(key)
            current.append(clone(item))
            changed = True
    if changed or lookup(doc, parts) is MISSING:
        set_value(doc, parts, current)


def _check_viable(doc: dict[str, Any], parts: list[str]) -> None:
    """For a modifier that does not create its path ($pop, $pull, $pullAll): a missing path is
    a no-op only if it could exist; one blocked by a scalar, or by an array met with a field
    name, is PathNotViable (28), as in MongoDB."""
    value: Any = doc
    for depth, part in enumerate(parts):
        if isinstance(value, Mapping):
            if part not in value:
                return
            value = value[part]
            continue
        if isinstance(value, list):
            index = array_index(part)
            if index is not None:
                if index >= len(value):
                    return
                value = value[index]
                continue
        raise path_not_viable(
            f"Cannot use the part ({part}) of ({_dotted(parts)}) to traverse the element "
            f"({{{parts[depth - 1]}: {format_value(value)}}})"
        )


def _apply_pop(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    current = lookup(doc, parts)
    if current is MISSING:
        _check_viable(doc, parts)
        return
    if not isinstance(current, list):
        raise type_mismatch(
            f"Path '{_dotted(parts)}' contains an element of non-array type '{type_name(current)}'"
        )
    if current:
        del current[-1 if op.arg == 1 else 0]


def _apply_pull(doc: dict[str, Any], parts: list[str], op: _Op, ctx: _Context) -> None:
    current = lookup(doc, parts)
    if current is MISSING:
        _check_viable(doc, parts)
        return
    if not isinstance(current, list):
        raise bad_value("Cannot apply $pull to a non-array value")
    if op.name == "$pull":
        cond: _PullCondition = op.extra["cond"]
        kept = [v for v in current if not cond.removes(v)]
    else:
        remove = {hash_key(v) for v in op.arg}
        kept = [v for v in current if hash_key(v) not in remove]
    if len(kept) != len(current):
        current[:] = kept


_APPLIERS: dict[str, _Applier] = {
    "$set": _apply_set,
    "$setOnInsert": _apply_set,
    "$unset": _apply_unset,
    "$inc": _apply_arith,
    "$mul": _apply_arith,
    "$min": _apply_min_max,
    "$bit": _apply_bit,
    "$max": _apply_min_max,
    "$currentDate": _apply_current_date,
    "$renameFrom": _apply_rename_from,
    "$renameTo": _apply_rename_to,
    "$push": _apply_push,
    "$pushAll": _apply_push,
    "$addToSet": _apply_add_to_set,
    "$pop": _apply_pop,
    "$pull": _apply_pull,
    "$pullAll": _apply_pull,
}


# --- upsert seeding -----------------------------------------------------------------------------


def upsert_seed(query: Mapping[str, Any], *, id_only: bool = False) -> dict[str, Any]:
    """The base document of an upsert: the query's equality fields (``{a: v}``, ``{a: {$eq:
    v}}``, a one-element ``$in``, each element of ``$all``, and those inside ``$and`` or a
    one-clause ``$or``), dotted paths expanded into sub-documents, ``_id`` first.

    Paths matched twice or overlapping raise code 54 NotSingleValueField, as MongoDB does.
    ``id_only`` (a replacement upsert): only ``_id`` is taken, and it must be given whole
    (``_id.x`` raises code 111 NotExactValueField); other fields may conflict freely.
    """
    equalities: list[tuple[str, Any]] = []
    _collect_equalities(query, equalities)
    if id_only:
        equalities = [(p, v) for p, v in equalities if p.split(".", 1)[0] == "_id"]
        for path, _ in equalities:
            if path != "_id":
                raise location(
                    NOT_EXACT_VALUE_FIELD,
                    f"field at '_id' must be exactly specified, field at sub-path '{path}'found",
                )
    seed: dict[str, Any] = {}
    trie: dict[str, Any] = {}
    for path, value in sorted(equalities, key=lambda pv: pv[0] != "_id"):
        parts = path.split(".")
        node = trie
        for depth, part in enumerate(parts):
            if node.get("\0end"):
                raise location(
                    NOT_SINGLE_VALUE_FIELD,
                    f"cannot infer query fields to set, both paths '{'.'.join(parts[:depth])}' "
                    f"and '{path}' are matched",
                )
            node = node.setdefault(part, {})
        if node.get("\0end"):
            raise location(
                NOT_SINGLE_VALUE_FIELD,
                f"cannot infer query fields to set, path '{path}' is matched twice",
            )
        if node:
            raise location(
                NOT_SINGLE_VALUE_FIELD,
                f"cannot infer query fields to set, both paths '{path}' and "
                f"'{path}.{next(iter(node))}' are matched",
            )
        node["\0end"] = True
        if any(p.startswith("$") for p in parts):
            continue
        set_value(seed, parts, clone(value))
    return seed


def _is_operator_doc(value: Any) -> bool:
    if not isinstance(value, Mapping) or not value:
        return False
    return next(iter(value)).startswith("$")


def _collect_equalities(query: Mapping[str, Any], out: list[tuple[str, Any]]) -> None:
    for key, value in query.items():
        if key == "$and" and isinstance(value, list):
            for clause in value:
                if isinstance(clause, Mapping):
                    _collect_equalities(clause, out)
        elif key == "$or" and isinstance(value, list) and len(value) == 1:
            if isinstance(value[0], Mapping):
                _collect_equalities(value[0], out)
        elif key.startswith("$") or isinstance(value, Regex | re.Pattern):
            continue
        elif _is_operator_doc(value):
            _operator_equalities(key, value, out)
        else:
            out.append((key, value))


def _operator_equalities(path: str, ops: Mapping[str, Any], out: list[tuple[str, Any]]) -> None:
    """The equalities MongoDB reads from an operator document when seeding an upsert: ``$eq``
    (of any value, a regex included), a one-element ``$in`` and each plain element of ``$all``
    (both are rewritten to equality; regexes and ``$elemMatch`` elements are not equalities)."""
    for op, arg in ops.items():
        if op == "$eq":
            out.append((path, arg))
        elif op == "$in" and isinstance(arg, list) and len(arg) == 1:
            if not isinstance(arg[0], Regex | re.Pattern):
                out.append((path, arg[0]))
        elif op == "$all" and isinstance(arg, list):
            for item in arg:
                if not isinstance(item, Regex | re.Pattern) and not _is_operator_doc(item):
                    out.append((path, item))


__all__ = [
    "MODIFIERS",
    "ArrayFilter",
    "Update",
    "arithmetic",
    "clone",
    "compile_array_filters",
    "upsert_seed",
]

"""B-tree indexes: specs, the per-collection index catalog, key generation and index upkeep.

* **Specs** (:class:`IndexSpec`): ``create_index`` keys (``"field"`` or ``[(field, 1 | -1 |
  "2d")]``), MongoDB's generated names (``first_name_1_last_name_-1``), options ``unique``,
  ``sparse``, ``background`` (accepted), ``dropDups``/``drop_dups`` (classic: keep the first
  document per key, delete the rest), ``min``/``max``/``bits`` for 2d, ``expireAfterSeconds``
  (stored only). Output shapes of pymongo's ``index_information()`` and ``list_indexes()``.
* **Catalog**: table ``idxcat``, key ``"<db>.<coll>"`` -> BSON ``{"indexes": [{"spec": <spec
  document>, "multikey": bool}, ...]}`` in creation order. ``_id_`` is implicit (always first,
  never stored): the records table ``docs:<db>.<coll>``, keyed by ``encode_key(_id)``, *is* the
  ``_id`` index.
* **Keys** (:func:`index_keys`): per field the values :func:`node.engine.paths.key_values`
  reaches (arrays unwound: multikey; embedded paths like ``emails.email``; missing -> null); the
  cartesian product over the fields, refusing two fields that run through different arrays
  (code 171, "cannot index parallel arrays"); a sparse index skips documents having none of its
  fields; a ``2d`` field takes the cell numbers of :meth:`node.engine.geo.GeoBounds.keys_for`
  (documents without a location are not indexed).
* **Entries**: table ``idx:<db>.<coll>:<name>``; key ``encode_compound(key values, directions)``
  followed by the record key (non-unique) or alone (unique); the value is always the record key.
  So :func:`record_key_of` is "the value", for the planner's ``IndexInfo.locate``.
* **Upkeep** (:func:`update_index_entries`): called by the collection on every insert, update
  and delete *before* it writes the record; it checks every unique index first and raises
  E11000 (code 11000) having changed nothing, then writes only the entries that changed.

Errors are MongoDB's: DuplicateKey 11000 (``E11000 duplicate key error collection: db.c index:
name_1 dup key: { name: "x" }``), IndexNotFound 27, IndexOptionsConflict 85,
IndexKeySpecsConflict 86, CannotCreateIndex 67, InvalidIndexSpecificationOption 197,
CannotIndexParallelArrays 171, KeyTooLong 17280, and the geo codes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import bson
from bson.objectid import ObjectId
from bson.son import SON

from node.engine.errors import (
    CANNOT_CREATE_INDEX,
    INDEX_KEY_SPECS_CONFLICT,
    INDEX_OPTIONS_CONFLICT,
    INVALID_INDEX_SPECIFICATION_OPTION,
    MongoError,
    duplicate_key,
    index_not_found,
    invalid_options,
)
from node.engine.geo import GeoBounds
from node.engine.keystring import encode_compound, encode_key, is_descending, prefix_successor
from node.engine.path_update import format_value
from node.engine.paths import array_index, key_values, path_values, split_path
from node.engine.storage import ReadTxn, WriteTxn, put_rows
from node.engine.values import MISSING, UNDEFINED

if TYPE_CHECKING:
    from node.engine.planner import IndexInfo

ID_INDEX_NAME = "_id_"
CATALOG_TABLE = "idxcat"
INDEX_VERSION = 2
MAX_INDEX_KEY_BYTES = 500
"""Longest index entry key accepted, record key included (LMDB's limit is 511 bytes, less the
store's 4-byte table id); the same on every store, so behaviour does not depend on it."""

CANNOT_INDEX_PARALLEL_ARRAYS = 171
KEY_TOO_LONG = 17280
GEO_TYPE = "2d"

_STORED_OPTIONS = ("unique", "sparse", "background", "min", "max", "bits", "expireAfterSeconds")
_COMPARED_OPTIONS = ("unique", "sparse", "min", "max", "bits", "expireAfterSeconds")
_ACCEPTED_OPTIONS = frozenset({*_STORED_OPTIONS, "name", "key", "v", "ns", "dropDups", "drop_dups"})


def docs_table(db: str, coll: str) -> str:
    """The records table of a collection (``docs:<db>.<coll>``)."""
    return f"docs:{db}.{coll}"


def index_table(db: str, coll: str, name: str) -> str:
    """The entries table of one index (``idx:<db>.<coll>:<name>``)."""
    return f"idx:{db}.{coll}:{name}"


def record_key_of(entry_key: bytes, entry_value: bytes) -> bytes:
    """The record key an index entry points at (its value, for every index kind)."""
    return entry_value


# --- key patterns and names ----------------------------------------------------------------------


def normalize_key_pattern(keys: Any) -> tuple[tuple[str, Any], ...]:
    """``"f"`` / ``[("f", 1), ...]`` / ``{"f": 1}`` -> ``(("f", 1), ...)``, validated like MongoDB."""
    if isinstance(keys, str):
        pairs: list[tuple[Any, Any]] = [(keys, 1)]
    elif isinstance(keys, Mapping):
        pairs = list(keys.items())
    elif isinstance(keys, list | tuple):
        pairs = []
        for item in keys:
            if isinstance(item, str):
                pairs.append((item, 1))
            elif isinstance(item, list | tuple) and len(item) == 2:
                pairs.append((item[0], item[1]))
            else:
                raise _cannot_create("index key must be a field name or (field, direction) pair")
    else:
        raise MongoError(
            CANNOT_CREATE_INDEX, "the key of an index must be a string, list or document"
        )
    if not pairs:
        raise _cannot_create("Index keys cannot be empty.")
    seen: set[str] = set()
    out: list[tuple[str, Any]] = []
    geo_fields = 0
    for position, (name, direction) in enumerate(pairs):
        if not isinstance(name, str) or not name:
            raise _cannot_create("Index keys cannot be an empty field.")
        if name.startswith("$") or any(not part for part in name.split(".")):
            raise _cannot_create(f"Index key contains an illegal field name: {name!r}")
        if name in seen:
            raise _cannot_create(f"Index key pattern contains field '{name}' more than once")
        seen.add(name)
        out.append((name, _normalize_direction(direction)))
        if direction == GEO_TYPE:
            geo_fields += 1
            if geo_fields > 1:
                raise MongoError(16800, "can't have 2 geo fields")
            if position != 0:
                raise MongoError(16801, "2d has to be first in index")
    return tuple(out)


def _normalize_direction(direction: Any) -> Any:
    if isinstance(direction, bool):
        raise _cannot_create(
            "Values in v:2 index key pattern cannot be of type bool. Only numbers > 0, "
            "numbers < 0, and strings are allowed."
        )
    if isinstance(direction, str):
        if direction == GEO_TYPE:
            return direction
        raise _cannot_create(f"Unknown index plugin '{direction}'")
    try:
        number = float(direction)
    except (TypeError, ValueError):
        raise _cannot_create(
            f"Values in the index key pattern must be numbers or strings, not {direction!r}"
        ) from None
    if number != number or number == 0:
        raise _cannot_create("Values in the index key pattern can't be zero or NaN.")
    if isinstance(direction, int):
        return int(direction)
    return int(number) if number == int(number) else number


def gen_index_name(key: Sequence[tuple[str, Any]]) -> str:
    """MongoDB's generated index name: ``first_name_1_last_name_-1``."""
    return "_".join(f"{name}_{direction}" for name, direction in key)


def _cannot_create(message: str) -> MongoError:
    return MongoError(CANNOT_CREATE_INDEX, message)


# --- specs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSpec:
    """One index of a collection: its key pattern, name and options (immutable)."""

    name: str
    key: tuple[tuple[str, Any], ...]
    unique: bool = False
    sparse: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    multikey: bool = False
    geo: GeoBounds | None = None

    @cached_property
    def is_id(self) -> bool:
        return self.name == ID_INDEX_NAME

    @cached_property
    def directions(self) -> tuple[Any, ...]:
        return tuple(d for _, d in self.key)

    @cached_property
    def descending(self) -> tuple[bool, ...]:
        return tuple(is_descending(d) for _, d in self.key)

    @cached_property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for f, _ in self.key)

    @cached_property
    def plain_field(self) -> str | None:
        """The field name when the key is a single top-level (undotted) field, else None: such
        an index takes its keys straight from ``doc.get(field)`` (the fast path of upkeep)."""
        if len(self.key) == 1 and "." not in self.key[0][0]:
            return self.key[0][0]
        return None

    @property
    def key_pattern(self) -> dict[str, Any]:
        return dict(self.key)

    @property
    def ttl_seconds(self) -> float | None:
        """``expireAfterSeconds`` of a TTL index (one ascending or descending field, not
        ``_id``); None otherwise (MongoDB ignores the option on compound indexes)."""
        seconds = self.options.get("expireAfterSeconds")
        if seconds is None or len(self.key) != 1 or self.geo is not None or self.is_id:
            return None
        return float(seconds)

    def table(self, db: str, coll: str) -> str:
        """The table holding this index's entries (the records table for ``_id_``)."""
        cached = self.__dict__.get("_table")
        if cached is not None and cached[0] == (db, coll):
            return cached[1]
        name = docs_table(db, coll) if self.is_id else index_table(db, coll, self.name)
        self.__dict__["_table"] = ((db, coll), name)
        return name

    def to_document(self) -> SON[str, Any]:
        """The spec as ``listIndexes`` returns it (``{v, key, name, unique?, sparse?, ...}``)."""
        doc: SON[str, Any] = SON(
            [("v", INDEX_VERSION), ("key", SON(self.key)), ("name", self.name)]
        )
        for option in _STORED_OPTIONS:
            if option in self.options:
                doc[option] = self.options[option]
        return doc

    def equivalent_options(self, other: IndexSpec) -> bool:
        mine = {k: self.options.get(k) for k in _COMPARED_OPTIONS}
        theirs = {k: other.options.get(k) for k in _COMPARED_OPTIONS}
        return mine == theirs

    def planner_info(self, db: str, coll: str) -> IndexInfo:
        """This index as :class:`node.engine.planner.IndexInfo` sees it."""
        from node.engine.planner import IndexInfo

        locate = _id_locate if self.is_id else record_key_of
        return IndexInfo(
            name=self.name,
            key=self.key,
            table=self.table(db, coll),
            sparse=self.sparse,
            multikey=self.multikey,
            geo=self.geo,
            locate=locate,
        )


def _id_locate(entry_key: bytes, entry_value: bytes) -> bytes:
    return entry_key


ID_INDEX = IndexSpec(name=ID_INDEX_NAME, key=(("_id", 1),), unique=True)


def spec_from_options(keys: Any, options: Mapping[str, Any]) -> IndexSpec:
    """Validate ``create_index(keys, **options)`` into an :class:`IndexSpec`."""
    key = normalize_key_pattern(keys)
    for option in options:
        if option not in _ACCEPTED_OPTIONS:
            raise MongoError(
                INVALID_INDEX_SPECIFICATION_OPTION,
                f"The field '{option}' is not valid for an index specification. "
                f"Specification: {format_value({'key': dict(key), **options})}",
                code_name="InvalidIndexSpecificationOption",
            )
    name = options.get("name")
    if name is None:
        name = gen_index_name(key)
    if not isinstance(name, str) or not name:
        raise _cannot_create("The index name must be a non-empty string")
    if name == "*":
        raise _cannot_create("The index name '*' is not valid.")
    stored: dict[str, Any] = {}
    for option in _STORED_OPTIONS:
        if option in options and options[option] is not None:
            value = options[option]
            if option in ("unique", "sparse", "background"):
                value = bool(value)
                if not value and option != "background":
                    continue
            stored[option] = value
    if "expireAfterSeconds" in stored:
        _check_ttl(key, name, stored["expireAfterSeconds"])
    geo = None
    if key[0][1] == GEO_TYPE:
        geo = GeoBounds.from_options(stored)
    elif any(k in stored for k in ("min", "max", "bits")):
        stored = {k: v for k, v in stored.items() if k not in ("min", "max", "bits")}
    is_id = key == (("_id", 1),) and name == ID_INDEX_NAME
    return IndexSpec(
        name=name,
        key=key,
        unique=bool(stored.get("unique")) or is_id,
        sparse=bool(stored.get("sparse")),
        options=stored,
        geo=geo,
    )


MAX_TTL_SECONDS = 2_147_483_647


def _check_ttl(key: tuple[tuple[str, Any], ...], name: str, seconds: Any) -> None:
    """MongoDB's rules for ``expireAfterSeconds``: a number in [0, 2^31 - 1], not on ``_id``."""
    if key == (("_id", 1),):
        raise MongoError(
            INVALID_INDEX_SPECIFICATION_OPTION,
            "The field 'expireAfterSeconds' is not valid for an _id index specification. "
            f"Specification: {{ key: {{ _id: 1 }}, name: \"{name}\" }}",
            code_name="InvalidIndexSpecificationOption",
        )
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise _cannot_create(
            "TTL index 'expireAfterSeconds' option must be numeric, but received a type of "
            f"'{type(seconds).__name__}'"
        )
    if not 0 <= seconds <= MAX_TTL_SECONDS:  # NaN fails both comparisons
        raise _cannot_create(
            "TTL index 'expireAfterSeconds' option must be within an acceptable range, "
            f"[0, {MAX_TTL_SECONDS}], but received {seconds}"
        )


def _spec_from_catalog(entry: Mapping[str, Any]) -> IndexSpec:
    doc = entry["spec"]
    options = {k: doc[k] for k in _STORED_OPTIONS if k in doc}
    key = tuple((k, v) for k, v in doc["key"].items())
    return IndexSpec(
        name=doc["name"],
        key=key,
        unique=bool(options.get("unique")),
        sparse=bool(options.get("sparse")),
        options=options,
        multikey=bool(entry.get("multikey")),
        geo=GeoBounds.from_options(options) if key[0][1] == GEO_TYPE else None,
    )


# --- catalog -------------------------------------------------------------------------------------

_CACHE_LIMIT = 256
_parsed: dict[bytes, tuple[IndexSpec, ...]] = {}


def _ns(db: str, coll: str) -> bytes:
    return f"{db}.{coll}".encode()


def load_indexes(txn: ReadTxn, db: str, coll: str) -> list[IndexSpec]:
    """Every index of ``db.coll`` in creation order, ``_id_`` first."""
    raw = txn.get(CATALOG_TABLE, _ns(db, coll))
    if raw is None:
        return [ID_INDEX]
    specs = _parsed.get(raw)
    if specs is None:
        decoded = bson.decode(raw)
        specs = tuple(_spec_from_catalog(e) for e in decoded["indexes"])
        if len(_parsed) >= _CACHE_LIMIT:
            _parsed.clear()
        _parsed[raw] = specs
    return [ID_INDEX, *specs]


def _save_indexes(txn: WriteTxn, db: str, coll: str, specs: Sequence[IndexSpec]) -> None:
    entries = [{"spec": s.to_document(), "multikey": s.multikey} for s in specs if not s.is_id]
    if entries:
        txn.put(CATALOG_TABLE, _ns(db, coll), bson.encode({"indexes": entries}))
    else:
        txn.delete(CATALOG_TABLE, _ns(db, coll))


def find_index(txn: ReadTxn, db: str, coll: str, name_or_key: Any) -> IndexSpec | None:
    """The index with this name, or with this key pattern (``"f"``, list of pairs or document)."""
    specs = load_indexes(txn, db, coll)
    if isinstance(name_or_key, str):
        for spec in specs:
            if spec.name == name_or_key:
                return spec
        return None
    key = normalize_key_pattern(name_or_key)
    for spec in specs:
        if spec.key == key:
            return spec
    return None


def index_information(txn: ReadTxn, db: str, coll: str) -> dict[str, dict[str, Any]]:
    """pymongo's ``index_information()``: ``{name: {"v": 2, "key": [(f, d)], ...options}}``."""
    info: dict[str, dict[str, Any]] = {}
    for spec in load_indexes(txn, db, coll):
        doc = dict(spec.to_document())
        doc["key"] = list(doc["key"].items())
        info[doc.pop("name")] = doc
    return info


def list_indexes(txn: ReadTxn, db: str, coll: str) -> list[SON[str, Any]]:
    """The ``listIndexes`` documents (``{"v": 2, "key": SON, "name": ...}``) in creation order."""
    return [spec.to_document() for spec in load_indexes(txn, db, coll)]


def planner_infos(txn: ReadTxn, db: str, coll: str) -> list[IndexInfo]:
    """Every index of the collection as the planner's ``IndexInfo``."""
    return [spec.planner_info(db, coll) for spec in load_indexes(txn, db, coll)]


# --- key generation ------------------------------------------------------------------------------


def _array_prefixes(value: Any, parts: tuple[str, ...], i: int, out: set[str]) -> None:
    """The dotted paths (without array positions) of the arrays ``parts`` runs through."""
    if isinstance(value, list | tuple):
        if i == len(parts):
            out.add(".".join(parts))
            return
        index = array_index(parts[i])
        if index is not None:
            if index < len(value):
                _array_prefixes(value[index], parts, i + 1, out)
            return
        out.add(".".join(parts[:i]))
        for element in value:
            if isinstance(element, Mapping):
                _array_prefixes(element, parts, i, out)
        return
    if i < len(parts) and isinstance(value, Mapping):
        child = value.get(parts[i], MISSING)
        if child is not MISSING:
            _array_prefixes(child, parts, i + 1, out)


def _on_path(prefix: str, path: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def _check_parallel_arrays(spec: IndexSpec, doc: Mapping[str, Any]) -> bool:
    """Raise code 171 if two fields run through different arrays; returns whether any array
    was met (the document makes the index multikey)."""
    arrays: list[set[str]] = []
    for name, direction in spec.key:
        found: set[str] = set()
        if direction == GEO_TYPE:  # a location's own array is its coordinates
            pass
        elif "." not in name:
            if isinstance(doc.get(name), list | tuple):
                found.add(name)
        else:
            _array_prefixes(doc, split_path(name), 0, found)
        arrays.append(found)
    if len(arrays) > 1:
        for (i, a), (j, b) in itertools.combinations(enumerate(arrays), 2):
            own_a = sorted(p for p in a if not _on_path(p, spec.fields[j]))
            own_b = sorted(p for p in b if not _on_path(p, spec.fields[i]))
            if own_a and own_b:
                raise MongoError(
                    CANNOT_INDEX_PARALLEL_ARRAYS,
                    f"cannot index parallel arrays [{own_b[0].split('.')[-1]}] "
                    f"[{own_a[0].split('.')[-1]}]",
                    code_name="CannotIndexParallelArrays",
                )
    return any(arrays)


def _field_values(spec: IndexSpec, doc: Mapping[str, Any], name: str, direction: Any) -> list[Any]:
    if direction == GEO_TYPE:
        assert spec.geo is not None
        out: list[Any] = []
        for value in path_values(doc, name):
            if value is not MISSING:
                out.extend(spec.geo.keys_for(value, doc))
        return out
    return key_values(doc, name)


def index_keys(spec: IndexSpec, doc: Mapping[str, Any]) -> tuple[list[tuple[Any, ...]], bool]:
    """The key tuples ``doc`` has in ``spec`` (deduplicated by value) and whether it is multikey.

    An empty list means the document is not in the index (sparse, or a 2d index without a
    location). Raises code 171 for parallel arrays and the geo errors for bad locations.
    """
    keys, multikey = _keys_by_encoding(spec, doc)
    return list(keys.values()), multikey


def _keys_by_encoding(spec: IndexSpec, doc: Mapping[str, Any]) -> tuple[dict[bytes, tuple], bool]:
    """``{encoded key: key values}`` of ``doc`` in ``spec`` (in generation order), multikey."""
    name = spec.plain_field
    if name is not None:
        fast = _plain_field_keys(spec, name, doc)
        if fast is not None:
            return fast
    multikey = _check_parallel_arrays(spec, doc)
    per_field = [_field_values(spec, doc, name, d) for name, d in spec.key]
    if spec.geo is not None and not per_field[0]:
        return {}, multikey
    if spec.sparse and all(v is MISSING for values in per_field for v in values):
        return {}, multikey
    keys: dict[bytes, tuple] = {}
    if len(per_field) == 1:
        descending = spec.descending[0]
        for v in per_field[0]:
            enc = encode_key(v, descending)
            if enc not in keys:
                keys[enc] = (v,)
    else:
        directions = spec.directions
        for combo in itertools.product(*per_field):
            enc = encode_compound(combo, directions)
            if enc not in keys:
                keys[enc] = combo
    return keys, multikey or len(keys) > 1


_SCALAR_TYPES = frozenset({int, str, float, bool, type(None), ObjectId})


def _plain_field_keys(
    spec: IndexSpec, name: str, doc: Mapping[str, Any]
) -> tuple[dict[bytes, tuple], bool] | None:
    """:func:`_keys_by_encoding` for a one-field, undotted key pattern when the field holds no
    array (or, for 2d, anything): the same result without path walking. None: take the
    general path."""
    value = doc.get(name, MISSING)
    geo = spec.geo
    if geo is not None:
        if value is MISSING:
            return {}, False
        cells = geo.keys_for(value, doc)
        if len(cells) == 1:
            return {encode_key(cells[0], spec.descending[0]): (cells[0],)}, False
        keys: dict[bytes, tuple] = {}
        descending = spec.descending[0]
        for cell in cells:
            enc = encode_key(cell, descending)
            if enc not in keys:
                keys[enc] = (cell,)
        return keys, len(keys) > 1
    if type(value) not in _SCALAR_TYPES and isinstance(value, list | tuple):
        return None
    if value is MISSING and spec.sparse:
        return {}, False
    return {encode_key(value, spec.descending[0]): (value,)}, False


def _encoded_keys(
    spec: IndexSpec, doc: Mapping[str, Any] | None
) -> tuple[dict[bytes, tuple], bool]:
    if doc is None:
        return {}, False
    return _keys_by_encoding(spec, doc)


def _entry_key(spec: IndexSpec, encoded: bytes, record_key: bytes) -> bytes:
    return encoded if spec.unique else encoded + record_key


def _key_document(spec: IndexSpec, values: tuple[Any, ...]) -> dict[str, Any]:
    """The key as a document for replies (missing and undefined become null)."""
    return {
        name: (None if v is MISSING or v is UNDEFINED else v)
        for name, v in zip(spec.fields, values)
    }


def _show_key(spec: IndexSpec, values: tuple[Any, ...]) -> str:
    shown = ", ".join(
        f"{name}: {'undefined' if v is UNDEFINED else format_value(v)}"
        for name, v in zip(spec.fields, values)
    )
    return "{ " + shown + " }"


def duplicate_key_error(db: str, coll: str, spec: IndexSpec, values: tuple[Any, ...]) -> MongoError:
    """E11000 with MongoDB's message, ``keyPattern`` and ``keyValue``."""
    key_value = _key_document(spec, values)
    shown = _show_key(spec, values)
    return duplicate_key(
        f"E11000 duplicate key error collection: {db}.{coll} index: {spec.name} dup key: {shown}",
        key_pattern=spec.key_pattern,
        key_value=key_value,
    )


def _check_key_length(
    db: str, coll: str, spec: IndexSpec, encoded: bytes, record_key: bytes, values: tuple
) -> None:
    if len(_entry_key(spec, encoded, record_key)) > MAX_INDEX_KEY_BYTES:
        raise MongoError(
            KEY_TOO_LONG,
            f"key too large to index, failing {db}.{coll}.${spec.name} {len(encoded)} "
            f"{_show_key(spec, values)}",
            code_name="KeyTooLong",
        )


# --- upkeep --------------------------------------------------------------------------------------


def update_index_entries(
    txn: WriteTxn,
    db: str,
    coll: str,
    record_key: bytes,
    old_doc: Mapping[str, Any] | None,
    new_doc: Mapping[str, Any] | None,
    *,
    indexes: Sequence[IndexSpec] | None = None,
) -> None:
    """Bring every secondary index in line with one record changing from ``old_doc`` to
    ``new_doc`` (``None`` = absent: insert has no old, delete has no new).

    Call it *before* writing the record. All checks (unique keys, parallel arrays, geo bounds,
    key length) run before the first write, so a MongoError here leaves the store unchanged.
    """
    specs = indexes if indexes is not None else load_indexes(txn, db, coll)
    if old_doc is None:
        if new_doc is not None:
            _insert_entries(txn, db, coll, record_key, new_doc, specs)
        return
    plans: list[tuple[str, list[bytes], list[bytes]]] = []
    newly_multikey: set[str] = set()
    for spec in specs:
        if spec.is_id:
            continue
        if new_doc is None:
            new_keys: dict[bytes, tuple] = {}
            multikey = False
        else:
            new_keys, multikey = _keys_by_encoding(spec, new_doc)
        if multikey and not spec.multikey:
            newly_multikey.add(spec.name)
        if old_doc is None:
            if not new_keys:
                continue
            removed: list[bytes] = []
            added = list(new_keys)
        else:
            old_keys, _ = _keys_by_encoding(spec, old_doc)
            removed = [k for k in old_keys if k not in new_keys]
            added = [k for k in new_keys if k not in old_keys]
        table = spec.table(db, coll)
        unique = spec.unique
        added_entries: list[bytes] = []
        for enc in added:
            entry = enc if unique else enc + record_key
            if len(entry) > MAX_INDEX_KEY_BYTES:
                _check_key_length(db, coll, spec, enc, record_key, new_keys[enc])
            if unique:
                holder = txn.get(table, enc)
                if holder is not None and holder != record_key:
                    raise duplicate_key_error(db, coll, spec, new_keys[enc])
            added_entries.append(entry)
        if removed or added_entries:
            removed_entries = removed if unique else [enc + record_key for enc in removed]
            plans.append((table, removed_entries, added_entries))
    for table, removed_entries, added_entries in plans:
        for entry in removed_entries:
            txn.delete(table, entry)
        for entry in added_entries:
            txn.put(table, entry, record_key)
    if newly_multikey:
        _mark_multikey(txn, db, coll, newly_multikey)


def _insert_entries(
    txn: WriteTxn,
    db: str,
    coll: str,
    record_key: bytes,
    doc: Mapping[str, Any],
    specs: Sequence[IndexSpec],
) -> bool:
    """:func:`update_index_entries` for a new record (no old document): the common insert.
    Every check precedes the first write. True when it marked an index multikey (the
    catalog changed: ``specs`` are stale)."""
    writes: list[tuple[str, bytes]] = []
    newly_multikey: set[str] | None = None
    for spec in specs:
        if spec.is_id:
            continue
        keys, multikey = _keys_by_encoding(spec, doc)
        if multikey and not spec.multikey:
            if newly_multikey is None:
                newly_multikey = set()
            newly_multikey.add(spec.name)
        if not keys:
            continue
        table = spec.table(db, coll)
        if spec.unique:
            for enc, values in keys.items():
                if len(enc) > MAX_INDEX_KEY_BYTES:
                    _check_key_length(db, coll, spec, enc, record_key, values)
                holder = txn.get(table, enc)
                if holder is not None and holder != record_key:
                    raise duplicate_key_error(db, coll, spec, values)
                writes.append((table, enc))
        else:
            for enc, values in keys.items():
                entry = enc + record_key
                if len(entry) > MAX_INDEX_KEY_BYTES:
                    _check_key_length(db, coll, spec, enc, record_key, values)
                writes.append((table, entry))
    put = txn.put
    for table, entry in writes:
        put(table, entry, record_key)
    if newly_multikey:
        _mark_multikey(txn, db, coll, newly_multikey)
        return True
    return False


def _mark_multikey(txn: WriteTxn, db: str, coll: str, names: set[str]) -> None:
    specs = [
        IndexSpec(s.name, s.key, s.unique, s.sparse, s.options, True, s.geo)
        if s.name in names
        else s
        for s in load_indexes(txn, db, coll)
    ]
    _save_indexes(txn, db, coll, specs)


# --- create / drop -------------------------------------------------------------------------------


def create_index(
    txn: WriteTxn,
    db: str,
    coll: str,
    keys: Any,
    *,
    delete_record: Callable[[bytes, Mapping[str, Any]], None] | None = None,
    **options: Any,
) -> str:
    """``create_index(keys, **options)`` on ``db.coll``: validate, build over the existing
    records, persist in the catalog; returns the index name. An identical existing index is a
    no-op. With ``unique`` the build fails with E11000 on existing duplicates (nothing written),
    unless ``dropDups``/``drop_dups``: then the first record per key (in ``_id`` order) stays
    and the others are deleted -- by ``delete_record(record_key, doc)`` when given (the
    collection's own delete), else here (records table and every other index)."""
    drop_dups = bool(options.get("dropDups") or options.get("drop_dups"))
    spec = spec_from_options(keys, options)
    if spec.key == ID_INDEX.key:
        return ID_INDEX_NAME  # the _id index always exists (MongoDB: "all indexes already exist")
    existing = load_indexes(txn, db, coll)
    for other in existing:
        if other.name == spec.name:
            if other.key != spec.key:
                raise MongoError(
                    INDEX_KEY_SPECS_CONFLICT,
                    "An existing index has the same name as the requested index. When index "
                    "names are not specified, they are auto generated and can cause conflicts. "
                    "Please refer to our documentation. Requested index: "
                    f"{format_value(spec.to_document())}, existing index: "
                    f"{format_value(other.to_document())}",
                )
            if other.is_id or other.equivalent_options(spec):
                return other.name
            raise MongoError(
                INDEX_OPTIONS_CONFLICT,
                "An equivalent index already exists with the same name but different options. "
                f"Requested index: {format_value(spec.to_document())}, existing index: "
                f"{format_value(other.to_document())}",
            )
        if other.key == spec.key and (other.is_id or other.equivalent_options(spec)):
            raise MongoError(
                INDEX_OPTIONS_CONFLICT, f"Index already exists with a different name: {other.name}"
            )
        if other.key == spec.key:
            raise MongoError(
                INDEX_OPTIONS_CONFLICT,
                "An equivalent index already exists with a different name and options. "
                f"Requested index: {format_value(spec.to_document())}, existing index: "
                f"{format_value(other.to_document())}",
            )
    spec = _build(txn, db, coll, spec, drop_dups, delete_record)
    _save_indexes(txn, db, coll, [*existing, spec])
    return spec.name


def _build(
    txn: WriteTxn,
    db: str,
    coll: str,
    spec: IndexSpec,
    drop_dups: bool,
    delete_record: Callable[[bytes, Mapping[str, Any]], None] | None,
) -> IndexSpec:
    table = spec.table(db, coll)
    txn.drop_table(table)
    multikey = False
    doomed: list[tuple[bytes, dict[str, Any]]] = []
    try:
        for record_key, raw in txn.scan(docs_table(db, coll)):
            doc = bson.decode(raw)
            keys, doc_multikey = _encoded_keys(spec, doc)
            multikey = multikey or doc_multikey
            if spec.unique:
                clash = next(
                    (enc for enc in keys if txn.get(table, enc) not in (None, record_key)), None
                )
                if clash is not None:
                    if drop_dups:
                        doomed.append((record_key, doc))
                        continue
                    raise duplicate_key_error(db, coll, spec, keys[clash])
            for enc, values in keys.items():
                _check_key_length(db, coll, spec, enc, record_key, values)
                txn.put(table, _entry_key(spec, enc, record_key), record_key)
    except MongoError:
        txn.drop_table(table)
        raise
    for record_key, doc in doomed:
        if delete_record is not None:
            delete_record(record_key, doc)
        else:
            update_index_entries(txn, db, coll, record_key, doc, None)
            txn.delete(docs_table(db, coll), record_key)
    return IndexSpec(
        spec.name, spec.key, spec.unique, spec.sparse, spec.options, multikey, spec.geo
    )


def drop_index(txn: WriteTxn, db: str, coll: str, index_or_name: Any) -> None:
    """Drop one index by name or by key pattern (``"*"`` drops all but ``_id_``)."""
    if index_or_name == "*":
        drop_indexes(txn, db, coll)
        return
    spec = find_index(txn, db, coll, index_or_name)
    if spec is None:
        if isinstance(index_or_name, str):
            raise index_not_found(f"index not found with name [{index_or_name}]")
        key = dict(normalize_key_pattern(index_or_name))
        raise index_not_found(f"can't find index with key: {format_value(key)}")
    if spec.is_id:
        raise invalid_options("cannot drop _id index")
    txn.drop_table(spec.table(db, coll))
    _save_indexes(txn, db, coll, [s for s in load_indexes(txn, db, coll) if s.name != spec.name])


def drop_indexes(txn: WriteTxn, db: str, coll: str) -> None:
    """Drop every index except ``_id_``."""
    for spec in load_indexes(txn, db, coll):
        if not spec.is_id:
            txn.drop_table(spec.table(db, coll))
    _save_indexes(txn, db, coll, [])


def drop_all_indexes(txn: WriteTxn, db: str, coll: str) -> None:
    """For dropping the collection: every index table and the catalog entry go."""
    drop_indexes(txn, db, coll)


# --- scanning ------------------------------------------------------------------------------------


def key_range(
    spec: IndexSpec,
    start: Sequence[Any] = (),
    end: Sequence[Any] = (),
    *,
    start_inclusive: bool = True,
    end_inclusive: bool = True,
) -> tuple[bytes, bytes | None]:
    """Byte bounds ``[lo, hi)`` of the entries between two key prefixes, *in index order*.

    ``start``/``end`` are values for the first fields of the index (descending fields included:
    "start" is where a forward scan of the index begins). An empty prefix is unbounded.
    """
    lo = b""
    if start:
        enc = encode_compound(list(start), spec.directions[: len(start)])
        after = prefix_successor(enc)
        if not start_inclusive and after is None:
            return enc, enc  # nothing sorts after this prefix
        lo = enc if start_inclusive else after  # type: ignore[assignment]
    hi: bytes | None = None
    if end:
        enc = encode_compound(list(end), spec.directions[: len(end)])
        hi = prefix_successor(enc) if end_inclusive else enc
    return lo, hi


def scan_index(
    txn: ReadTxn,
    db: str,
    coll: str,
    spec: IndexSpec,
    start: Sequence[Any] = (),
    end: Sequence[Any] = (),
    *,
    start_inclusive: bool = True,
    end_inclusive: bool = True,
    reverse: bool = False,
) -> Iterator[tuple[bytes, bytes]]:
    """``(entry key, record key)`` pairs of ``spec`` between two key prefixes (see
    :func:`key_range`), in index order or reversed. For ``_id_`` the entries are the records."""
    lo, hi = key_range(
        spec, start, end, start_inclusive=start_inclusive, end_inclusive=end_inclusive
    )
    locate = _id_locate if spec.is_id else record_key_of
    for key, value in txn.scan(spec.table(db, coll), lo, hi, reverse=reverse):
        yield key, locate(key, value)


def lookup_unique(
    txn: ReadTxn, db: str, coll: str, spec: IndexSpec, values: Sequence[Any]
) -> bytes | None:
    """The record key holding ``values`` in a unique index (``None``: no such record)."""
    enc = encode_compound(list(values), spec.directions)
    if spec.is_id:
        return enc if txn.get(spec.table(db, coll), enc) is not None else None
    return txn.get(spec.table(db, coll), enc)


# --- the engine's index maintainer ---------------------------------------------------------------


_split_cache: dict[str, tuple[str, str]] = {}


def split_ns(ns: str) -> tuple[str, str]:
    """``"db.coll.with.dots"`` -> ``("db", "coll.with.dots")``."""
    db, _, coll = ns.partition(".")
    return db, coll


class EntriesAdder:
    """Index entries for a batch of new records in one write transaction.

    ``add(record_key, doc)`` does what ``update_index_entries(txn, db, coll, record_key, None,
    doc)`` does, with the index list loaded once per batch: it raises MongoError (duplicate
    key, parallel arrays, geo, key too long) only before it records anything, so a failed
    document changes nothing. Unique entries are written at once (later documents of the batch
    are checked against them); non-unique entries, which nothing reads during the batch, are
    kept and written by :meth:`finish` in key order (one ``put_many`` per index when the store
    has it). Call ``finish()`` after the last document, before anything reads the indexes.
    """

    def __init__(self, txn: WriteTxn, db: str, coll: str) -> None:
        self._txn = txn
        self._db = db
        self._coll = coll
        self._pending: dict[str, list[tuple[bytes, bytes]]] = {}
        self._load()

    def _load(self) -> None:
        db, coll = self._db, self._coll
        pending = self._pending
        self._specs = [
            (
                spec,
                table,
                spec.unique,
                spec.plain_field,
                spec.descending[0],
                spec.geo,
                pending.setdefault(table, []),
            )
            for spec in load_indexes(self._txn, db, coll)
            if not spec.is_id
            for table in (spec.table(db, coll),)
        ]

    def add(self, record_key: bytes, doc: Mapping[str, Any]) -> None:
        if not self._specs:
            return
        unique_writes: list[tuple[str, bytes]] = []
        deferred: list[tuple[list[tuple[bytes, bytes]], bytes]] = []  # (rows, entry)
        newly_multikey: set[str] | None = None
        txn = self._txn
        for spec, table, unique, plain, descending, geo, rows in self._specs:
            keys: dict[bytes, tuple]
            if plain is not None:
                # one key, no array: the common cases, without building the general key set
                value = doc.get(plain, MISSING)
                if geo is None:
                    if type(value) in _SCALAR_TYPES:
                        enc = encode_key(value, descending)
                        if not unique and len(enc) + len(record_key) <= MAX_INDEX_KEY_BYTES:
                            deferred.append((rows, enc + record_key))
                            continue
                        keys, multikey = {enc: (value,)}, False
                    else:
                        keys, multikey = _keys_by_encoding(spec, doc)
                else:
                    cell = geo.simple_key(value)
                    if cell is not None and not unique:
                        entry = encode_key(cell, descending) + record_key
                        if len(entry) <= MAX_INDEX_KEY_BYTES:
                            deferred.append((rows, entry))
                            continue
                    keys, multikey = _keys_by_encoding(spec, doc)
            else:
                keys, multikey = _keys_by_encoding(spec, doc)
            if multikey and not spec.multikey:
                if newly_multikey is None:
                    newly_multikey = set()
                newly_multikey.add(spec.name)
            if unique:
                for enc, values in keys.items():
                    if len(enc) > MAX_INDEX_KEY_BYTES:
                        _check_key_length(self._db, self._coll, spec, enc, record_key, values)
                    holder = txn.get(table, enc)
                    if holder is not None and holder != record_key:
                        raise duplicate_key_error(self._db, self._coll, spec, values)
                    unique_writes.append((table, enc))
            else:
                for enc, values in keys.items():
                    entry = enc + record_key
                    if len(entry) > MAX_INDEX_KEY_BYTES:
                        _check_key_length(self._db, self._coll, spec, enc, record_key, values)
                    deferred.append((rows, entry))
        for table, entry in unique_writes:
            txn.put(table, entry, record_key)
        for rows, entry in deferred:
            rows.append((entry, record_key))
        if newly_multikey:
            _mark_multikey(txn, self._db, self._coll, newly_multikey)
            self._load()

    def finish(self) -> None:
        """Write the kept non-unique entries (in key order)."""
        for table, rows in self._pending.items():
            rows.sort()
            put_rows(self._txn, table, rows)
            rows.clear()


class IndexManager:
    """The engine's index maintainer (``Engine(store, indexes=IndexManager())``): the
    :class:`node.engine.collection.IndexMaintainer` seam plus namespace-keyed index commands."""

    def on_write(
        self,
        txn: WriteTxn,
        ns: str,
        old_doc: Mapping[str, Any] | None,
        new_doc: Mapping[str, Any] | None,
        record_key: bytes,
    ) -> None:
        names = _split_cache.get(ns)
        if names is None:
            names = _split_cache[ns] = split_ns(ns)
            if len(_split_cache) > _CACHE_LIMIT:
                _split_cache.clear()
        update_index_entries(txn, names[0], names[1], record_key, old_doc, new_doc)

    def entries_adder(self, txn: WriteTxn, ns: str) -> EntriesAdder:
        """For a batch of inserts in ``txn`` (see :class:`EntriesAdder`)."""
        db, coll = split_ns(ns)
        return EntriesAdder(txn, db, coll)

    def on_drop(self, txn: WriteTxn, ns: str) -> None:
        db, coll = split_ns(ns)
        drop_all_indexes(txn, db, coll)

    def create_index(self, txn: WriteTxn, ns: str, keys: Any, **options: Any) -> str:
        db, coll = split_ns(ns)
        return create_index(txn, db, coll, keys, **options)

    def drop_index(self, txn: WriteTxn, ns: str, index_or_name: Any) -> None:
        db, coll = split_ns(ns)
        drop_index(txn, db, coll, index_or_name)

    def drop_indexes(self, txn: WriteTxn, ns: str) -> None:
        db, coll = split_ns(ns)
        drop_indexes(txn, db, coll)

    def index_information(self, txn: ReadTxn, ns: str) -> dict[str, dict[str, Any]]:
        db, coll = split_ns(ns)
        return index_information(txn, db, coll)

    def list_indexes(self, txn: ReadTxn, ns: str) -> list[SON[str, Any]]:
        db, coll = split_ns(ns)
        return list_indexes(txn, db, coll)

    def planner_infos(self, txn: ReadTxn, ns: str) -> list[IndexInfo]:
        db, coll = split_ns(ns)
        return planner_infos(txn, db, coll)

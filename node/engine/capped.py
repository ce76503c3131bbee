"""Capped collections: insertion (natural) order and the ``size`` / ``max`` bounds.

A capped collection keeps, besides its records (``docs:<ns>``, keyed by ``_id``):

* ``capn:<ns>``: natural position (8 bytes, big-endian) -> record key, in insertion order;
* ``capp:<ns>``: record key -> natural position (to forget a record's position on delete);
* a row in table ``capmeta`` (key ``b"<ns>"``): next position, data size, document count and
  the bounds (max bytes, max documents) and the newest position trimmed away. A namespace is capped iff it has this row.

Positions come from the replicated counter in ``capmeta``, so every member that applies the same
log holds the same order. When an insert (or a growing update) takes the collection past a bound,
its oldest documents (and their index entries) are removed in the same transaction, so no reader
ever sees the collection over its bounds. A document bigger than the whole cap is refused
(BadValue), as is ``size`` without ``capped`` (InvalidOptions 72).

Readers go through :func:`natural_rows` (forward or backward, strictly after a position), which a
tailable cursor uses with a fresh snapshot per batch.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import bson

from node.engine.errors import INVALID_OPTIONS, MongoError, bad_value
from node.engine.storage import ReadTxn, WriteTxn

CAPMETA = "capmeta"
MAX_CAPPED_SIZE = 1 << 50  # 1 PiB, as MongoDB
MIN_CAPPED_SIZE = 4096
_META = struct.Struct(">QQQQQQ")
_POS = struct.Struct(">Q")


def natural_table(ns: str) -> str:
    return f"capn:{ns}"


def position_table(ns: str) -> str:
    return f"capp:{ns}"


def encode_position(pos: int) -> bytes:
    return _POS.pack(pos)


def decode_position(raw: bytes) -> int:
    return int(_POS.unpack(raw)[0])


@dataclass
class CappedState:
    """One capped collection's counters and bounds (the ``capmeta`` row)."""

    next_pos: int
    size: int
    count: int
    max_size: int
    max_docs: int
    trimmed: int = 0
    """The newest position removed to stay within the bounds (a reader behind it lost its
    place: CappedPositionLost)."""

    def over(self) -> bool:
        return self.size > self.max_size or (self.max_docs > 0 and self.count > self.max_docs)


def _invalid(msg: str) -> MongoError:
    return MongoError(INVALID_OPTIONS, msg, code_name="InvalidOptions")


def _number(options: Mapping[str, Any], name: str) -> int | None:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MongoError(14, f"BSON field 'create.{name}' is the wrong type", code_name="TypeMismatch")
    if isinstance(value, float) and not -(2.0**63) <= value < 2.0**63:  # NaN fails both
        raise bad_value(f"BSON field 'create.{name}' must be a finite number in the 64-bit "
                        f"integer range, not {value!r}")
    return int(value)


def parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The catalog options of ``create`` (``capped``, ``size``, ``max``) checked as MongoDB
    checks them; returns the normalised options (``size`` rounded up to 256 bytes, at least
    4096; ``max`` 0 when absent). Options of a non-capped collection pass through unchanged."""
    capped = bool(options.get("capped"))
    size = _number(options, "size")
    max_docs = _number(options, "max")
    if not capped:
        if size or max_docs:
            raise _invalid("the 'size' and 'max' fields are only valid when 'capped' is true")
        return dict(options)
    if size is None:
        raise _invalid("the 'size' field is required when 'capped' is true")
    if size < 0:
        raise bad_value("size has to be >= 0")
    if size > MAX_CAPPED_SIZE:
        raise bad_value("size cannot exceed 1 PiB")
    if max_docs is not None and max_docs < 0:
        max_docs = 0  # MongoDB treats a negative max as "no max"
    if max_docs is not None and max_docs >= 1 << 31:
        raise bad_value("max must be less than 2^31")
    size = max(MIN_CAPPED_SIZE, (size + 255) // 256 * 256)
    out = {k: v for k, v in options.items() if k not in ("capped", "size", "max")}
    out.update(capped=True, size=size)
    if max_docs:
        out["max"] = max_docs
    return out


def any_capped(txn: ReadTxn) -> bool:
    return next(iter(txn.scan(CAPMETA)), None) is not None


def load(txn: ReadTxn, ns: str) -> CappedState | None:
    raw = txn.get(CAPMETA, ns.encode())
    return None if raw is None else CappedState(*_META.unpack(raw))


def save(txn: WriteTxn, ns: str, state: CappedState) -> None:
    txn.put(CAPMETA, ns.encode(), _META.pack(state.next_pos, state.size, state.count,
                                              state.max_size, state.max_docs, state.trimmed))


def make_capped(txn: WriteTxn, ns: str, options: Mapping[str, Any]) -> None:
    """Start capping ``ns`` (empty) with the bounds of normalised ``options``."""
    save(txn, ns, CappedState(1, 0, 0, int(options["size"]), int(options.get("max") or 0)))


def on_drop(txn: WriteTxn, ns: str) -> None:
    txn.delete(CAPMETA, ns.encode())
    txn.drop_table(natural_table(ns))
    txn.drop_table(position_table(ns))


def on_rename(txn: WriteTxn, src: str, dst: str) -> None:
    """Carry the capping of ``src`` (order and counters) to ``dst`` (before ``src`` is dropped)."""
    state = load(txn, src)
    if state is None:
        return
    save(txn, dst, state)
    for table in (natural_table, position_table):
        for key, value in list(txn.scan(table(src))):
            txn.put(table(dst), key, value)


Remover = Callable[[bytes, dict[str, Any]], None]
"""Removes one record's index entries (and tells the change observer), given key and doc."""


def on_write(
    txn: WriteTxn,
    table: str,
    ns: str,
    state: CappedState,
    old_doc: Mapping[str, Any] | None,
    new_doc: Mapping[str, Any] | None,
    record_key: bytes,
    remove_entries: Remover,
) -> None:
    """Keep order and counters in step with one record change (called before the record is
    written); an insert or update past the bounds removes the oldest other documents."""
    if new_doc is None:  # delete
        raw = txn.get(table, record_key)
        pos_raw = txn.get(position_table(ns), record_key)
        if pos_raw is not None:
            txn.delete(natural_table(ns), pos_raw)
            txn.delete(position_table(ns), record_key)
        state.count -= 1
        state.size -= len(raw) if raw is not None else 0
        save(txn, ns, state)
        return
    new_size = len(bson.encode(new_doc))
    if new_size > state.max_size:
        raise bad_value(f"document of {new_size} bytes is larger than the capped size "
                        f"{state.max_size} of {ns}")
    if old_doc is None:
        pos = encode_position(state.next_pos)
        state.next_pos += 1
        txn.put(natural_table(ns), pos, record_key)
        txn.put(position_table(ns), record_key, pos)
        state.count += 1
        state.size += new_size
    else:
        raw = txn.get(table, record_key)
        state.size += new_size - (len(raw) if raw is not None else 0)
    _trim(txn, table, ns, state, record_key, remove_entries)
    save(txn, ns, state)


def _trim(txn: WriteTxn, table: str, ns: str, state: CappedState, keep: bytes,
          remove_entries: Remover) -> None:
    """Remove the oldest documents (never ``keep``) while ``state`` is over its bounds."""
    nat = natural_table(ns)
    while state.over():
        victim = None
        for pos, key in txn.scan(nat):
            if key != keep:
                victim = (pos, key)
                break
        if victim is None:
            return
        pos, key = victim
        raw = txn.get(table, key)
        txn.delete(nat, pos)
        txn.delete(position_table(ns), key)
        state.trimmed = max(state.trimmed, decode_position(pos))
        state.count -= 1
        if raw is not None:
            state.size -= len(raw)
            remove_entries(key, bson.decode(raw))
            txn.delete(table, key)


def natural_rows(
    txn: ReadTxn, ns: str, table: str, *, after: int = 0, reverse: bool = False,
    before: int | None = None,
) -> Iterator[tuple[int, bytes, bytes]]:
    """``(position, record key, BSON)`` in natural order: forward strictly after ``after``, or
    backward (``reverse``) strictly before ``before`` (None: from the newest)."""
    nat = natural_table(ns)
    if reverse:
        rows = txn.scan(nat, b"", None if before is None else encode_position(before),
                        reverse=True)
    else:
        rows = txn.scan(nat, encode_position(after + 1))
    for pos_raw, key in rows:
        raw = txn.get(table, key)
        if raw is not None:
            yield decode_position(pos_raw), key, raw


def first_position(txn: ReadTxn, ns: str) -> int | None:
    """The oldest position still held (None: the collection is empty)."""
    row = next(iter(txn.scan(natural_table(ns))), None)
    return None if row is None else decode_position(row[0])

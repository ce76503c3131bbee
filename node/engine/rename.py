"""Renaming a collection (MongoDB's ``renameCollection``) inside one write transaction.

:func:`rename_collection` moves everything a collection owns from ``src_db.src_coll`` to
``dst_db.dst_coll``: its records (``docs:<ns>``), every index's entries table
(``idx:<ns>:<name>``), its index catalog entry (``idxcat``) and its catalog entry
(``catalog``), then drops the source. Index entries and records do not embed the namespace, so
they are copied byte for byte; unique indexes keep being enforced under the new name. Renames
across databases are allowed, as MongoDB allows them. Given the caller's write transaction (the
state machine applies each log entry in one), the rename is all or nothing.

Errors are MongoDB's: InvalidNamespace 73 for bad names, IllegalOperation 20 for renaming a
collection to itself or renaming ``system.*`` collections, NamespaceNotFound 26 when the source
does not exist, NamespaceExists 48 when the target exists and ``drop_target`` is false.
"""

from __future__ import annotations

import itertools
from typing import Any

from node.engine import capped as _capped
from node.engine import indexes as _indexes
from node.engine.database import Engine, check_collection_name, check_db_name
from node.engine.errors import (
    MongoError,
    illegal_operation,
    invalid_namespace,
    namespace_exists,
    namespace_not_found,
)
from node.engine.storage import WriteTxn, put_rows

_COPY_CHUNK = 1024


def split_namespace(ns: Any, which: str) -> tuple[str, str]:
    """``"db.coll"`` -> ``("db", "coll")``; InvalidNamespace (73) naming ``which`` (``source``
    or ``target``) when it is not a valid full namespace."""
    if not isinstance(ns, str) or "." not in ns:
        raise invalid_namespace(f"Invalid {which} namespace: {ns}")
    db, _, coll = ns.partition(".")
    try:
        check_db_name(db)
        check_collection_name(db, coll)
    except MongoError as exc:
        raise invalid_namespace(f"Invalid {which} namespace: {ns}") from exc
    return db, coll


def check_rename(src_db: str, src_coll: str, dst_db: str, dst_coll: str) -> None:
    """The checks that need no data: names valid, not the same, not ``system.*``."""
    split_namespace(f"{src_db}.{src_coll}", "source")
    split_namespace(f"{dst_db}.{dst_coll}", "target")
    if (src_db, src_coll) == (dst_db, dst_coll):
        raise illegal_operation("Can't rename a collection to itself")
    for which, db, coll in (("source", src_db, src_coll), ("target", dst_db, dst_coll)):
        if coll.startswith("system."):
            raise illegal_operation(f"error with {which} namespace: cannot write to '{db}.{coll}'")


def rename_collection(
    engine: Engine,
    txn: WriteTxn,
    src_db: str,
    src_coll: str,
    dst_db: str,
    dst_coll: str,
    *,
    drop_target: bool = False,
) -> None:
    """Move ``src_db.src_coll`` (records, indexes, catalog entries) to ``dst_db.dst_coll``
    inside ``txn``; with ``drop_target`` an existing target is dropped first."""
    check_rename(src_db, src_coll, dst_db, dst_coll)
    entry = engine.catalog_entry(src_db, src_coll, txn=txn)
    if entry is None:
        raise namespace_not_found(f"Source collection {src_db}.{src_coll} does not exist")
    if engine.catalog_entry(dst_db, dst_coll, txn=txn) is not None:
        if not drop_target:
            raise namespace_exists("target namespace exists")
        engine.drop_collection(dst_db, dst_coll, txn=txn)
    _copy_table(txn, _indexes.docs_table(src_db, src_coll), _indexes.docs_table(dst_db, dst_coll))
    for spec in _indexes.load_indexes(txn, src_db, src_coll):
        if not spec.is_id:
            _copy_table(txn, spec.table(src_db, src_coll), spec.table(dst_db, dst_coll))
    raw_indexes = txn.get(_indexes.CATALOG_TABLE, _ns_key(src_db, src_coll))
    if raw_indexes is not None:
        txn.put(_indexes.CATALOG_TABLE, _ns_key(dst_db, dst_coll), raw_indexes)
    moved = dict(entry, db=dst_db, name=dst_coll)
    engine.put_catalog_entry(txn, dst_db, dst_coll, moved)
    _capped.on_rename(txn, f"{src_db}.{src_coll}", f"{dst_db}.{dst_coll}")
    engine.drop_collection(src_db, src_coll, txn=txn)
    txn.delete(_indexes.CATALOG_TABLE, _ns_key(src_db, src_coll))  # engines without indexes


def _ns_key(db: str, coll: str) -> bytes:
    return f"{db}.{coll}".encode()


def _copy_table(txn: WriteTxn, src: str, dst: str) -> None:
    """Copy every row of table ``src`` into ``dst`` (in chunks, in key order)."""
    start = b""
    while True:
        rows = list(itertools.islice(txn.scan(src, start), _COPY_CHUNK))
        if not rows:
            return
        put_rows(txn, dst, rows)
        if len(rows) < _COPY_CHUNK:
            return
        start = rows[-1][0] + b"\x00"

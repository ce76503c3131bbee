"""The catalog and the engine's entry point: databases and collections over one KVStore.

:class:`Engine` owns the store and the catalog (table ``catalog``: key ``b"<db>.<coll>"``,
value BSON ``{db, name, options}``; index engineers may add fields to the entry). A database
exists while it has a collection; collections are created lazily on the first write.

Usage::

    engine = Engine(MemoryStore())
    users = engine["app"]["users"]             # Database, then Collection
    users.insert([ensure_id({"name": "x"})])
    engine.collection("app", "users").find({"name": "x"})

Every method taking ``txn`` runs inside the caller's write (or read) transaction when given
one (the replica-set state machine applies each log entry in one), else opens its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import bson

from node.engine import capped as _capped
from node.engine.collection import (
    ChangeObserver,
    Collection,
    IndexMaintainer,
    Ownership,
    QueryPlanner,
    docs_table,
    index_table_prefix,
)
from node.engine.errors import invalid_namespace, namespace_exists
from node.engine.storage import KVStore, ReadTxn, WriteTxn

CATALOG = "catalog"
_BAD_DB_CHARS = frozenset('/\\. "$\0')
MAX_DB_NAME_BYTES = 64


def check_db_name(db: str) -> None:
    """MongoDB's database-name rules (code 73 InvalidNamespace)."""
    if not isinstance(db, str) or not db:
        raise invalid_namespace("Invalid database name: ''")
    if not _BAD_DB_CHARS.isdisjoint(db):
        raise invalid_namespace(f"Invalid database name: '{db}'")
    if len(db.encode()) >= MAX_DB_NAME_BYTES:
        raise invalid_namespace(f"db name is too long: '{db}'")


def check_collection_name(db: str, coll: str) -> None:
    """MongoDB's collection-name rules (code 73 InvalidNamespace)."""
    if not isinstance(coll, str) or not coll or coll.startswith(".") or "\0" in coll:
        raise invalid_namespace(f"Invalid namespace specified '{db}.{coll}'")
    if "$" in coll:
        raise invalid_namespace(f"Invalid collection name: {coll}")


_NOTHING_WRITTEN: set[str] = set()  # never filled: handed out when no capped write happened


def _catalog_key(db: str, coll: str) -> bytes:
    return f"{db}.{coll}".encode()


class Engine:
    """The document engine over ``store``; optional ``indexes``/``planner``/``ownership`` plug
    in the index maintainer, the query planner and a shard's ownership filter (see
    :mod:`node.engine.collection`)."""

    def __init__(
        self,
        store: KVStore,
        *,
        indexes: IndexMaintainer | None = None,
        planner: QueryPlanner | None = None,
        ownership: Ownership | None = None,
        changes: ChangeObserver | None = None,
    ) -> None:
        self.store = store
        self.indexes = indexes
        self.planner = planner
        self.ownership = ownership
        self.changes = changes
        self._any_capped: bool | None = None
        """Whether the store may hold a capped collection (None: not looked yet); writes skip
        every capped check while it is False."""
        self.capped_writes: set[str] = set()
        """Capped namespaces written since :meth:`take_capped_writes` (filled inside write
        transactions, read after they commit: tailable cursors waiting for data wake up)."""

    def take_capped_writes(self) -> set[str]:
        if not self.capped_writes:
            return _NOTHING_WRITTEN
        written, self.capped_writes = self.capped_writes, set()
        return written

    def reload(self) -> None:
        """The store was replaced (a snapshot installed): forget what was learnt of it."""
        self._any_capped = None

    def capped_state(self, txn: ReadTxn, ns: str) -> _capped.CappedState | None:
        """The counters of capped ``ns`` (None: not capped); cheap while nothing is capped."""
        flag = self._any_capped
        if flag is None:
            flag = self._any_capped = _capped.any_capped(txn)
        if not flag:
            return None
        return _capped.load(txn, ns)

    # -- handles --------------------------------------------------------------------------------
    def database(self, name: str) -> Database:
        check_db_name(name)
        return Database(self, name)

    def __getitem__(self, name: str) -> Database:
        return self.database(name)

    def collection(self, db: str, coll: str) -> Collection:
        """The collection ``db.coll`` (names validated; nothing is created)."""
        check_db_name(db)
        check_collection_name(db, coll)
        return Collection(self, db, coll)

    # -- catalog --------------------------------------------------------------------------------
    def _read(self, txn: ReadTxn | None) -> Any:
        if txn is not None:
            return _Borrowed(txn)
        return self.store.read()

    def _writing(self, txn: WriteTxn | None) -> Any:
        if txn is not None:
            return _Borrowed(txn)
        return self.store.write()

    def catalog_entry(
        self, db: str, coll: str, *, txn: ReadTxn | None = None
    ) -> dict[str, Any] | None:
        """The catalog entry of ``db.coll`` or None when the collection does not exist."""
        with self._read(txn) as r:
            raw = r.get(CATALOG, _catalog_key(db, coll))
        return None if raw is None else bson.decode(raw)

    def put_catalog_entry(
        self, txn: WriteTxn, db: str, coll: str, entry: Mapping[str, Any]
    ) -> None:
        """Replace the catalog entry of ``db.coll`` (for index metadata)."""
        txn.put(CATALOG, _catalog_key(db, coll), bson.encode(entry))

    def _ensure_collection(self, txn: WriteTxn, db: str, coll: str) -> bool:
        """Create ``db.coll`` in the catalog if missing; True when it was created."""
        if txn.get(CATALOG, _catalog_key(db, coll)) is not None:
            return False
        check_db_name(db)
        check_collection_name(db, coll)
        self.put_catalog_entry(txn, db, coll, {"db": db, "name": coll, "options": {}})
        return True

    def create_collection(
        self,
        db: str,
        coll: str,
        options: Mapping[str, Any] | None = None,
        *,
        txn: WriteTxn | None = None,
    ) -> None:
        """Explicit create; NamespaceExists (48) when it exists already."""
        check_db_name(db)
        check_collection_name(db, coll)
        with self._writing(txn) as w:
            if w.get(CATALOG, _catalog_key(db, coll)) is not None:
                raise namespace_exists(f"Collection {db}.{coll} already exists.")
            opts = _capped.parse_options(options or {})
            entry = {"db": db, "name": coll, "options": opts}
            self.put_catalog_entry(w, db, coll, entry)
            if opts.get("capped"):
                self._any_capped = True
                _capped.make_capped(w, f"{db}.{coll}", opts)

    def _entries(self, r: ReadTxn, db: str | None = None) -> Iterator[dict[str, Any]]:
        start = b"" if db is None else f"{db}.".encode()
        end = None if db is None else f"{db}/".encode()  # "/" is the byte after "."
        for _, raw in r.scan(CATALOG, start, end):
            yield bson.decode(raw)

    def namespaces(self, *, txn: ReadTxn | None = None) -> list[tuple[str, str]]:
        """``(db, collection)`` of every collection, in catalog order (reads no data)."""
        with self._read(txn) as r:
            return [(e["db"], e["name"]) for e in self._entries(r)]

    def list_collections(self, db: str, *, txn: ReadTxn | None = None) -> list[dict[str, Any]]:
        """``[{name, type, options, info}]`` of ``db``'s collections, by name."""
        with self._read(txn) as r:
            return [
                {
                    "name": e["name"],
                    "type": "collection",
                    "options": e.get("options", {}),
                    "info": {"readOnly": False},
                }
                for e in self._entries(r, db)
            ]

    def collection_names(self, db: str, *, txn: ReadTxn | None = None) -> list[str]:
        return [c["name"] for c in self.list_collections(db, txn=txn)]

    def list_databases(self, *, txn: ReadTxn | None = None) -> list[dict[str, Any]]:
        """``[{name, sizeOnDisk, empty}]`` of databases that have collections, by name."""
        with self._read(txn) as r:
            sizes: dict[str, int] = {}
            for e in self._entries(r):
                ns = f"{e['db']}.{e['name']}"
                size = sum(len(v) for _, v in r.scan(docs_table(ns)))
                sizes[e["db"]] = sizes.get(e["db"], 0) + size
        return [
            {"name": name, "sizeOnDisk": size, "empty": size == 0}
            for name, size in sorted(sizes.items())
        ]

    def drop_collection(self, db: str, coll: str, *, txn: WriteTxn | None = None) -> bool:
        """Drop ``db.coll`` with its records and indexes; False when it did not exist."""
        ns = f"{db}.{coll}"
        with self._writing(txn) as w:
            if w.get(CATALOG, _catalog_key(db, coll)) is None:
                return False
            if self.indexes is not None:
                self.indexes.on_drop(w, ns)
            w.drop_table(docs_table(ns))
            prefix = index_table_prefix(ns)
            for table in w.tables():
                if table.startswith(prefix):
                    w.drop_table(table)
            w.delete(CATALOG, _catalog_key(db, coll))
            if self._any_capped is not False:
                _capped.on_drop(w, ns)
            return True

    def drop_database(self, db: str, *, txn: WriteTxn | None = None) -> bool:
        """Drop every collection of ``db``; False when it had none."""
        with self._writing(txn) as w:
            names = [e["name"] for e in self._entries(w, db)]
            for name in names:
                self.drop_collection(db, name, txn=w)
            return bool(names)


class Database:
    """A database handle: ``db["users"]`` / ``db.collection("users")`` give collections."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name

    def __repr__(self) -> str:
        return f"Database({self.name!r})"

    def collection(self, name: str) -> Collection:
        return self.engine.collection(self.name, name)

    def __getitem__(self, name: str) -> Collection:
        return self.collection(name)

    def list_collections(self, *, txn: ReadTxn | None = None) -> list[dict[str, Any]]:
        return self.engine.list_collections(self.name, txn=txn)

    def collection_names(self, *, txn: ReadTxn | None = None) -> list[str]:
        return self.engine.collection_names(self.name, txn=txn)

    def create_collection(
        self, name: str, options: Mapping[str, Any] | None = None, *, txn: WriteTxn | None = None
    ) -> Collection:
        self.engine.create_collection(self.name, name, options, txn=txn)
        return self.collection(name)

    def drop_collection(self, name: str, *, txn: WriteTxn | None = None) -> bool:
        return self.engine.drop_collection(self.name, name, txn=txn)

    def drop(self, *, txn: WriteTxn | None = None) -> bool:
        return self.engine.drop_database(self.name, txn=txn)


class _Borrowed:
    """A context manager handing out a transaction the caller owns (no commit, no abort)."""

    def __init__(self, txn: Any) -> None:
        self._txn = txn

    def __enter__(self) -> Any:
        return self._txn

    def __exit__(self, *exc: object) -> None:
        return None

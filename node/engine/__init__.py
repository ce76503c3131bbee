"""The document engine: BSON values and their order, queries, updates, projection, sort, and
collections over an ordered transactional key-value store (see docs/architecture.md).

Import from the submodules; this package re-exports only the most used entry points.
"""

# read side: errors, values and their order, matcher, projection, sort
# write side: updates, collections, the engine over a store
from node.engine.collection import Collection, ensure_id
from node.engine.database import Database, Engine
from node.engine.errors import MongoError
from node.engine.matcher import Matcher
from node.engine.memory_store import MemoryStore
from node.engine.projection import Projection
from node.engine.sorting import Sort, sort_key
from node.engine.updater import Update, upsert_seed
from node.engine.values import MISSING, SortKey, compare, values_equal

__all__ = [
    "MISSING",
    "Collection",
    "Database",
    "Engine",
    "Matcher",
    "MemoryStore",
    "MongoError",
    "Projection",
    "Sort",
    "SortKey",
    "Update",
    "compare",
    "ensure_id",
    "sort_key",
    "upsert_seed",
    "values_equal",
]

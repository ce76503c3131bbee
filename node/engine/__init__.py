"""The document engine: BSON values and their order, queries, updates, projection, sort, and
collections over an ordered transactional key-value store (see docs/architecture.md).

Import from the submodules; this package re-exports only the most used entry points.
"""

from node.engine.memory_store import MemoryStore

__all__ = ["MemoryStore"]

# read side: errors, values and their order, matcher, projection, sort
from node.engine.errors import MongoError
from node.engine.matcher import Matcher
from node.engine.projection import Projection
from node.engine.sorting import Sort, sort_key
from node.engine.values import MISSING, SortKey, compare, values_equal

__all__ += [
    "MISSING",
    "Matcher",
    "MongoError",
    "Projection",
    "Sort",
    "SortKey",
    "compare",
    "sort_key",
    "values_equal",
]

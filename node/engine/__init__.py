"""The document engine: BSON values and their order, queries, updates, projection, sort, and
collections over an ordered transactional key-value store (see docs/architecture.md).

Import from the submodules; this package re-exports only the most used entry points.
"""

from node.engine.memory_store import MemoryStore

__all__ = ["MemoryStore"]

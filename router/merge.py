"""Merging shard results: k-way merge of sorted streams (by the memcomparable sort keys the
shards attach, or computed here from the documents with the engine's own sort), and the
combination of counts and distinct values. Pure.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from node.engine.sorting import Sort
from node.engine.values import hash_key

SORT_KEY = "$sortKey"


def _shard_key(doc: dict[str, Any]) -> bytes:
    return bytes(doc[SORT_KEY])


def merge_sorted(streams: Sequence[Iterable[dict[str, Any]]], *,
                 key: Callable[[dict[str, Any]], bytes] = _shard_key,
                 strip: bool = True) -> Iterator[dict[str, Any]]:
    """One stream in sort order from streams each already in that order. ``key`` gives a
    document's sort key as bytes (default: the ``$sortKey`` a shard attached, removed from
    the document on the way out unless ``strip`` is False). Ties keep the streams' order."""
    merged = heapq.merge(*streams, key=key)
    if not strip:
        return merged
    return ({k: v for k, v in doc.items() if k != SORT_KEY} for doc in merged)


def sort_key_of(sort: Sort) -> Callable[[dict[str, Any]], bytes]:
    """A merge key computed from the documents themselves (aggregation results)."""
    return sort.key_bytes


def concat(streams: Sequence[Iterable[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Unsorted results: each shard's in turn."""
    return itertools.chain.from_iterable(streams)


def skip_limit(docs: Iterator[dict[str, Any]], skip: int, limit: int
               ) -> Iterator[dict[str, Any]]:
    """``skip`` then at most ``limit`` (0: no limit) of ``docs``."""
    return itertools.islice(docs, skip, skip + limit if limit else None)


def merge_counts(counts: Iterable[int], skip: int, limit: int) -> int:
    """The count of a query over shards each asked with ``limit = skip + limit``."""
    n = max(sum(counts) - skip, 0)
    return min(n, limit) if limit else n


def merge_distinct(lists: Iterable[Iterable[Any]]) -> list[Any]:
    """Distinct values of several shards, equal values (``1`` and ``1.0``) once."""
    seen: set[Any] = set()
    out: list[Any] = []
    for values in lists:
        for value in values:
            h = hash_key(value)
            if h not in seen:
                seen.add(h)
                out.append(value)
    return out

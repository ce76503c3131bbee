"""What a shard measures of its chunks for the balancer: documents and bytes per owned chunk,
split points at a target size, and a chunk's highest ``_id``. Reads only, in one snapshot;
the records of a collection are keyed by ``_id`` in order, so each answer is one range scan.
"""

from __future__ import annotations

from typing import Any

import bson
from bson.codec_options import CodecOptions

from node.engine.collection import docs_table
from node.sharding.chunks import KeyRange
from node.sharding.ownership import CollectionOwnership

CODEC = CodecOptions(document_class=dict, tz_aware=True)


def _id_of(raw: bytes) -> Any:
    return bson.decode(bytes(raw), codec_options=CODEC)["_id"]


def chunk_sizes(txn: Any, own: CollectionOwnership) -> list[dict[str, Any]]:
    """``{min, max, count, bytes}`` for every chunk ``own`` says this shard owns."""
    table = docs_table(own.ns)
    out = []
    for lo, hi in own.chunks:
        rng = KeyRange.of(lo, hi)
        count = size = 0
        for _, raw in txn.scan(table, rng.lo, rng.hi):
            count += 1
            size += len(raw)
        out.append({"min": lo, "max": hi, "count": count, "bytes": size})
    return out


def split_points(txn: Any, ns: str, lo: Any, hi: Any, max_bytes: int, max_docs: int = 0
                 ) -> list[Any]:
    """``_id``s cutting ``[lo, hi)`` into pieces of about half ``max_bytes`` (or half
    ``max_docs`` documents) each, as MongoDB's splitVector does; empty when the range holds
    too little to split, or one ``_id`` value only."""
    rng = KeyRange.of(lo, hi)
    half_bytes = max(1, max_bytes // 2)
    half_docs = max_docs // 2 if max_docs else 0
    points: list[Any] = []
    size = count = 0
    first = True
    for _, raw in txn.scan(docs_table(ns), rng.lo, rng.hi):
        if not first and (size >= half_bytes or (half_docs and count >= half_docs)):
            points.append(_id_of(raw))
            size = count = 0
        first = False
        size += len(raw)
        count += 1
    return points


def max_id(txn: Any, ns: str, lo: Any, hi: Any) -> tuple[bool, Any]:
    """(True, the highest ``_id`` in ``[lo, hi)``), or (False, None) when it is empty."""
    rng = KeyRange.of(lo, hi)
    for _, raw in txn.scan(docs_table(ns), rng.lo, rng.hi, reverse=True):
        return True, _id_of(raw)
    return False, None

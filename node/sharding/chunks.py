"""Chunks: ranges of ``_id`` and their versions, as the config servers, shards and routers all
see them. Pure values, no I/O.

A chunk covers ``[min, max)`` of ``_id`` in MongoDB's value order (``MinKey``/``MaxKey`` at the
ends). Ranges are compared in record-key space: the memcomparable encoding of ``_id``
(:func:`node.engine.keystring.encode_key`) is exactly how a shard keys its records, so "does
this shard own this document" is a byte comparison. ``lo``/``hi`` are the encoded bounds,
``hi is None`` meaning ``MaxKey`` (unbounded above).

Versions are MongoDB's chunk versions: an ``epoch`` (an ObjectId that changes when a
collection is sharded anew) and ``major.minor``: a migration bumps the major version, a split
the minor. A collection's version is the highest of its chunks'; a shard's version of a
collection is the highest of the chunks it owns. Two versions are *write compatible* when
epoch and major version agree (a split does not change who owns what).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bson import MaxKey, MinKey, ObjectId, Timestamp

from node.engine.keystring import encode_key

UNSHARDED_EPOCH = ObjectId(b"\x00" * 12)


def key_bytes(value: Any) -> bytes:
    """A chunk bound in record-key space (``MinKey`` is the empty string)."""
    if isinstance(value, MinKey):
        return b""
    return encode_key(value)


def upper_bytes(value: Any) -> bytes | None:
    """A chunk's upper bound in record-key space (``MaxKey``: None, unbounded)."""
    if isinstance(value, MaxKey):
        return None
    return encode_key(value)


@dataclass(frozen=True, order=True)
class ChunkVersion:
    """``major.minor`` under an ``epoch``; ordered by (major, minor) within one epoch."""

    major: int
    minor: int
    epoch: ObjectId = UNSHARDED_EPOCH

    @property
    def is_unsharded(self) -> bool:
        return self.epoch == UNSHARDED_EPOCH

    def write_compatible(self, other: ChunkVersion) -> bool:
        return self.epoch == other.epoch and self.major == other.major

    def newer_than(self, other: ChunkVersion) -> bool:
        """Same epoch and a higher version (what a refresh can learn)."""
        return self.epoch == other.epoch and (self.major, self.minor) > (other.major,
                                                                         other.minor)

    def timestamp(self) -> Timestamp:
        """The ``lastmod`` field of a ``config.chunks`` document."""
        return Timestamp(self.major, self.minor)

    def to_doc(self) -> dict[str, Any]:
        """The ``shardVersion`` field a router sends: ``{e: epoch, v: Timestamp(major, minor)}``."""
        return {"e": self.epoch, "v": self.timestamp()}

    @staticmethod
    def from_doc(doc: Any) -> ChunkVersion:
        if not isinstance(doc, Mapping) or not isinstance(doc.get("e"), ObjectId) \
                or not isinstance(doc.get("v"), Timestamp):
            raise ValueError(f"not a shard version: {doc!r}")
        v = doc["v"]
        return ChunkVersion(v.time, v.inc, doc["e"])

    @staticmethod
    def from_lastmod(lastmod: Timestamp, epoch: ObjectId) -> ChunkVersion:
        return ChunkVersion(lastmod.time, lastmod.inc, epoch)

    def __str__(self) -> str:
        return f"{self.major}|{self.minor}||{self.epoch}"


UNSHARDED = ChunkVersion(0, 0, UNSHARDED_EPOCH)
"""The version a router sends for a collection it believes is not sharded."""


@dataclass(frozen=True)
class KeyRange:
    """``[lo, hi)`` in record-key space (``hi`` None: up to MaxKey)."""

    lo: bytes
    hi: bytes | None

    def contains(self, key: bytes) -> bool:
        return self.lo <= key and (self.hi is None or key < self.hi)

    def overlaps(self, lo: bytes, hi: bytes | None) -> bool:
        """Whether ``[lo, hi)`` meets this range."""
        return (hi is None or self.lo < hi) and (self.hi is None or lo < self.hi)

    @staticmethod
    def of(min_value: Any, max_value: Any) -> KeyRange:
        return KeyRange(key_bytes(min_value), upper_bytes(max_value))


@dataclass(frozen=True)
class Chunk:
    """One ``config.chunks`` document: bounds (values and bytes), owner, version."""

    min: Any
    max: Any
    shard: str
    version: ChunkVersion

    @property
    def range(self) -> KeyRange:
        return KeyRange.of(self.min, self.max)

    def to_doc(self, ns: str, uuid: Any, chunk_id: ObjectId) -> dict[str, Any]:
        """The ``config.chunks`` document (``chunk_id`` chosen by the config primary)."""
        return {"_id": chunk_id, "ns": ns, "uuid": uuid, "min": {"_id": self.min},
                "max": {"_id": self.max}, "shard": self.shard,
                "lastmod": self.version.timestamp(), "lastmodEpoch": self.version.epoch}

    @staticmethod
    def from_doc(doc: Mapping[str, Any], epoch: ObjectId) -> Chunk:
        return Chunk(doc["min"]["_id"], doc["max"]["_id"], str(doc["shard"]),
                     ChunkVersion.from_lastmod(doc["lastmod"], epoch))


class RangeSet:
    """Disjoint ranges in record-key space, searchable in O(log n): what a shard owns."""

    __slots__ = ("_his", "_los")

    def __init__(self, ranges: Iterable[KeyRange]) -> None:
        ordered = sorted(ranges, key=lambda r: r.lo)
        self._los = [r.lo for r in ordered]
        self._his = [r.hi for r in ordered]

    def __len__(self) -> int:
        return len(self._los)

    def contains(self, key: bytes) -> bool:
        i = bisect.bisect_right(self._los, key) - 1
        if i < 0:
            return False
        hi = self._his[i]
        return hi is None or key < hi

    def ranges(self) -> list[KeyRange]:
        return [KeyRange(lo, hi) for lo, hi in zip(self._los, self._his)]

    def overlaps(self, lo: bytes, hi: bytes | None) -> bool:
        return any(r.overlaps(lo, hi) for r in self.ranges())

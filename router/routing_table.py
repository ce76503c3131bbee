"""A sharded collection's routing table: its chunks (ranges of ``_id`` in record-key space)
and the shard owning each, with the collection's version. Immutable: a refresh builds a new
table; nothing edits one in place. Pure, no I/O.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.engine.keystring import encode_key
from node.sharding.chunks import Chunk, ChunkVersion, KeyRange

Range = tuple[bytes, bytes | None]


@dataclass(frozen=True)
class RoutingTable:
    """Chunks of ``ns`` sorted by their lower bound, covering all of ``_id``'s space."""

    ns: str
    epoch: Any
    uuid: Any
    chunks: tuple[Chunk, ...]
    ranges: tuple[KeyRange, ...] = field(repr=False)
    los: tuple[bytes, ...] = field(repr=False)
    version: ChunkVersion

    @staticmethod
    def build(ns: str, coll_doc: Mapping[str, Any], chunk_docs: Iterable[Mapping[str, Any]]
              ) -> RoutingTable:
        epoch = coll_doc["lastmodEpoch"]
        chunks = [Chunk.from_doc(d, epoch) for d in chunk_docs]
        pairs = sorted(((c.range, c) for c in chunks), key=lambda p: p[0].lo)
        if not pairs:
            raise ValueError(f"{ns} has no chunks")
        ranges = tuple(r for r, _ in pairs)
        ordered = tuple(c for _, c in pairs)
        if ranges[0].lo != b"" or ranges[-1].hi is not None or any(
                a.hi != b.lo for a, b in itertools.pairwise(ranges)):
            raise ValueError(f"the chunks of {ns} do not cover the key space exactly")
        version = max(c.version for c in ordered)
        return RoutingTable(ns, epoch, coll_doc.get("uuid"), ordered, ranges,
                            tuple(r.lo for r in ranges), version)

    def chunk_index(self, key: bytes) -> int:
        return bisect.bisect_right(self.los, key) - 1

    def chunk_for_key(self, key: bytes) -> Chunk:
        return self.chunks[self.chunk_index(key)]

    def chunk_for_id(self, value: Any) -> Chunk:
        return self.chunk_for_key(encode_key(value))

    def shard_for_id(self, value: Any) -> str:
        return self.chunk_for_id(value).shard

    def chunks_in(self, ranges: Sequence[Range] | None) -> list[Chunk]:
        """The chunks meeting any of ``ranges`` (None: every chunk), in key order."""
        if ranges is None:
            return list(self.chunks)
        hit: set[int] = set()
        for lo, hi in ranges:
            first = max(self.chunk_index(lo), 0)
            i = first
            while i < len(self.chunks) and (hi is None or self.ranges[i].lo < hi):
                if self.ranges[i].overlaps(lo, hi):
                    hit.add(i)
                i += 1
        return [self.chunks[i] for i in sorted(hit)]

    def shards_in(self, ranges: Sequence[Range] | None) -> list[str]:
        """The shards owning a chunk that meets ``ranges``, in the order of their first chunk."""
        return list(dict.fromkeys(c.shard for c in self.chunks_in(ranges)))

    def shards(self) -> list[str]:
        return sorted({c.shard for c in self.chunks})

    def shard_version(self, shard: str) -> ChunkVersion:
        """What ``shard`` should own: the highest version of its chunks (``major|0`` of the
        collection when it owns none)."""
        mine = [c.version for c in self.chunks if c.shard == shard]
        if mine:
            return max(mine)
        return ChunkVersion(self.version.major, 0, self.epoch)

    def chunk_at(self, lo: Any, hi: Any) -> Chunk | None:
        """The chunk with exactly these bounds, if any."""
        rng = KeyRange.of(lo, hi)
        i = self.chunk_index(rng.lo)
        if i >= 0 and self.ranges[i] == rng:
            return self.chunks[i]
        return None

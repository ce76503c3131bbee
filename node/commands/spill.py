"""``allowDiskUse``: ``$sort`` and ``$group`` past their memory limit spill sorted runs to a
temporary directory (``HELOGALE_SPILL_DIR``, else the system's) and merge them, instead of
failing with 292. Runs are BSON files; the directory is removed when the merge ends (or the
generator is closed).

* :func:`external_sort`: chunks of at most ``max_bytes`` are sorted in memory and written as
  runs keyed by the memcomparable sort key bytes (:meth:`Sort.key_bytes`, the same bytes the
  router merges shards by); the runs merge with :func:`heapq.merge`, ties in input order.
* :class:`GroupSpill`: the groups held when memory runs out are written as a run sorted by
  the group key's bytes, each group as its accumulators' partial states; at the end runs
  merge by key and each key's partials merge (the same mechanism as the router's merge).
"""

from __future__ import annotations

import heapq
import itertools
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

import bson

from node.engine.keystring import encode_key
from node.engine.sorting import Sort, bson_size

_LEN = struct.Struct("<I")


def spill_dir() -> str:
    return tempfile.mkdtemp(prefix="helogale-spill-", dir=os.environ.get("HELOGALE_SPILL_DIR"))


def _write_run(path: str, rows: Iterable[tuple[bytes, dict[str, Any]]]) -> None:
    with open(path, "wb") as f:
        for key, doc in rows:
            data = bson.encode({"k": key, "d": doc})
            f.write(_LEN.pack(len(data)))
            f.write(data)


def _read_run(path: str) -> Iterator[tuple[bytes, dict[str, Any]]]:
    with open(path, "rb") as f:
        while True:
            head = f.read(4)
            if not head:
                return
            (n,) = _LEN.unpack(head)
            row = bson.decode(f.read(n))
            yield bytes(row["k"]), row["d"]


def external_sort(docs: Iterable[dict[str, Any]], sort: Sort, max_bytes: int
                  ) -> Iterator[dict[str, Any]]:
    """``docs`` in ``sort`` order using at most about ``max_bytes`` of memory."""
    directory: str | None = None
    runs: list[str] = []
    held: list[tuple[bytes, int, dict[str, Any]]] = []
    size = 0
    counter = itertools.count()
    try:
        for d in docs:
            held.append((sort.key_bytes(d), next(counter), d))
            size += bson_size(d)
            if size > max_bytes:
                if directory is None:
                    directory = spill_dir()
                held.sort(key=lambda t: (t[0], t[1]))
                path = os.path.join(directory, f"run{len(runs)}")
                _write_run(path, ((k + struct.pack(">Q", i), doc) for k, i, doc in held))
                runs.append(path)
                held, size = [], 0
        held.sort(key=lambda t: (t[0], t[1]))
        if not runs:
            for _, _, d in held:
                yield d
            return
        memory = ((k + struct.pack(">Q", i), d) for k, i, d in held)
        for _, d in heapq.merge(*[_read_run(p) for p in runs], memory, key=lambda r: r[0]):
            yield d
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


class GroupSpill:
    """Spilled ``$group`` runs (see the module docstring)."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.directory = spill_dir()
        self.runs: list[str] = []

    def write(self, groups: dict[Any, tuple[Any, list[Any]]]) -> None:
        if not groups:
            return
        rows = sorted(((encode_key(key), {"_id": key, "p": [a.partial() for a in accs]})
                       for key, accs in groups.values()), key=lambda r: r[0])
        path = os.path.join(self.directory, f"run{len(self.runs)}")
        _write_run(path, rows)
        self.runs.append(path)

    def merged(self, partial: bool) -> Iterator[dict[str, Any]]:
        from node.commands.pipeline import finish_group
        try:
            merged = heapq.merge(*[_read_run(p) for p in self.runs], key=lambda r: r[0])
            for _, rows in itertools.groupby(merged, key=lambda r: r[0]):
                rows_l = list(rows)
                key = rows_l[0][1]["_id"]
                accs = [a.new() for _, a in self.spec.fields]
                for _, row in rows_l:
                    for acc, p in zip(accs, row["p"], strict=True):
                        acc.merge(p)
                yield finish_group(key, self.spec, accs, partial)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

"""Best-first nearest search over a 2d index: the engine's flat ``$near``.

The planner's GEO_NEAR_2D stage asks :func:`nearest` for matching documents in order of
distance from a point. A 2d index key is a Morton code, so a quadtree cell (``shift`` bits
coarser than full resolution, see :class:`node.engine.geo.GeoBounds`) is one contiguous key
range. One heap holds cells, index entries and fetched documents, ordered by a lower bound of
their distance (the exact distance for a document):

* a popped cell whose range holds at most :data:`SPLIT_AT` entries (read with a cap), or a
  full-resolution cell, has its entries pushed, each with the lower bound of its own
  full-resolution cell (from the key alone, without fetching the document); a fuller cell is
  split into its four children. The cells read follow the local density of the data, with no
  count of the collection needed;
* a popped entry is *visited*: the caller fetches the document, runs the whole filter and
  returns its exact distance and row (``None``: no match, already visited, not owned here);
  the document goes back on the heap at that distance;
* a popped document is the next result: everything left on the heap is at least as far (on
  equal distances cells and entries pop before documents, and documents by record key), so
  the results come out exactly as a brute-force scan sorted by (distance, record key) gives
  them. Nothing farther than ``max_distance`` is pushed.

The search is lazy: the caller stops pulling after its limit, so per query the work grows
with the number of results and the cells around them, and with the depth of the quadtree (the
logarithm of the collection's size), not with the collection.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from node.engine.geo import GeoBounds, Point, deinterleave, sphere_box_bound
from node.engine.keystring import decode_uint, encode_key, prefix_successor

SPLIT_AT = 16
"""A cell holding more index entries than this is split into its four children."""

SPHERE_SLACK = 1e-9
"""Radians taken off spherical lower bounds against rounding."""

SPLIT_BLIND = 4 * SPLIT_AT
"""A cell estimated to hold more entries than this is split without reading it."""

T = TypeVar("T")
Scan = Callable[[bytes, "bytes | None", "int | None"], list[tuple[bytes, bytes]]]
Cell = tuple[int, int, int, float]  # cx, cy, shift, estimated entries (inf: unknown)
_CELL, _DOC = 0, 1  # on equal distance, cells and entries pop before documents


def nearest(
    bounds: GeoBounds,
    center: Point,
    max_distance: float | None,
    scan: Scan,
    visit: Callable[[bytes, bytes], tuple[float, bytes, T] | None],
    radii: list[float] | None = None,
    *,
    spherical: bool = False,
) -> Iterator[T]:
    """Matching rows nearest-first, ties by record key. ``scan(start, end, cap)`` returns
    the index entries ``(key, value)`` in ``[start, end)``, at most ``cap`` of them (None:
    all); ``visit(key, value)`` gives ``(distance, record key, row)`` of the entry's document
    if it matches and was not visited before; ``radii`` collects distances the search reached
    (each more than twice the last), for explain's ``searchRadii``. ``spherical``: the
    coordinates are (longitude, latitude) degrees and distances great-circle radians
    (``$nearSphere``), bounded by :func:`node.engine.geo.sphere_box_bound`.

    A cell that overflows gives an estimate of its entries from how far into its key range
    the first ``SPLIT_AT + 1`` reach; its children inherit a quarter of it, and are split
    unread while that stays above :data:`SPLIT_BLIND` (a wrong guess costs empty reads
    further down, never a missed entry)."""
    cx0, cy0 = center
    lo_edge = bounds.min
    unit = (bounds.max - bounds.min) / (1 << bounds.bits)  # a full-resolution cell's side
    limit = math.inf if max_distance is None else max_distance
    order = itertools.count()
    # (distance bound, kind, tie-break, cell | row | None, entry key, entry value)
    heap: list[tuple[float, int, Any, Any, bytes, bytes]] = []
    push = heapq.heappush

    if spherical:
        def lower(x1: float, y1: float, size: float) -> float:
            return sphere_box_bound(center, (x1, y1, x1 + size, y1 + size)) - SPHERE_SLACK
    else:
        slack = bounds.slack()

        def lower(x1: float, y1: float, size: float) -> float:
            dx = max(x1 - cx0, 0.0, cx0 - x1 - size)
            dy = max(y1 - cy0, 0.0, cy0 - y1 - size)
            return math.hypot(dx, dy) - slack

    def push_children(cx: int, cy: int, shift: int, estimate: float) -> None:
        shift -= 1
        size = unit * (1 << shift)
        for x in (2 * cx, 2 * cx + 1):
            for y in (2 * cy, 2 * cy + 1):
                lb = lower(lo_edge + x * size, lo_edge + y * size, size)
                if lb <= limit:
                    push(heap, (lb, _CELL, next(order), (x, y, shift, estimate), b"", b""))

    def push_entries(entries: Iterable[tuple[bytes, bytes]]) -> None:
        for key, value in entries:
            kx, ky = deinterleave(decode_uint(key))
            lb = lower(lo_edge + kx * unit, lo_edge + ky * unit, unit)
            if lb <= limit:
                push(heap, (lb, _CELL, next(order), None, key, value))

    heap.append((0.0, _CELL, next(order), (0, 0, bounds.bits, math.inf), b"", b""))
    while heap:
        lb, kind, _, item, key, value = heapq.heappop(heap)
        if kind == _DOC:
            yield item
            continue
        if radii is not None and lb > 0 and (not radii or lb > 2 * radii[-1]):
            radii.append(lb)
        if item is None:
            found = visit(key, value)
            if found is not None:
                push(heap, (found[0], _DOC, found[1], found[2], b"", b""))
            continue
        cx, cy, shift, estimate = item
        if shift and estimate != math.inf and estimate > SPLIT_BLIND:
            push_children(cx, cy, shift, estimate / 4)
            continue
        lo, hi = bounds.cell_range(cx, cy, shift)
        start, end = encode_key(lo), prefix_successor(encode_key(hi))
        if not shift:
            push_entries(scan(start, end, None))
            continue
        entries = scan(start, end, SPLIT_AT + 1)
        if len(entries) <= SPLIT_AT:
            push_entries(entries)
            continue
        reached = decode_uint(entries[-1][0]) - lo + 1
        push_children(cx, cy, shift, (SPLIT_AT + 1) * (hi - lo + 1) / reached / 4)

"""Which ``_id`` ranges a query can touch: the router's targeting rule. Pure.

Built on the planner's own bound analysis (the same intervals the ``_id`` index would scan),
so targeting and the shards' plans agree: ``_id`` equality and ``$in`` give points, ranges
give ranges, anything else (or ``_id`` only under ``$or``) gives None: every shard of the
collection. :func:`note_targets` counts each routed operation for the metrics endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bson.regex import Regex

from node.engine.planner import field_intervals, filter_predicates, key_ranges
from node.ops.counters import COUNTERS
from router.routing_table import Range


def id_ranges(filt: Mapping[str, Any] | None) -> list[Range] | None:
    """Record-key ranges of ``_id`` that can hold matches (empty: none can; None: all)."""
    if not filt:
        return None
    try:
        preds = filter_predicates(filt).get("_id")
    except Exception:  # a malformed filter: the shards answer it with MongoDB's error
        return None
    if preds is None:
        return None
    intervals = field_intervals(preds, multikey=False)
    return [(start, end) for start, end in key_ranges([(intervals, False)])]


def exact_id(filt: Mapping[str, Any] | None) -> tuple[bool, Any]:
    """(True, value) when the filter pins ``_id`` to one value by equality (``{_id: v}`` or
    ``{_id: {$eq: v}}``, at the top or in a top-level ``$and``). ``{_id: /re/}`` is no
    equality: it matches strings (``{_id: {$eq: /re/}}`` is one, to the regex itself)."""
    if not filt:
        return False, None
    if "_id" in filt:
        value = filt["_id"]
        if isinstance(value, Mapping):
            if set(value) == {"$eq"}:
                return True, value["$eq"]
            if any(str(k).startswith("$") for k in value):
                return False, None
        if isinstance(value, Regex | re.Pattern):
            return False, None
        return True, value
    for sub in filt.get("$and", ()) if isinstance(filt.get("$and"), list) else ():
        if isinstance(sub, Mapping):
            found, value = exact_id(sub)
            if found:
                return True, value
    return False, None


def note_targets(shards: list[str], of: int) -> list[str]:
    """Count a routed operation by how many of the collection's ``of`` shards it targets
    (``router_targeted_total{kind=single|multi|broadcast}``); returns ``shards``."""
    kind = "single" if len(shards) <= 1 else "broadcast" if len(shards) >= of else "multi"
    COUNTERS.inc("router_targeted", kind=kind)
    return shards

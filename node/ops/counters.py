"""Process-wide event counters for work that is not a command: migrations and their phases,
range deletions, balancer rounds, draining, router targeting and StaleConfig retries.

``COUNTERS.inc("migration_phases", phase="cloning")``; the metrics endpoint exports each
name as ``helogale_<name>_total`` with its labels. A process is one node or one router, so
one table per process is what Prometheus scrapes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

HELP = {
    "migrations": "chunk migrations this shard donated, by outcome",
    "migration_phases": "migration phases entered by this donor",
    "migration_docs_cloned": "documents cloned to recipients",
    "range_deletions": "queued ranges deleted to the end",
    "range_deletion_docs": "documents deleted by the range deleter",
    "balancer_rounds": "balancer rounds run by this config server",
    "balancer_moves": "chunk moves the balancer started",
    "router_targeted": "routed operations by how many shards they targeted",
    "router_stale_config_retries": "StaleConfig answers retried after a refresh",
    "router_routing_refreshes": "routing metadata refreshes",
    "snapshots_sent_bytes": "state snapshot bytes sent to lagging members",
    "command_link_commands": "commands run for routers and other sets over command links",
}


class Counters:
    """name -> (sorted label pairs) -> count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            table = self._data.setdefault(name, {})
            table[key] = table.get(key, 0) + amount

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._data.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def items(self) -> Iterator[tuple[str, dict[tuple[tuple[str, str], ...], float]]]:
        with self._lock:
            snapshot = {k: dict(v) for k, v in self._data.items()}
        yield from sorted(snapshot.items())


COUNTERS = Counters()

"""The Grafana dashboard of compose/monitoring, generated from one list of panels (so the
tests can check every query against what the processes really serve).

``python -m node.ops.dashboard > compose/monitoring/grafana/dashboards/helogale.json``
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

PANELS: list[tuple[str, str, str]] = [
    # (title, PromQL, unit)
    ("Commands per second by name", "sum by (command) (rate(helogale_commands_total[1m]))",
     "ops"),
    ("Failed commands per second", 'sum by (command, outcome) '
     '(rate(helogale_commands_total{outcome!="ok"}[1m]))', "ops"),
    ("Command latency p99", "histogram_quantile(0.99, sum by (le, command) "
     "(rate(helogale_command_duration_seconds_bucket[1m])))", "s"),
    ("Opcounters per second", "sum by (type) (rate(helogale_opcounters_total[1m]))", "ops"),
    ("Raft term", "max by (set) (helogale_raft_term)", "none"),
    ("Commit index", "max by (set) (helogale_raft_commit_index)", "none"),
    ("Applied index behind commit", "max by (set, instance) (helogale_raft_commit_index"
     " - helogale_raft_applied_index)", "none"),
    ("Elections", "sum by (set) (increase(helogale_raft_elections_total[5m]))", "none"),
    ("Proposal latency p99", "histogram_quantile(0.99, sum by (le, set) "
     "(rate(helogale_raft_proposal_duration_seconds_bucket[1m])))", "s"),
    ("WAL fsync latency p99", "histogram_quantile(0.99, sum by (le, set) "
     "(rate(helogale_raft_fsync_duration_seconds_bucket[1m])))", "s"),
    ("WAL size", "sum by (set, instance) (helogale_raft_wal_bytes)", "bytes"),
    ("Follower lag (entries)", "max by (set, peer) (helogale_raft_peer_lag_entries)", "none"),
    ("Follower lag (seconds)", "max by (set, peer) (helogale_raft_peer_lag_seconds)", "s"),
    ("Members up (seen by the primary)", "sum by (set) (helogale_raft_peer_up) + 1", "none"),
    ("Snapshots sent", "sum by (set) (increase(helogale_raft_snapshots_sent_total[5m]))",
     "none"),
    ("Open cursors", "sum by (instance) (helogale_cursors_open)", "none"),
    ("Connections", "sum by (instance) (helogale_connections)", "none"),
    ("Router targeting", "sum by (kind) (rate(helogale_router_targeted_total[1m]))", "ops"),
    ("StaleConfig retries", "sum(rate(helogale_router_stale_config_retries_total[1m]))",
     "ops"),
    ("Migrations by outcome", "sum by (outcome) (increase(helogale_migrations_total[1h]))",
     "none"),
    ("Migration phases entered", "sum by (phase) "
     "(increase(helogale_migration_phases_total[1h]))", "none"),
    ("Migrations running", "sum(helogale_migrations_running)", "none"),
    ("Range deletions pending", "sum(helogale_range_deletions_pending)", "none"),
    ("Balancer rounds", "sum(increase(helogale_balancer_rounds_total[1h]))", "none"),
    ("Shards draining", "max(helogale_shards_draining)", "none"),
    ("Slow operations", "sum by (instance) (rate(helogale_slow_operations_total[5m]))", "ops"),
]

_NAME = re.compile(r"\bhelogale_[a-z0-9_]+")


def metric_names(query: str) -> set[str]:
    """The metric names a query uses (histogram ``_bucket`` names as served)."""
    return set(_NAME.findall(query))


def dashboard() -> dict[str, Any]:
    panels = []
    for i, (title, expr, unit) in enumerate(PANELS):
        panels.append({
            "id": i + 1, "type": "timeseries", "title": title,
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "gridPos": {"h": 8, "w": 8, "x": 8 * (i % 3), "y": 8 * (i // 3)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": "A", "expr": expr,
                         "datasource": {"type": "prometheus", "uid": "prometheus"}}],
        })
    return {"uid": "helogale", "title": "Helogale cluster", "schemaVersion": 39,
            "version": 1, "refresh": "10s", "time": {"from": "now-30m", "to": "now"},
            "tags": ["helogale"], "panels": panels}


def main() -> int:
    json.dump(dashboard(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

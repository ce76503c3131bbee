"""The Prometheus endpoint every process serves on ``--metrics-port`` (``prometheus_client``).

Nothing is counted twice: a :class:`Collector` reads, at scrape time, what the process already
keeps (the dispatcher's :class:`~node.ops.stats.CommandStats`, the Raft driver's
:class:`~node.ops.raft_metrics.RaftMetrics`, :data:`~node.ops.counters.COUNTERS`, cursors,
connections) and turns it into metric families. :class:`MetricsServer` serves ``/metrics``
and any extra pages (a router's status page) from one small threaded HTTP server.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from node.ops.counters import COUNTERS, HELP
from node.ops.stats import Histogram

log = logging.getLogger("helogale.metrics")

ENV_PORT = "HELOGALE_METRICS_PORT"
ENV_HOST = "HELOGALE_METRICS_HOST"
Source = Callable[[], Iterable[Metric]]


def default_port() -> int | None:
    """``HELOGALE_METRICS_PORT`` (None when unset or empty)."""
    raw = os.environ.get(ENV_PORT, "").strip()
    return int(raw) if raw else None


def default_host() -> str:
    return os.environ.get(ENV_HOST, "").strip() or "127.0.0.1"


def histogram(name: str, doc: str, hist: Histogram, labels: Mapping[str, str] | None = None,
              family: HistogramMetricFamily | None = None) -> HistogramMetricFamily:
    labels = dict(labels or {})
    fam = family or HistogramMetricFamily(name, doc, labels=list(labels))
    fam.add_metric(list(labels.values()), hist.cumulative(), hist.sum)
    return fam


def command_metrics(ops: Any) -> Iterator[Metric]:
    """Commands by name and outcome, their latency, opcounters, running ops, slow ops."""
    outcomes, hists = ops.stats.snapshot()
    total = CounterMetricFamily("helogale_commands", "commands served, by name and outcome",
                                labels=["command", "outcome"])
    for (name, outcome), n in sorted(outcomes.items()):
        total.add_metric([name, outcome], n)
    yield total
    lat = HistogramMetricFamily("helogale_command_duration_seconds",
                                "command latency (a deferred write until its reply settles)",
                                labels=["command"])
    for name, h in sorted(hists.items()):
        lat.add_metric([name], h.cumulative(), h.sum)
    yield lat
    opc = CounterMetricFamily("helogale_opcounters", "MongoDB's opcounters", labels=["type"])
    for k, v in ops.stats.opcounters_doc().items():
        opc.add_metric([k], int(v))
    yield opc
    yield GaugeMetricFamily("helogale_operations_running", "commands running now",
                            value=len(ops.registry))
    yield CounterMetricFamily("helogale_slow_operations", "operations slower than slowms",
                              value=ops.stats.slow_ops)


def connection_metrics(ops: Any, cursors: Any) -> Iterator[Metric]:
    current = total = 0
    for source in ops.connection_sources:
        c = source()
        current += int(c.get("current", 0))
        total += int(c.get("totalCreated", 0))
    yield GaugeMetricFamily("helogale_connections", "client connections open", value=current)
    yield CounterMetricFamily("helogale_connections_created", "client connections accepted",
                              value=total)
    yield GaugeMetricFamily("helogale_cursors_open", "server cursors open",
                            value=len(cursors))


def counter_metrics() -> Iterator[Metric]:
    """:data:`~node.ops.counters.COUNTERS` as ``helogale_<name>_total`` (every known name,
    so a dashboard finds the family before the first event)."""
    tables = dict(COUNTERS.items())
    for name in sorted(set(HELP) | set(tables)):
        table = tables.get(name, {})
        names = sorted({k for key in table for k, _ in key})
        fam = CounterMetricFamily(f"helogale_{name}", HELP.get(name, name), labels=names)
        for key, value in sorted(table.items()):
            d = dict(key)
            fam.add_metric([d.get(n, "") for n in names], value)
        yield fam


def raft_metrics(replica: Any) -> Iterator[Metric]:
    """A member's Raft numbers: term, indexes, role, elections, latencies, WAL, peers' lag."""
    raft, m = replica.raft, replica.raft_metrics
    labels = {"set": replica.config.replset}
    lv = list(labels.values())

    def gauge(name: str, doc: str, value: float) -> Metric:
        g = GaugeMetricFamily(name, doc, labels=list(labels))
        g.add_metric(lv, value)
        return g

    def counter(name: str, doc: str, value: float) -> Metric:
        c = CounterMetricFamily(name, doc, labels=list(labels))
        c.add_metric(lv, value)
        return c

    view = raft.view
    yield gauge("helogale_raft_term", "current Raft term", view.term)
    yield gauge("helogale_raft_commit_index", "highest committed log index", view.commit)
    yield gauge("helogale_raft_applied_index", "highest applied log index",
                replica.applied_index())
    yield gauge("helogale_raft_last_index", "last log index", view.last_index)
    yield gauge("helogale_raft_is_leader", "1 on the primary", 1 if replica.is_primary() else 0)
    yield counter("helogale_raft_elections", "elections this member started", raft.elections)
    yield counter("helogale_raft_leader_terms", "terms this member led", raft.leader_terms)
    yield counter("helogale_raft_snapshots_sent", "snapshots sent to lagging members",
                  m.snapshots_sent)
    yield counter("helogale_raft_snapshots_installed", "snapshots installed from a leader",
                  m.snapshots_installed)
    yield counter("helogale_raft_proposals_failed", "proposals refused or dropped",
                  m.proposals_failed)
    yield histogram("helogale_raft_proposal_duration_seconds",
                    "proposal to applied on this member", m.proposals, labels)
    yield histogram("helogale_raft_fsync_duration_seconds", "WAL group-commit flushes",
                    m.fsync, labels)
    yield gauge("helogale_raft_wal_bytes", "bytes of the Raft log directory",
                _dir_bytes(raft.storage.path))
    if m.last_election is not None:
        yield gauge("helogale_raft_last_election_timestamp_seconds",
                    "wall time a new term last began", m.last_election)
    if replica.is_primary():
        status = replica.repl_set_get_status()
        lag_e = GaugeMetricFamily("helogale_raft_peer_lag_entries",
                                  "entries a member lacks (on the primary)",
                                  labels=["set", "peer"])
        lag_s = GaugeMetricFamily("helogale_raft_peer_lag_seconds",
                                  "age of the oldest entry a member lacks (on the primary)",
                                  labels=["set", "peer"])
        up = GaugeMetricFamily("helogale_raft_peer_up", "member answered recently",
                               labels=["set", "peer"])
        for doc in status["members"]:
            if doc.get("self"):
                continue
            peer = str(doc["name"])
            up.add_metric([*lv, peer], float(doc.get("health", 0)))
            if "lagEntries" in doc:
                lag_e.add_metric([*lv, peer], int(doc["lagEntries"]))
            if doc.get("lagSecs") is not None:
                lag_s.add_metric([*lv, peer], float(doc["lagSecs"]))
        yield from (up, lag_e, lag_s)


def _dir_bytes(path: Any) -> int:
    total = 0
    try:
        for entry in os.scandir(path):
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    except OSError:
        pass
    return total


class Collector:
    """A prometheus_client collector over callables yielding metric families."""

    def __init__(self, sources: Iterable[Source]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            try:
                yield from source()
            except Exception:  # a scrape must never take the process down
                log.exception("metrics source failed")


def registry_of(sources: Iterable[Source]) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Collector(sources))  # type: ignore[arg-type]
    return reg


Page = Callable[[], tuple[str, bytes]]
"""A page: () -> (content type, body)."""


class MetricsServer:
    """``/metrics`` (and ``pages``) over HTTP on ``host:port`` (port 0: any free port)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 pages: Mapping[str, Page] | None = None) -> None:
        self.registry = registry
        self.pages = dict(pages or {})
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/metrics":
                        ctype, body = CONTENT_TYPE_LATEST, generate_latest(server.registry)
                    elif path in server.pages:
                        ctype, body = server.pages[path]()
                    else:
                        self.send_error(404)
                        return
                except Exception:
                    log.exception("metrics page %s failed", path)
                    self.send_error(500)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http",
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""Assembles a router process: the config servers' connection, the metadata cache, the shard
calls, the dispatcher with the router's table, the gRPC command service and the MongoDB wire
protocol listener (the node's own transports, with the router's dispatcher behind them)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from node.commands.context import WIRE, RequestContext
from node.commands.cursors import REAP_INTERVAL_S, CursorRegistry
from node.commands.dispatcher import Dispatcher
from node.security.authz import Authorizer, RemoteUsers
from node.server.grpc_service import add_command_service, make_server
from node.server.periodic import Periodic
from node.sharding.remote import RemoteSets, set_internal_key, set_internal_tls, set_link_key
from raft.auth import load_keyfile
from raft.tls import REQUIRE, add_port
from router.catalog import CatalogCache
from router.commands.table import ROUTER_COMMANDS
from router.config import RouterConfig
from router.services import RouterServices
from router.shards import Shards

log = logging.getLogger("helogale.router")

REGISTER_EVERY_S = 10.0
"""Seconds between a router's ``config.mongos`` pings."""


class RouterApp:
    """One router process's moving parts."""

    def __init__(self, config: RouterConfig) -> None:
        self.config = config
        key = load_keyfile(config.keyfile) if config.keyfile else None
        if config.auth:  # every set this router reaches, it reaches as the cluster
            set_internal_key(key)
        tls = config.tls if config.tls.enabled else None
        if tls is not None:
            set_internal_tls(tls)
        set_link_key(key)  # command links to the members (not with TLS: see remote.py)
        self.remotes = RemoteSets()
        self.config_set = self.remotes.get(config.configdb)
        self.catalog = CatalogCache(self.config_set, self.remotes)
        self.shards = Shards(self.catalog)
        self.cursors = CursorRegistry(idle_timeout_s=config.cursor_timeout_s)
        self.services = RouterServices(self.catalog, self.shards, self.config_set,
                                       self.cursors, advertised=config.advertised)
        if config.auth:
            self.services.users = RemoteUsers(self.config_set, key)
            self.services.authz = Authorizer(self.services.users)
        self.dispatcher = Dispatcher(self.services, ROUTER_COMMANDS, slow_ms=config.slowms)
        self.grpc = make_server()
        self.command_service = add_command_service(self.grpc, self.dispatcher)
        if add_port(self.grpc, config.listen, tls) == 0:
            raise OSError(f"cannot listen on {config.listen}")
        self.wire: Any = None
        self.metrics: Any = None
        self._stopped = threading.Event()
        self._reaper = Periodic("cursor-reaper", self.cursors.reap, REAP_INTERVAL_S, log)

    def _start_wire(self) -> None:
        if self.config.wire_port is None:
            return
        from node.wire.labels import add_error_labels
        from node.wire.server import WireServer

        advertised = self.config.advertised_wire

        def handle(db: str, command: dict[str, Any], info: Any) -> dict[str, Any]:
            ctx = RequestContext(transport=WIRE, connection_id=info.connection_id,
                                 peer=info.peer, auth=info.session())
            reply = self.dispatcher.run(db, command, ctx)
            if reply.get("msg") == "isdbgrid" and advertised:
                reply["me"] = advertised
            return add_error_labels(self.dispatcher.is_retryable_write(command), reply)

        tls = self.config.tls
        self.wire = WireServer(handle, self.config.wire_listen_host, self.config.wire_port,
                               ssl_context=tls.server_ssl_context() if tls.enabled else None,
                               tls_only=tls.mode == REQUIRE)
        self.wire.start()
        wire = self.wire
        self.dispatcher.ops.connection_sources.append(lambda: {
            "current": wire.connections, "totalCreated": wire.created})

    def _start_metrics(self) -> None:
        """Metrics and the status page on ``--metrics-port``; register in config.mongos."""
        ops, service = self.dispatcher.ops, self.command_service
        ops.connection_sources.append(lambda: {"current": service.open_streams,
                                               "totalCreated": service.peers_seen})
        if self.config.metrics_port is None:
            return
        from node.ops import metrics
        from router.status_page import status_page

        svc = self.services

        def router_metrics() -> Any:
            from prometheus_client.core import CounterMetricFamily

            yield CounterMetricFamily("helogale_router_routing_refreshes",
                                      "routing metadata refreshes", value=svc.catalog.refreshes)

        sources: list[metrics.Source] = [
            lambda: metrics.command_metrics(ops),
            lambda: metrics.connection_metrics(ops, self.cursors),
            metrics.counter_metrics, router_metrics,
        ]
        self.metrics = metrics.MetricsServer(
            self.config.metrics_host, self.config.metrics_port, metrics.registry_of(sources),
            pages={"/": lambda: status_page(self.config.advertised),
                   "/status": lambda: status_page(self.config.advertised)}).start()
        ops.metrics_port = self.metrics.port
        log.info("metrics serving", extra={"fields": {"metrics_port": self.metrics.port}})

    def _register_loop(self) -> None:
        """Say this router is up in ``config.mongos`` (what ``helogale status`` lists)."""
        import datetime as _dt

        while True:
            doc = {"_id": self.config.advertised, "ping": _dt.datetime.now(_dt.UTC),
                   "up": int(time.time() - self.services.started_at),
                   "wireHost": self.config.advertised_wire,
                   "metricsPort": self.metrics.port if self.metrics is not None else None}
            try:
                self.config_set.command("config", {"update": "mongos", "updates": [
                    {"q": {"_id": doc["_id"]}, "u": doc, "upsert": True}]}, retry="safe")
            except Exception as exc:
                log.debug("router registration failed: %s", exc)
            if self._stopped.wait(REGISTER_EVERY_S):
                return

    def start(self) -> RouterApp:
        self.grpc.start()
        self._start_wire()
        self._start_metrics()
        self._reaper.start()
        threading.Thread(target=self._register_loop, name="mongos-register",
                         daemon=True).start()
        log.info("router serving", extra={"fields": {
            "listen": self.config.listen, "wire_port": self.config.wire_port,
            "configdb": self.config.configdb}})
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._reaper.stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self.wire is not None:
            self.wire.stop()
        self.grpc.stop(0.5).wait()
        self.command_service.close()
        self.cursors.close_all()
        self.shards.close()
        self.remotes.close()
        log.info("router stopped")

"""Assembles a router process: the config servers' connection, the metadata cache, the shard
calls, the dispatcher with the router's table, the gRPC command service and the MongoDB wire
protocol listener (the node's own transports, with the router's dispatcher behind them)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from node.commands.context import WIRE, RequestContext
from node.commands.cursors import REAP_INTERVAL_S, CursorRegistry
from node.commands.dispatcher import Dispatcher
from node.server.grpc_service import add_command_service, make_server
from node.server.periodic import Periodic
from node.sharding.remote import RemoteSets
from router.catalog import CatalogCache
from router.commands.table import ROUTER_COMMANDS
from router.config import RouterConfig
from router.services import RouterServices
from router.shards import Shards

log = logging.getLogger("helogale.router")


class RouterApp:
    """One router process's moving parts."""

    def __init__(self, config: RouterConfig) -> None:
        self.config = config
        self.remotes = RemoteSets()
        self.config_set = self.remotes.get(config.configdb)
        self.catalog = CatalogCache(self.config_set, self.remotes)
        self.shards = Shards(self.catalog)
        self.cursors = CursorRegistry(idle_timeout_s=config.cursor_timeout_s)
        self.services = RouterServices(self.catalog, self.shards, self.config_set,
                                       self.cursors, advertised=config.advertised)
        self.dispatcher = Dispatcher(self.services, ROUTER_COMMANDS)
        self.grpc = make_server()
        self.command_service = add_command_service(self.grpc, self.dispatcher)
        if self.grpc.add_insecure_port(config.listen) == 0:
            raise OSError(f"cannot listen on {config.listen}")
        self.wire: Any = None
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
                                 peer=info.peer)
            reply = self.dispatcher.run(db, command, ctx)
            if reply.get("msg") == "isdbgrid" and advertised:
                reply["me"] = advertised
            return add_error_labels(self.dispatcher.is_retryable_write(command), reply)

        self.wire = WireServer(handle, self.config.wire_listen_host, self.config.wire_port)
        self.wire.start()

    def start(self) -> RouterApp:
        self.grpc.start()
        self._start_wire()
        self._reaper.start()
        log.info("router serving", extra={"fields": {
            "listen": self.config.listen, "wire_port": self.config.wire_port,
            "configdb": self.config.configdb}})
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._reaper.stop()
        if self.wire is not None:
            self.wire.stop()
        self.grpc.stop(0.5).wait()
        self.command_service.close()
        self.cursors.close_all()
        self.shards.close()
        self.remotes.close()
        log.info("router stopped")

"""The asyncio client's view of the deployment: :class:`~helogale.topology.TopologyState`
(every rule: server types, members learned and dropped, stale primaries, routers, selection)
kept current by one monitor task per server instead of a thread, and a selection that waits
on the event loop.

Everything runs on the one event loop the client is used from, so the state needs no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from helogale.channel import Address
from helogale.errors import PyMongoError
from helogale.read_preferences import ReadPreference, ServerMode
from helogale.topology import MIN_HEARTBEAT_INTERVAL, ServerDescription, TopologyState


class AsyncMonitor:
    """A task sending ``hello`` to one server every ``heartbeat_frequency`` seconds (at once,
    rate-limited, when asked)."""

    def __init__(self, topology: AsyncTopology, address: Address) -> None:
        self._topology = topology
        self.address = address
        self._wake = asyncio.Event()
        self._stopped = False
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def request_check(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._task.cancel()

    async def join(self) -> None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    async def _loop(self) -> None:
        topology = self._topology
        while not self._stopped:
            await self._check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), topology.heartbeat_frequency)
            self._wake.clear()
            # rate limit: at most one check per MIN_HEARTBEAT_INTERVAL even when asked more often
            await asyncio.sleep(MIN_HEARTBEAT_INTERVAL)

    async def _check(self) -> None:
        topology = self._topology
        start = time.monotonic()
        try:
            channel = topology.channels.get(self.address)
            reply = await channel.run("admin", {"hello": 1}, timeout=topology.connect_timeout)
        except PyMongoError as exc:
            if not self._stopped:
                topology.on_check_failed(self.address, exc)
            return
        if not self._stopped:
            topology.on_reply(self.address, reply, time.monotonic() - start)


class AsyncTopology(TopologyState):
    """The deployment's view kept current by monitor tasks on the client's event loop."""

    def __init__(self, seeds: list[Address], channels: Any, **options: Any) -> None:
        super().__init__(seeds, channels, **options)
        self._lock = contextlib.nullcontext()
        self._changed: asyncio.Event | None = None

    def open(self) -> None:
        """Start the monitors (on the running event loop)."""
        self._open_locked()

    async def close(self) -> None:
        for monitor in self._take_monitors_locked():
            await monitor.join()

    def _new_monitor(self, address: Address) -> AsyncMonitor:
        return AsyncMonitor(self, address)

    def _notify_locked(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def select_server(
        self,
        read_preference: ServerMode = ReadPreference.PRIMARY,
        timeout: float | None = None,
        selector: Callable[[list[ServerDescription]], list[ServerDescription]] | None = None,
    ) -> ServerDescription:
        """A server for ``read_preference`` (the primary by default), waiting for one to appear."""
        self.channels.check_process()
        self.open()
        wait = self.server_selection_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while (server := self._select_locked(read_preference, selector)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._no_server_locked(read_preference, wait)
            if self._changed is None:
                self._changed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
        return server

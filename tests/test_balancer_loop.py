"""The balancer's pacing, without a cluster: after a round that moved or split something the
next one starts about a second later (MongoDB's short interval), not after the full interval."""

from __future__ import annotations

import time
from typing import Any

from node.local_cluster import wait_until
from node.sharding.balancer import BUSY_INTERVAL_S, Balancer


class _Config:
    """Just enough of a config server for the loop: no settings (the balancer is on)."""

    def _one(self, coll: str, filt: Any) -> None:
        return None


def test_a_busy_round_is_followed_by_another_soon() -> None:
    balancer = Balancer(_Config(), lambda: True, interval_s=60.0)
    started: list[float] = []

    def round_() -> None:
        started.append(time.monotonic())
        if len(started) == 1:
            balancer.chunks_moved += 1  # the first round moves a chunk; the next moves nothing

    balancer.run_round = round_  # type: ignore[method-assign]
    balancer.start()
    try:
        balancer.wake()  # as balancerStart does
        wait_until(lambda: len(started) >= 2, 10, "a second round without waiting 60 s")
    finally:
        balancer.stop()
    assert started[1] - started[0] < BUSY_INTERVAL_S + 2

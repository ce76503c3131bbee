"""``helogale ping`` and ``helogale add-shard`` (node/cluster_admin.py): retries with a fake
clock, and real answers from the shared sharded cluster."""

from __future__ import annotations

import io
from typing import Any

import pytest

from helogale.cli import main
from node import cluster_admin


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_add_shards_retries_until_the_router_answers_then_moves_on() -> None:
    clock = FakeClock()
    calls: list[tuple[str, Any]] = []
    answers = iter([{"ok": 0.0, "errmsg": "no primary"}, {"ok": 0.0, "errmsg": "no primary"},
                    {"ok": 1.0, "shardAdded": "s1"}, {"ok": 1.0, "shardAdded": "s2"}])

    def run(router: str, cmd: dict[str, Any], **_kw: Any) -> dict[str, Any]:
        calls.append((router, cmd["addShard"]))
        return next(answers)

    out = io.StringIO()
    assert cluster_admin.add_shards(["r1:1", "r2:2"], ["s1/a:1", "s2/b:1"], timeout=60,
                                    out=out, clock=clock, sleep=clock.sleep, run=run)
    # the routers are tried in turn; the second spec starts after the first was added
    assert calls == [("r1:1", "s1/a:1"), ("r2:2", "s1/a:1"), ("r1:1", "s1/a:1"),
                     ("r1:1", "s2/b:1")]
    assert len(clock.sleeps) == 2
    assert "s1 added via r1:1" in out.getvalue()
    assert "s2 added via r1:1" in out.getvalue()


def test_add_shards_gives_up_at_the_deadline_with_the_last_error() -> None:
    clock = FakeClock()

    def run(router: str, cmd: dict[str, Any], **_kw: Any) -> dict[str, Any]:
        return {"ok": 0.0, "errmsg": "cannot reach replica set"}

    out = io.StringIO()
    assert not cluster_admin.add_shards(["r:1"], ["s1/a:1"], timeout=10, out=out,
                                        clock=clock, sleep=clock.sleep, run=run)
    assert clock.now >= 10
    assert "gave up after 10 s: cannot reach replica set" in out.getvalue()


def test_ping_an_unreachable_address_fails_quickly() -> None:
    from node.local_cluster import free_ports

    ok, text = cluster_admin.ping(f"127.0.0.1:{free_ports(1)[0]}", timeout=0.5)
    assert not ok
    assert "no answer" in text
    assert main(["ping", "-q", "--timeout", "0.5", f"127.0.0.1:{free_ports(1)[0]}"]) == 1


@pytest.mark.cluster
def test_ping_and_add_shard_against_a_running_cluster(sharded: Any,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    router = sharded.routers[0].address
    assert main(["ping", router]) == 0
    assert capsys.readouterr().out.strip() == f"{router}: router"
    primary = sharded.shards[0].members[sharded.shards[0].wait_for_primary()].address
    assert main(["ping", primary]) == 0
    assert capsys.readouterr().out.strip() == f"{primary}: primary of shard1"
    # adding the shards again changes nothing
    before = sharded.router_command(0, {"listShards": 1})["shards"]
    specs = [sharded.connection_string(s) for s in sharded.shards]
    assert main(["add-shard", "--router", router, "--timeout", "30", *specs]) == 0
    assert sharded.router_command(0, {"listShards": 1})["shards"] == before

"""``helogale up``'s checks before anything starts (no processes): busy ports, a data directory
of the other shape, bad counts."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from helogale.cli import main
from node.local_cluster import LOOPBACK, free_ports
from node.up import run_up


def test_a_busy_port_is_refused_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:  # something (a mongod, say) on the first router wire port
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = run_up(str(tmp_path / "d"), port + 10, members=1, demo=False, shards=1,
                      routers=1)
    assert code == 2
    err = capsys.readouterr().err
    assert f"port(s) {port}" in err and "already in use" in err
    assert os.listdir(tmp_path / "d") == []  # nothing was started


@pytest.mark.parametrize("existing, shards, why", [
    ("cfg", 0, "holds a sharded cluster"),
    ("member1", 2, "holds a single replica set"),
    ("shard3", 2, "holds 3 shards"),
])
def test_a_data_directory_of_another_shape_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], existing: str, shards: int,
        why: str) -> None:
    for name in ("shard1", "shard2", existing) if existing.startswith("shard") else (existing,):
        (tmp_path / name).mkdir()
    assert run_up(str(tmp_path), free_ports(1)[0], shards=shards, demo=False) == 2
    assert why in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--routers", "11"], ["--routers", "0"], ["--shards", "-1"],
                                  ["--members", "0"]])
def test_bad_counts_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["up", *args])
    assert info.value.code == 2


def test_a_busy_metrics_port_is_refused_too(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Metrics are served at each gRPC port + 1000 (``--no-metrics``: not at all)."""
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        base = port - 1000  # the router's gRPC port: its metrics port is taken
        if base < 1024:
            pytest.skip("no room below the port the kernel gave")
        code = run_up(str(tmp_path / "d"), base, members=1, demo=False, shards=1, routers=1)
        assert code == 2
        assert f"port(s) {port} already in use" in capsys.readouterr().err

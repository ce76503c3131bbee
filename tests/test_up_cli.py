"""``helogale up``'s checks before anything starts (no processes): busy ports, a data directory
of the other shape, bad counts; the chunk size it gives a cluster."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from helogale.cli import main
from node.local_cluster import LOOPBACK, free_ports
from node.up import UP_CHUNK_MB, run_up, set_chunk_size


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
    listed = re.search(r"port\(s\) ([\d, ]+) already in use", err)
    assert listed and str(port) in listed.group(1).split(", ")
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
                                  ["--members", "0"], ["--chunk-size-mb", "0"],
                                  ["--chunk-size-mb", "1025"]])
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
        err = capsys.readouterr().err
        # other ports of the range may be busy too (unrelated processes on the machine)
        listed = re.search(r"port\(s\) ([\d, ]+) already in use", err)
        assert listed and str(port) in listed.group(1).split(", ")


class _Settings:
    """``config.settings`` behind a router, as :func:`set_chunk_size` uses it."""

    def __init__(self, chunksize: int | None = None) -> None:
        self.value = chunksize
        self.writes = 0

    def __call__(self, cmd: dict[str, Any]) -> dict[str, Any]:
        if "find" in cmd:
            batch = [] if self.value is None else [{"_id": "chunksize", "value": self.value}]
            return {"ok": 1.0, "cursor": {"firstBatch": batch}}
        (update,) = cmd["updates"]
        assert update["q"] == {"_id": "chunksize"} and update["upsert"]
        self.value = update["u"]["$set"]["value"]
        self.writes += 1
        return {"ok": 1.0, "n": 1}


def test_a_new_cluster_gets_the_up_chunk_size() -> None:
    settings = _Settings()
    assert set_chunk_size(settings, None) == UP_CHUNK_MB
    assert settings.value == UP_CHUNK_MB and settings.writes == 1


def test_a_restarted_cluster_keeps_its_chunk_size() -> None:
    settings = _Settings(chunksize=64)  # set through a router after an earlier `up`
    assert set_chunk_size(settings, None) == 64
    assert settings.value == 64 and settings.writes == 0


def test_an_explicit_chunk_size_is_written() -> None:
    settings = _Settings(chunksize=64)
    assert set_chunk_size(settings, 1) == 1
    assert settings.value == 1

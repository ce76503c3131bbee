"""``helogale up``: prints the URIs, runs the demo, stops cleanly on Ctrl-C; both shapes (a
sharded cluster by default, one replica set with ``--shards 0``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading

import pytest

from node.local_cluster import wait_until
from node.up import busy_ports

pytestmark = pytest.mark.cluster
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pick_base(below: int, above: int) -> int:
    """A ``--port`` with ``base-below .. base+above`` all free, below the ephemeral port range
    (where the machine's outgoing connections would take ports from under a fixed layout)."""
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(12_000 + below, 32_000 - above)
        if not busy_ports(list(range(base - below, base + above))):
            return base
    raise RuntimeError("no free block of ports")


class Up:
    """``helogale up ARGS`` in a subprocess (its own session, like a shell job), its stdout
    lines collected as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from helogale.cli import main; "
             "sys.exit(main(sys.argv[1:]))", "up", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            start_new_session=True)
        self.lines: list[str] = []
        self.err_lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err_lines.append(line.rstrip("\n"))

    def wait_for_lines(self, prefix: str, count: int, timeout: float) -> None:
        def enough() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"helogale up exited {self.proc.returncode}: "
                                     + "\n".join(self.err_lines))
            return sum(1 for x in self.lines if x.startswith(prefix)) >= count
        wait_until(enough, timeout, f"{count} lines starting {prefix!r}")

    def ctrl_c(self) -> int:
        """SIGINT to the whole process group, as a terminal's Ctrl-C; the exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(60)
        self._reader.join(5)
        return code


def test_up_prints_uri_runs_demo_and_stops_on_ctrl_c(tmp_path: object) -> None:
    base = pick_base(0, 9)
    data = os.path.join(str(tmp_path), "data")
    up = Up("--shards", "0", "--data", data, "--port", str(base))
    try:
        up.wait_for_lines("demo: found", 2, 120)
    finally:
        code = up.ctrl_c()
    lines = up.lines
    hosts = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
    assert lines[0] == f"helogale://{hosts}/?replicaSet=rs0"
    wire_hosts = ",".join(f"127.0.0.1:{base + 6 + i}" for i in range(3))
    assert lines[1] == f"mongodb://{wire_hosts}/?replicaSet=rs0"
    assert any(x.startswith("demo: inserted 3 documents") for x in lines)
    assert code == 0
    # every member process is gone and left its data behind for the next `up`
    assert {"member1", "member2", "member3"} <= set(os.listdir(data))
    assert not _processes_with(data)


def test_sharded_up_serves_both_clients_through_routers_and_stops(tmp_path: object) -> None:
    import pymongo

    import helogale

    base = pick_base(10, 130)
    data = os.path.join(str(tmp_path), "data")
    # small: one member per set (config, shard1, shard2) and two routers, five processes
    up = Up("--members", "1", "--shards", "2", "--routers", "2", "--data", data,
            "--port", str(base))
    try:
        up.wait_for_lines("demo: found", 5, 180)
        lines = up.lines
        assert lines[0] == f"helogale://127.0.0.1:{base},127.0.0.1:{base + 1}/"
        assert lines[1] == f"mongodb://127.0.0.1:{base - 10},127.0.0.1:{base - 9}/"
        # the demo moved half of demo.animals to the other shard
        assert "demo: shard1 holds 4 documents of demo.animals" in lines
        assert "demo: shard2 holds 4 documents of demo.animals" in lines
        with pymongo.MongoClient(lines[1], serverSelectionTimeoutMS=20000) as mc:
            mc.app.things.insert_one({"_id": "wire", "via": "pymongo"})
            assert mc.app.things.find_one({"_id": "wire"}) == {"_id": "wire", "via": "pymongo"}
            assert mc.topology_description.topology_type_name == "Sharded"
        with helogale.MongoClient(lines[0], serverSelectionTimeoutMS=20000) as hc:
            hc.app.things.insert_one({"_id": "grpc", "via": "helogale"})
            assert sorted(d["_id"] for d in hc.app.things.find()) == ["grpc", "wire"]
            assert hc.topology.topology_type == "Sharded"
        _a_fresh_load_spreads_by_itself(lines[0])
    finally:
        code = up.ctrl_c()
    assert code == 0
    assert {"cfg", "shard1", "shard2"} <= set(os.listdir(data))
    # members (their data dir is in their command line) and routers (the config set's address)
    assert not _processes_with(data)
    assert not _processes_with(f"cfg/127.0.0.1:{base + 100}")


def _a_fresh_load_spreads_by_itself(uri: str) -> None:
    """16 MiB inserted into a freshly sharded collection through the routers (client-made
    ObjectIds) end on both shards, within the balancer's rule (at most 3 chunk sizes apart),
    with nothing but `up`'s defaults (4 MiB chunks, a balancer round every 2 s)."""
    import helogale

    with helogale.MongoClient(uri, w="majority") as hc:
        hc.admin.command({"shardCollection": "load.docs", "key": {"_id": 1}})
        pad = "p" * 1000
        for _ in range(16):
            hc.load.docs.insert_many([{"pad": pad} for _ in range(1024)], ordered=False)

        def per_shard() -> dict[str, int]:
            stats = hc.load.command({"collStats": "docs"})
            return {s: int(v["count"]) for s, v in stats["shards"].items()}

        def balanced() -> bool:
            counts = per_shard()
            return len(counts) == 2 and min(counts.values()) > 1000 \
                and max(counts.values()) - min(counts.values()) <= 3 * 4 * 1024

        wait_until(balanced, 120, "the balancer to spread load.docs over both shards")
        assert hc.load.docs.count_documents({}) == 16 * 1024


def _processes_with(text: str) -> list[str]:
    return [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline_has(pid, text)]


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return text.encode() in fh.read()
    except OSError:
        return False


def _router_pid(config_port: int) -> int:
    pids = [p for p in _processes_with(f"cfg/127.0.0.1:{config_port}")
            if _cmdline_has(p, "router")]
    assert len(pids) == 1, pids
    return int(pids[0])


@pytest.mark.parametrize("restart", [True, False], ids=["supervised", "no-restart"])
def test_up_restarts_a_killed_router_unless_told_not_to(tmp_path: object, restart: bool) -> None:
    from node.cluster_admin import ping

    base = pick_base(10, 130)
    data = os.path.join(str(tmp_path), "data")
    args = ["--members", "1", "--shards", "1", "--routers", "1", "--no-demo", "--data", data,
            "--port", str(base)]
    up = Up(*args, *([] if restart else ["--no-restart"]))
    router = f"127.0.0.1:{base}"
    try:
        up.wait_for_lines("mongodb://", 1, 120)
        assert ping(router)[0]
        pid = _router_pid(base + 100)
        os.kill(pid, signal.SIGKILL)
        if restart:
            wait_until(lambda: any(f"router1 ({router}) exited (status -9); restarting in 0.5 s"
                                   in x for x in up.err_lines), 30, "the restart line")
            wait_until(lambda: ping(router, 1.0)[0], 60, "the router back")
            assert _router_pid(base + 100) != pid
            # adding the shard again through the restarted router changes nothing
            from helogale.cli import main
            assert main(["add-shard", "--router", router, "--timeout", "30",
                         f"shard1/127.0.0.1:{base + 110}"]) == 0
        else:
            with pytest.raises(TimeoutError):
                wait_until(lambda: ping(router, 0.5)[0], 5, "the router back")
            assert not any("restarting" in x for x in up.err_lines)
    finally:
        code = up.ctrl_c()
    assert code == 0
    assert not _processes_with(data)

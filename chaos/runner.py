"""One chaos run: start a replica set behind link proxies, run a workload from several client
processes while the nemesis follows its schedule, heal everything, read the final state, check
the history and write the report.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from chaos.history import History, pair
from chaos.nemesis import Nemesis
from chaos.netproxy import LinkMesh
from chaos.report import FaultWindow, RunReport
from chaos.schedule import expand_kinds, plan
from chaos.workloads import COLLECTION, make_workload
from helogale import MongoClient
from helogale.errors import PyMongoError
from node.local_cluster import LocalCluster, wait_until
from node.ops.progress import Progress, terminal

DATABASE = "jepsen"


@dataclass
class RunConfig:
    workload: str = "register"
    time: float = 60.0
    seed: int = 7
    faults: list[str] = field(default_factory=lambda: ["kill", "pause", "partition"])
    members: int = 3
    processes: int = 5
    election_timeout_ms: int | None = None
    node_args: list[str] = field(default_factory=list)  # e.g. a test-only unsafe switch
    data_dir: str | None = None
    fault_s: tuple[float, float] = (1.5, 4.0)  # how long each fault lasts
    heal_s: tuple[float, float] = (2.0, 4.0)  # healthy time between faults
    op_timeout_s: float = 10.0
    recovery_timeout_s: float = 60.0
    backend: str = "local"
    """"local": a replica set of processes here; "containers": the compose cluster in Docker
    (:mod:`chaos.containers`; ``backend_options``: image, keep, project)."""
    backend_options: dict[str, Any] = field(default_factory=dict)


def _client(cluster: LocalCluster, config: RunConfig) -> MongoClient:
    timeout_ms = int(config.op_timeout_s * 1000)
    return MongoClient(cluster.uri, w="majority", wtimeoutMS=timeout_ms, retryWrites=True,
                       serverSelectionTimeoutMS=timeout_ms, socketTimeoutMS=timeout_ms)


def _recovery_times(windows: list[FaultWindow], ops: list[Any]) -> list[float]:
    """For each healed fault: seconds from the heal to the next acknowledged operation."""
    ends = sorted(op.end for op in ops if op.type == "ok" and not math.isinf(op.end))
    times = []
    for w in windows:
        after = next((t for t in ends if t >= w.end), None)
        if after is not None:
            times.append(after - w.end)
    return times


def run(config: RunConfig) -> RunReport:
    workload = make_workload(config.workload, config.seed)
    kinds = expand_kinds(config.faults)
    schedule = plan(config.seed, config.time, kinds, fault_s=config.fault_s, heal_s=config.heal_s)
    if config.backend == "containers":
        from chaos.containers import container_backend

        cluster, mesh = container_backend(config.backend_options)
    else:
        cluster = LocalCluster(config.members, data_dir=config.data_dir,
                               election_timeout_ms=config.election_timeout_ms,
                               extra_args=config.node_args, log_level="WARNING")
        mesh = LinkMesh({i: ("127.0.0.1", m.raft_port) for i, m in enumerate(cluster.members)})
        cluster.link_address = lambda i, j: "{}:{}".format(*mesh.address(i, j))
    stop = threading.Event()
    try:
        cluster.start()
        history = History()
        nemesis = Nemesis(cluster, mesh, clock_origin=history.origin)

        def worker(process: int) -> None:
            client = _client(cluster, config)
            coll = client[DATABASE][COLLECTION]
            try:
                while not stop.is_set():
                    workload.operate(history, process, coll)
            finally:
                client.close()

        def run_schedule() -> None:
            for fault in schedule:
                if stop.wait(max(0.0, fault.at - history.elapsed())):
                    return
                active = nemesis.inject(fault)
                stop.wait(fault.duration)
                nemesis.heal(active)

        threads = [threading.Thread(target=worker, args=(p,), daemon=True) for p in range(config.processes)]
        chaos_thread = threading.Thread(target=run_schedule, daemon=True)
        for t in [*threads, chaos_thread]:
            t.start()
        with Progress(f"chaos {config.workload}", total=int(config.time), unit="s",
                      stream=terminal(), seed=config.seed) as work:
            started = time.monotonic()
            while not stop.wait(min(1.0, max(0.0, config.time - work.done))):
                work.set(min(int(config.time), int(time.monotonic() - started)))
                if time.monotonic() - started >= config.time:
                    break
        stop.set()
        chaos_thread.join(timeout=60)
        for t in threads:
            t.join(timeout=config.op_timeout_s * 3)
        ops = pair(list(history.ops))
        duration = history.elapsed()

        nemesis.heal_everything()
        cluster.wait_for_primary(config.recovery_timeout_s)
        final = _final_read(cluster, config, workload)
        verdict = workload.check(ops, final)
        return RunReport(
            workload=config.workload, seed=config.seed, duration=duration,
            faults=nemesis.windows, operations=ops, acknowledged=verdict.acknowledged,
            lost=verdict.lost, duplicated=verdict.duplicated, anomalies=verdict.anomalies,
            recovery_times=_recovery_times(nemesis.windows, ops), undecided=verdict.undecided,
            extra=cluster.report_extra() if hasattr(cluster, "report_extra") else {},
        )
    finally:
        stop.set()
        mesh.heal()
        cluster.stop()
        mesh.close()


def _final_read(cluster: LocalCluster, config: RunConfig, workload: Any) -> Any:
    """Read everything once the set has a primary again, retrying through late elections."""
    client = _client(cluster, config)
    result: dict[str, Any] = {}
    try:
        def attempt() -> bool:
            try:
                result["final"] = workload.final_read(client[DATABASE][COLLECTION])
                return True
            except PyMongoError:
                return False
        wait_until(attempt, config.recovery_timeout_s, "the final read")
    finally:
        client.close()
    return result["final"]


def run_and_report(config: RunConfig, json_path: str | None, png_path: str | None) -> RunReport:
    report = run(config)
    if json_path:
        report.write_json(json_path)
    if png_path:
        report.write_timeline(png_path)
    return report

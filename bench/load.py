"""Client load spread over processes, shared by the network benchmarks (raft, replset,
sharded).

A benchmark's load client is a process started with its own argv. It prints ``READY``, reads
one line ``START END`` (wall-clock seconds) from stdin, runs its concurrent clients in that
window, and prints ``RESULT {json}`` with ``lats`` (seconds per finished request), ``errors``,
``cpu_s`` and optionally ``first_error``. :func:`run_client_processes` starts the processes,
starts them together, and merges what they report. Each system under test is driven the same
way: ceil(N / 32) processes, so the client side is not the bottleneck. Given the server
processes' pids, it also samples their CPU time at the window's edges (:func:`process_cpu`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from node.ops.progress import Progress, terminal

REPO = Path(__file__).resolve().parents[1]
CLIENTS_PER_PROCESS = 32


def percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")  # no sample: no latency to report
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


async def run_window(calls: list[Callable[[int], Awaitable[Any]]], start: float,
                     stop_at: float) -> dict[str, Any]:
    """Inside a load client: every ``call`` is one client sending requests back to back
    (``call(seq)``) from ``start - 0.5`` s (warm-up) until ``stop_at``. Returns the RESULT
    fields: latencies of requests begun in ``[start, stop_at)``, errors (a failed request is
    retried after 10 ms), the first error's text, and this process's CPU inside the window."""
    lats: list[float] = []
    errors = 0
    first_error: list[str] = []

    async def client(call: Callable[[int], Awaitable[Any]]) -> None:
        nonlocal errors
        seq = 0
        while True:
            t0 = time.time()
            if t0 >= stop_at:
                return
            try:
                await call(seq)
            except Exception as exc:
                if not first_error:
                    first_error.append(str(exc)[:300])
                errors += 1
                await asyncio.sleep(0.01)
                continue
            if t0 >= start:
                lats.append(time.time() - t0)
            seq += 1

    async def cpu_at(t: float) -> float:
        await asyncio.sleep(max(0.0, t - time.time()))
        return time.process_time()

    await asyncio.sleep(max(0.0, start - 0.5 - time.time()))
    cpu0 = asyncio.ensure_future(cpu_at(start))
    cpu1 = asyncio.ensure_future(cpu_at(stop_at))
    await asyncio.gather(*(client(c) for c in calls))
    cpu = (await cpu1) - (await cpu0)
    return {"lats": lats, "errors": errors, "cpu_s": cpu, "first_error": first_error}


def split_clients(total: int, per_process: int = CLIENTS_PER_PROCESS) -> list[int]:
    """How many clients each process runs: ceil(total / per_process) near-equal shares."""
    nproc = -(-total // per_process)
    return [total // nproc + (1 if i < total % nproc else 0) for i in range(nproc)]


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used so far (Linux ``/proc``;
    a process that is gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def _sample_at(moments: list[float], sample: Callable[[], float], out: list[float]) -> None:
    for t in moments:
        time.sleep(max(0.0, t - time.time()))
        out.append(sample())


def run_client_processes(argvs: list[list[str]], duration: float, label: str,
                         server_pids: list[int] | None = None) -> dict[str, float]:
    """Run one load-client process per argv (``python -m ...`` arguments) for ``duration``
    seconds; throughput counts the requests finished inside the window. With ``server_pids``
    the result also has ``server_cpu``: the cores those processes used inside the window."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-m", *argv], cwd=REPO, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for argv in argvs]
    lats: list[float] = []
    errors = 0
    cpu = 0.0
    server_cpu: list[float] = []
    sampler: threading.Thread | None = None
    try:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "READY":
                raise RuntimeError(f"{label} load client failed to start")
        start = time.time() + 0.7
        if server_pids is not None:
            sampler = threading.Thread(target=_sample_at, daemon=True, args=(
                [start, start + duration], functools.partial(process_cpu, server_pids),
                server_cpu))
            sampler.start()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(f"{start} {start + duration}\n")
            p.stdin.flush()
        with Progress(f"bench window {label}", total=int(duration), unit="s",
                      stream=terminal()) as work:
            while time.time() < start + duration and all(p.poll() is None for p in procs):
                time.sleep(min(1.0, max(0.0, start + duration - time.time())))
                work.set(min(int(duration), max(0, int(time.time() - start))))
        for p in procs:
            out, _ = p.communicate(timeout=duration + 60)
            for row in out.splitlines():
                if not row.startswith("RESULT "):
                    continue
                got: dict[str, Any] = json.loads(row[7:])
                lats += got["lats"]
                errors += got["errors"]
                cpu += got["cpu_s"]
                if got.get("first_error") and got["errors"]:
                    print(f"    ({got['errors']} failed, e.g. {got['first_error'][0]})", flush=True)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    lats.sort()
    out = {"ops_per_s": len(lats) / duration, "p50_ms": percentile(lats, 0.5) * 1000,
           "p99_ms": percentile(lats, 0.99) * 1000, "errors": float(errors),
           "client_cpu": cpu / duration}
    if sampler is not None:
        sampler.join(5.0)
        if len(server_cpu) == 2:
            out["server_cpu"] = (server_cpu[1] - server_cpu[0]) / duration
    return out

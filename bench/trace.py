"""``python -m bench trace [--writes N] [--keep DIR]``: where one write's time goes, hop by hop.

Starts a 3-member ``tests/raft_io/kv_member`` cluster with ``HELOGALE_RAFT_TRACE`` set (see
``raft/trace.py``), sends ``--writes`` puts one at a time over one ``KV/Puts`` stream (one
client, one request outstanding), and lines up the marks every process wrote by log index:
for each hop (member, event) it prints the median time since the client sent the put, and the
median step from the hop before. ``--replset`` traces a ``LocalCluster`` replica set's
majority inserts instead (the member processes mark the same Raft hops). Events:

* ``propose`` (the proposal handed to the raft loop), ``loop`` (the loop took it);
* ``ready.entries`` / ``ready.commit``: a Ready with the new entry / newly committed entries;
* ``send.app:P`` / ``send.ack:P``: the loop (or persist thread, for acks) queued an append or
  an acknowledgement for member P; ``wire.*``: the transport's sender serialized it;
  ``recv.*:P``: the receiver decoded it; ``step.*:P``: the raft loop stepped it;
* ``fsynced``: the WAL write + fdatasync holding the entry returned;
* ``applied``: the state machine applied it; ``reply``: the reply went to the client's loop;
* client ``client.sent`` / ``client.got`` (member 0).
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.load import REPO


def _client_puts(address: str, writes: int, out: Path, gap: float) -> None:
    import grpc

    chan = grpc.insecure_channel(address)
    call = chan.stream_stream("/helogale.raftio.KV/Puts", request_serializer=None,
                              response_deserializer=None)
    q: queue.Queue[bytes | None] = queue.Queue()

    def requests():  # type: ignore[no-untyped-def]
        while (item := q.get()) is not None:
            yield item

    replies = call(requests(), timeout=120)
    lines = []
    for seq in range(writes + 20):  # the first 20 warm the path up
        t0 = time.monotonic_ns()
        q.put(f"trace-{seq}".encode() + b"\0" + b"v" * 200)
        reply = next(replies)
        t1 = time.monotonic_ns()
        if reply[:1] == b"\1" and seq >= 20:
            index = int.from_bytes(reply[1:9], "big")
            lines.append(f"{t0} 0 client.sent {index}\n{t1} 0 client.got {index}\n")
        if gap:
            time.sleep(gap)  # let every thread go idle: one lone write at a time
    q.put(None)
    chan.close()
    (out / "trace-client.txt").write_text("".join(lines))


def _replset_inserts(address: str, writes: int, out: Path, gap: float) -> None:
    import bson
    import grpc

    from proto import helogale_pb2, helogale_pb2_grpc

    chan = grpc.insecure_channel(address)
    stub = helogale_pb2_grpc.CommandStub(chan)
    lines = []
    for seq in range(writes + 20):
        cmd = bson.encode({"insert": "trace", "documents": [{"_id": seq, "v": "x" * 200}],
                           "writeConcern": {"w": "majority"}})
        t0 = time.monotonic_ns()
        stub.Run(helogale_pb2.CommandRequest(db="bench", command=cmd), timeout=30)
        t1 = time.monotonic_ns()
        if seq >= 20:
            lines.append(f"{t0} 0 client.sent -{seq}\n{t1} 0 client.got -{seq}\n")
        if gap:
            time.sleep(gap)
    chan.close()
    (out / "trace-client.txt").write_text("".join(lines))


def analyse(out: Path) -> list[tuple[str, float, float]]:
    """(hop, median ms since the client sent, median ms since the previous hop) per hop."""
    marks: dict[int, dict[str, int]] = defaultdict(dict)
    seq_of: dict[int, int] = {}
    client: dict[int, dict[str, int]] = defaultdict(dict)
    for f in out.glob("trace-*.txt"):
        for line in f.read_text().splitlines():
            t, node, event, index = line.split()
            key = f"{node}:{event}" if node != "0" else event
            if node == "0":
                client[int(index)][key] = int(t)
            else:
                marks[int(index)].setdefault(key, int(t))  # first occurrence
    if any(i < 0 for i in client):  # replset: client marks carry no log index; match by time
        ordered = sorted(client.values(), key=lambda c: c["client.sent"])
        proposes = sorted((m[k], i) for i, m in marks.items() for k in m if k.endswith(":propose"))
        for c in ordered:
            later = [i for t, i in proposes if c["client.sent"] <= t <= c["client.got"]]
            if later:
                seq_of[later[0]] = 1
                marks[later[0]].update(c)
    else:
        for index, c in client.items():
            marks[index].update(c)
    rows: dict[str, list[float]] = defaultdict(list)
    for m in marks.values():
        if "client.sent" not in m or "client.got" not in m:
            continue
        t0 = m["client.sent"]
        for k, t in m.items():
            rows[k].append((t - t0) / 1e6)
    med = sorted(((k, statistics.median(v)) for k, v in rows.items()
                  if len(v) >= max(3, len(rows["client.sent"]) // 2)), key=lambda kv: kv[1])
    result = []
    prev = 0.0
    for k, ms in med:
        result.append((k, ms, ms - prev))
        prev = ms
    return result


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench trace", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--keep", help="keep the trace files in this directory")
    ap.add_argument("--gap", type=float, default=0.0,
                    help="seconds between writes (default: back to back, as bench raft)")
    ap.add_argument("--replset", action="store_true", help="trace a replica set's inserts")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-trace-"))
    out = Path(args.keep) if args.keep else root / "trace"
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("trace-*.txt"):
        f.unlink()
    os.environ["HELOGALE_RAFT_TRACE"] = str(out)
    sys.path.insert(0, str(REPO))
    try:
        if args.replset:
            from node.local_cluster import LocalCluster

            with LocalCluster(3, data_dir=str(root / "rs"), log_level="WARNING") as cluster:
                p = cluster.wait_for_primary()
                _replset_inserts(cluster.members[p].address, args.writes, out, args.gap)
        else:
            from tests.raft_io.kv_cluster import KVCluster

            c = KVCluster(root / "kv", 3)
            (root / "kv").mkdir(parents=True, exist_ok=True)
            c.start_all()
            try:
                lead = c.wait_leader()
                _client_puts(c.client_addr[lead], args.writes, out, args.gap)
            finally:
                c.stop_all()
        rows = analyse(out)
    finally:
        os.environ.pop("HELOGALE_RAFT_TRACE", None)
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()
    print(f"one write's hops (median of {args.writes}, ms; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    print(f"  {'hop (member:event)':<28} {'since sent':>10} {'step':>8}")
    for k, ms, step in rows:
        print(f"  {k:<28} {ms:10.3f} {step:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

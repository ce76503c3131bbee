"""``helogale up``: prints the URI, runs the demo against the set, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from node.local_cluster import free_ports, wait_until

pytestmark = pytest.mark.cluster


def test_up_prints_uri_runs_demo_and_stops_on_ctrl_c(tmp_path: object) -> None:
    base = free_ports(1)[0]
    data = os.path.join(str(tmp_path), "data")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from helogale.cli import main; "
         "sys.exit(main(sys.argv[1:]))", "up", "--data", data, "--port", str(base)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: sum(1 for x in lines if x.startswith("demo: found")) >= 2, 120,
                   "the demo output")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    reader.join(5)
    uri = lines[0]
    hosts = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
    assert uri == f"helogale://{hosts}/?replicaSet=rs0"
    wire_hosts = ",".join(f"127.0.0.1:{base + 6 + i}" for i in range(3))
    assert lines[1] == f"mongodb://{wire_hosts}/?replicaSet=rs0"
    assert any(x.startswith("demo: inserted 3 documents") for x in lines)
    assert code == 0
    # every member process is gone and left its data behind for the next `up`
    assert {"member1", "member2", "member3"} <= set(os.listdir(data))
    assert not [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline_has(pid, data)]


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return text.encode() in fh.read()
    except OSError:
        return False

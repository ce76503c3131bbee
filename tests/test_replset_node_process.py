"""The member process: flags and TOML config, a one-member set, SIGTERM shutdown, JSON logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from node.local_cluster import LocalCluster, free_ports, wait_until
from node.server.config import MemberSpec, config_from_args, parse_member


def test_member_spec_and_flags() -> None:
    spec = parse_member("2=127.0.0.1:7002,wire=127.0.0.1:27018,priority=0,raft=127.0.0.1:9")
    assert spec == MemberSpec(2, "127.0.0.1:7002", "127.0.0.1:27018", 0.0, "127.0.0.1:9")
    assert parse_member("3=h:10").raft_address == "h:11"
    with pytest.raises(ValueError):
        parse_member("nonsense")
    cfg = config_from_args(["--id", "1", "--listen", "127.0.0.1:7001", "--peer",
                            "2=127.0.0.1:7002", "--wire-port", "27017", "--priority", "2"])
    assert [m.id for m in cfg.members()] == [1, 2]
    assert cfg.advertised_wire == "127.0.0.1:27017" and cfg.self_spec().priority == 2.0


def test_toml_config_file_and_flag_override(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "node.toml")
    with open(path, "w") as fh:
        fh.write('replset = "blue"\nmember_id = 4\nlisten = "127.0.0.1:7004"\n'
                 'peers = ["5=127.0.0.1:7005"]\nelection_timeout_ms = 900\n')
    cfg = config_from_args(["--config", path, "--election-timeout-ms", "700"])
    assert cfg.replset == "blue" and cfg.member_id == 4 and cfg.election_timeout_ms == 700
    assert [p.id for p in cfg.peers] == [5]


@pytest.mark.cluster
def test_one_member_set_serves_and_stops_on_sigterm(tmp_path: object) -> None:
    with LocalCluster(1, data_dir=os.path.join(str(tmp_path), "d")) as c:
        p = c.wait_for_primary()
        assert c.command(p, {"insert": "c", "documents": [{"_id": 1}],
                             "writeConcern": {"w": 1}}, db="app")["n"] == 1
        assert c.terminate(0) == 0
        with open(os.path.join(c.members[0].data_dir, "engine.state")) as fh:
            assert json.load(fh) == {"state": "clean"}  # the store was synced at the stop
        c.restart(0)
        c.wait_for_primary()
        reply = c.command(0, {"find": "c"}, db="app")
        assert reply["cursor"]["firstBatch"] == [{"_id": 1}]
        c.kill(0)  # SIGKILL on the same boot: the unsynced store is kept, not rebuilt
        c.restart(0)
        c.wait_for_primary()
        assert c.command(0, {"find": "c"}, db="app")["cursor"]["firstBatch"] == [{"_id": 1}]
        log = os.path.join(c.data_dir, "member1.log")
        with open(log) as fh:
            records = [json.loads(line) for line in fh if line.startswith("{")]
        msgs = [r["msg"] for r in records]
        assert "member stopped" in msgs and msgs.count("member serving") == 3
        opened = [r for r in records if r["msg"] == "engine store opened"]
        assert [r["rebuilt"] for r in opened] == [False, False, False]
        assert [r["reason"] for r in opened][1:] == [
            "clean stop", "the process stopped, the machine did not (same boot id)"]
        assert all({"ts", "level", "logger", "msg", "member"} <= set(r) for r in records)


def test_bad_flags_exit_with_usage() -> None:
    proc = subprocess.run([sys.executable, "-m", "node", "--listen", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--id" in proc.stderr


@pytest.mark.cluster
def test_sigterm_while_starting_exits_cleanly(tmp_path: object) -> None:
    port = free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, "-m", "node", "--id", "1", "--listen",
                             f"127.0.0.1:{port}", "--raft-listen",
                             f"127.0.0.1:{free_ports(1)[0]}", "--data", str(tmp_path)],
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    wait_until(lambda: "member serving" in proc.stderr.readline(), 60, "member serving")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_key_file_too_open_stops_start_up_with_a_clear_error(tmp_path: object) -> None:
    """As mongod: a key file group or others can read is refused at start, with one error
    line saying why (and no traceback, and nothing of the key)."""
    key = os.path.join(str(tmp_path), "key")
    cfg = config_from_args(["--id", "1", "--listen", "127.0.0.1:7001", "--keyfile", key])
    assert cfg.keyfile == key
    for text, mode, why in (("c2VjcmV0a2V5\n", 0o644, "too open"),):  # others: test_auth.py
        with open(key, "w") as fh:
            fh.write(text)
        os.chmod(key, mode)
        ports = free_ports(2)
        proc = subprocess.run([sys.executable, "-m", "node", "--id", "1", "--listen",
                               f"127.0.0.1:{ports[0]}", "--raft-listen", f"127.0.0.1:{ports[1]}",
                               "--keyfile", key], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, proc.stderr
        errors = [json.loads(line) for line in proc.stderr.splitlines()
                  if line.startswith("{") and '"ERROR"' in line]
        assert len(errors) == 1 and why in errors[0]["msg"], proc.stderr
        assert "exc" not in errors[0] and "c2VjcmV0a2V5" not in proc.stderr

"""``helogale status`` text rendering and its JSON helpers, on hand-made status documents."""

from __future__ import annotations

import datetime as _dt
import io
import json
from typing import Any

from bson import Int64, ObjectId

from helogale.status import hosts_of, main, plain, targets, watch
from helogale.status_render import lag_text, render, size_text


def _status() -> dict[str, Any]:
    member = {"host": "h:1", "state": "PRIMARY", "health": 1, "term": 3, "appliedIndex": 40,
              "commitIndex": 40, "lagEntries": 0, "lagSecs": 0.0, "metricsPort": 2001}
    down = {"host": "h:2", "state": "DOWN", "health": 0, "term": None, "appliedIndex": None,
            "commitIndex": None, "lagEntries": 12, "lagSecs": 4.25, "metricsPort": 2002}
    return {
        "kind": "sharded", "time": "2026-01-01T00:00:00.000Z",
        "routers": [{"host": "r:1", "up": True, "pingAgeSecs": 1.5, "uptimeSecs": 30,
                     "metricsPort": 3001},
                    {"host": "r:2", "up": False, "pingAgeSecs": 90.0, "uptimeSecs": 3,
                     "metricsPort": 3002}],
        "sets": [{"name": "shard1", "role": "shard", "term": 3, "primary": "h:1",
                  "lastElection": "2026-01-01T00:00:00.000Z", "members": [member, down]}],
        "collections": [{"ns": "d.c", "chunks": {"shard1": 3, "shard2": 1},
                         "dataSize": {"shard1": 2048, "shard2": 10}, "count": {"shard1": 20,
                                                                               "shard2": 1},
                         "jumbo": [{"min": 1, "max": 2, "shard": "shard1"}]}],
        "balancer": {"mode": "full", "inRound": False, "rounds": 7, "chunksMoved": 2},
        "migrations": [{"from": "shard1", "ns": "d.c", "to": "shard2", "phase": "cloning",
                        "docsCloned": 100, "modsSent": 0}],
    }


def test_render_shows_every_section() -> None:
    text = render(_status())
    assert "r:1" in text and "DOWN" in text
    lines = text.splitlines()
    down = next(line for line in lines if line.strip().startswith("h:2"))
    assert down.split()[:2] == ["h:2", "DOWN"] and "12 (4.2s)" in down
    row = next(line for line in lines if line.strip().startswith("d.c"))
    assert row.split() == ["d.c", "shard1", "3", "20", "2.0", "KiB", "1"]
    assert "phase cloning" in text and "docs cloned 100" in text
    assert "mode full, idle, 7 rounds, 2 chunks moved" in text


def test_render_a_replica_set() -> None:
    st = _status()
    st.update(kind="replicaSet", routers=[], collections=[], balancer=None, migrations=[])
    st["sets"][0]["role"] = "replicaSet"
    text = render(st)
    assert "replica set shard1" in text and "routers" not in text and "migrations" not in text


def test_small_helpers() -> None:
    assert size_text(0) == "0 B" and size_text(1536) == "1.5 KiB"
    assert size_text(5 * 1024 * 1024) == "5.0 MiB"
    assert lag_text({"state": "SECONDARY", "lagEntries": 3, "lagSecs": None}) == "3 (?s)"
    assert lag_text({"state": "PRIMARY"}) == "-"
    assert hosts_of("helogale://a:1,b:2/?replicaSet=rs0") == ["a:1", "b:2"]
    assert hosts_of("cfg/a:1,b:2") == ["a:1", "b:2"]
    when = _dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=_dt.UTC)
    oid = ObjectId()
    assert plain({"t": when, "n": Int64(5), "o": oid, "l": [1.5]}) == {
        "t": "2026-01-02T03:04:05.678Z", "n": 5, "o": str(oid), "l": [1.5]}


def test_targets_lists_live_metrics_endpoints() -> None:
    groups = targets(_status())
    assert groups == [
        {"targets": ["h:2001", "h:2002"], "labels": {"set": "shard1", "role": "shard"}},
        {"targets": ["r:3001"], "labels": {"role": "router"}},
    ]
    json.dumps(groups)


def test_watch_redraws_in_place() -> None:
    out = io.StringIO()
    frames = iter(["one\n", "two\n"])
    naps: list[float] = []
    watch(lambda: next(frames), out, 1.5, iterations=2, sleep=naps.append)
    assert out.getvalue() == "\x1b[H\x1b[2Jone\n\x1b[H\x1b[2Jtwo\n"
    assert naps == [1.5]


def test_watch_keeps_going_when_the_cluster_is_gone() -> None:
    out = io.StringIO()

    def fail() -> str:
        raise ConnectionError("nobody home")

    watch(fail, out, 0, iterations=1, sleep=lambda s: None)
    assert "status unavailable: nobody home" in out.getvalue()


def test_status_without_a_cluster_fails_cleanly(capsys: Any) -> None:
    from node.local_cluster import free_ports

    port = free_ports(1)[0]
    assert main([f"helogale://127.0.0.1:{port}/", "--timeout", "0.5"]) == 1
    assert "no server answered" in capsys.readouterr().err

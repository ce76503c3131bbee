"""Membership and operations on real processes: a wiped member removed and re-added catches up
by snapshot; priorities (0 never primary, higher takes over when caught up); replSetStepDown."""

from __future__ import annotations

import os

import pytest

from node.local_cluster import LocalCluster, wait_until
from tests.replset_helpers import wait_has, write_primary

pytestmark = pytest.mark.cluster


def _log(cluster: LocalCluster, i: int) -> str:
    path = os.path.join(cluster.data_dir, f"member{cluster.members[i].member_id}.log")
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def test_wiped_member_readded_catches_up_by_snapshot() -> None:
    with LocalCluster(3, extra_args=["--snapshot-every", "20", "--keep-entries", "5"]) as c:
        p = c.wait_for_primary()
        victim = (p + 1) % 3
        keep = [i for i in range(3) if i != victim]
        c.kill(victim)
        reply = c.reconfig(keep)
        assert reply["ok"] == 1.0, reply
        p = c.wait_for_primary()
        status = c.command(p, {"replSetGetStatus": 1})
        assert {m["_id"] for m in status["members"]} == {c.members[i].member_id for i in keep}
        # with 2 voters left, w=2 is everyone; write enough to compact the log
        for batch in range(6):
            reply = write_primary(c, {"insert": "c", "documents": [
                {"_id": batch * 10 + k} for k in range(10)], "writeConcern": {"w": 2}})
            assert reply["n"] == 10
        for k in range(40):
            write_primary(c, {"update": "c", "updates": [
                {"q": {"_id": k}, "u": {"$set": {"v": k}}}]})
        c.restart(victim, wipe=True, join=True)
        c.wait_ready(victim)
        reply = c.reconfig(list(range(3)))
        assert reply["ok"] == 1.0, reply
        wait_has(c, victim, set(range(60)), timeout=60)
        assert "installed snapshot" in _log(c, victim)
        p = c.wait_for_primary()
        reply = c.command(p, {"insert": "c", "documents": [{"_id": "after"}],
                              "writeConcern": {"w": 3, "wtimeout": 20000}}, db="app")
        assert reply == {"n": 1, "ok": 1.0}
        wait_until(lambda: c.command(victim, {"hello": 1})["secondary"], 10,
                   "the re-added member to see itself a voter")
        assert len(c.command(victim, {"hello": 1})["hosts"]) == 3


def test_priorities_and_step_down() -> None:
    with LocalCluster(3, priorities=[0, 1, 2]) as c:
        # the highest priority member takes over once caught up; priority 0 never leads
        wait_until(lambda: c.primary_index() == 2, 30, "priority-2 member to be primary")
        hello = c.command(0, {"hello": 1})
        assert hello.get("passive") is True and c.members[0].address in hello["passives"]
        assert c.members[0].address not in hello["hosts"]
        write_primary(c, {"insert": "c", "documents": [{"_id": 1}], "writeConcern": {"w": 3}})
        c.kill(2)
        p = c.wait_for_primary(timeout=15, exclude=2)
        assert p == 1
        write_primary(c, {"insert": "c", "documents": [{"_id": 2}],
                          "writeConcern": {"w": "majority"}})
        c.restart(2)
        c.wait_ready(2)
        wait_until(lambda: c.primary_index() == 2, 30, "priority-2 member to take over again")
        wait_has(c, 2, {1, 2})

    with LocalCluster(3) as c:
        p = c.wait_for_primary()
        write_primary(c, {"insert": "c", "documents": [{"_id": 1}], "writeConcern": {"w": 3}})
        reply = c.command(p, {"replSetStepDown": 30, "secondaryCatchUpPeriodSecs": 10})
        assert reply == {"ok": 1.0}, reply
        new = c.wait_for_primary(timeout=15, exclude=p)
        assert new != p
        assert c.command(p, {"hello": 1})["isWritablePrimary"] is False
        not_primary = c.command(p, {"replSetStepDown": 10})
        assert not_primary["ok"] == 0.0 and not_primary["code"] == 10107

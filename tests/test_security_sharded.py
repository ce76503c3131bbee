"""``--auth`` behind routers (slow: a config set, a shard and a router as processes).

Users live on the config set; the router authenticates them itself (SCRAM over the wire),
checks their roles, and reaches the config servers and shards as the cluster's internal
identity (the one key file).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from node.sharded_cluster import ShardedCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[ShardedCluster]:
    c = ShardedCluster(1, members=1, routers=1, auth=True).start()
    try:
        yield c
    finally:
        c.stop()


def client(c: ShardedCluster, auth: str = "", source: str = "admin") -> MongoClient:
    host = (c.wire_uri or "").split("//")[1].rstrip("/")
    return MongoClient(f"mongodb://{auth}{host}/?authSource={source}",
                       serverSelectionTimeoutMS=20000)


def test_router_users_roles_and_refusals(cluster: ShardedCluster) -> None:
    with client(cluster) as anon:
        # the localhost exception, through the router, onto the config servers
        anon.admin.command("createUser", "root", pwd="root-pw", roles=["root"])
        with pytest.raises(OperationFailure) as err:
            anon.app.c.insert_one({"_id": 0})
        assert err.value.code == 13
    with client(cluster, "root:wrong@") as bad, pytest.raises(OperationFailure) as err:
        bad.app.c.find_one()
    assert err.value.code == 18
    with client(cluster, "root:root-pw@") as root:
        root.app.c.insert_one({"_id": 1})
        stored = cluster.config.members[0].address  # the user is on the config set
        assert stored and [u["user"] for u in root.admin.command("usersInfo")["users"]] == [
            "root"]
        root.app.command("createUser", "ann", pwd="ann-pw", roles=["readWrite"])
        with client(cluster, "ann:ann-pw@", source="app") as ann:
            ann.app.c.insert_one({"_id": 2})
            root.app.command("revokeRolesFromUser", "ann", roles=["readWrite"])
            with pytest.raises(OperationFailure) as err:  # revoked through this router: at once
                ann.app.c.insert_one({"_id": 3})
            assert err.value.code == 13
        assert sorted(d["_id"] for d in root.app.c.find()) == [1, 2]
    # the config server made ann for root (the router carries the end user: $audit)
    import glob
    import json
    import os

    lines = []
    for path in glob.glob(os.path.join(cluster.config.data_dir, "member*.log")):
        with open(path, encoding="utf-8", errors="replace") as f:
            lines += [json.loads(x) for x in f if x.startswith("{")]
    created = [x for x in lines if x.get("msg") == "user created" and x["user"] == "ann@app"]
    assert created and created[0]["by"] == ["root@admin"]


def test_router_custom_roles(cluster: ShardedCluster) -> None:
    """A custom role made through the router lives on the config set; the router resolves it
    (collection-level privileges) when it checks the user's commands."""
    with client(cluster, "root:root-pw@") as root:
        root.app.orders.insert_one({"_id": 1})
        root.app.secrets.insert_one({"_id": 1})
        root.app.command("createRole", "ordersReader", roles=[], privileges=[
            {"resource": {"db": "app", "collection": "orders"}, "actions": ["find"]}])
        root.app.command("createUser", "olga", pwd="olga-pw", roles=["ordersReader"])
        info = root.app.command("rolesInfo", "ordersReader", showPrivileges=True)["roles"]
        assert info[0]["privileges"][0]["resource"] == {"db": "app", "collection": "orders"}
        with client(cluster, "olga:olga-pw@", source="app") as olga:
            assert olga.app.orders.find_one() == {"_id": 1}
            with pytest.raises(OperationFailure) as err:
                olga.app.secrets.find_one()
            assert err.value.code == 13
            root.app.command("dropRole", "ordersReader")  # through this router: at once
            with pytest.raises(OperationFailure) as err:
                olga.app.orders.find_one()
            assert err.value.code == 13


def test_helogale_up_auth_tls_prints_uris_that_work(tmp_path: object) -> None:
    """``helogale up --auth --tls``: the printed URIs work as they are (both clients); without
    credentials, or in plain text, the cluster refuses."""
    import os
    import signal
    import subprocess
    import sys

    from pymongo.errors import ServerSelectionTimeoutError

    import helogale
    from node.local_cluster import free_ports

    port = free_ports(1)[0]
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "helogale.cli", "up", "--auth", "--tls",
                             "--shards", "1", "--members", "1", "--routers", "1", "--no-demo",
                             "--data", str(tmp_path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        hg_uri, wire_uri = proc.stdout.readline().strip(), proc.stdout.readline().strip()
        assert hg_uri.startswith("helogale://root:") and "tlsCAFile=" in hg_uri
        with MongoClient(wire_uri, serverSelectionTimeoutMS=30000) as m:
            m.app.c.insert_one({"_id": 1})
            assert m.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"] == [
                {"user": "root", "db": "admin"}]
        with helogale.MongoClient(hg_uri, serverSelectionTimeoutMS=30000) as h:
            assert h.app.c.count_documents({}) == 1
        bare = "mongodb://" + wire_uri.split("@", 1)[1]
        with MongoClient(bare, serverSelectionTimeoutMS=30000) as m, \
                pytest.raises(OperationFailure) as err:
            m.app.c.find_one()
        assert err.value.code == 13
        with MongoClient(bare.split("?")[0], serverSelectionTimeoutMS=1500) as m, \
                pytest.raises(ServerSelectionTimeoutError):
            m.app.c.find_one()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    assert proc.returncode == 0

"""``--auth`` with real processes: a three-member set, pymongo over the wire and the helogale
client over gRPC. Every refusal answers the right code, is logged (never with the password)
and changes nothing. One cluster serves the module.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

import helogale
import helogale.errors
from node.local_cluster import LocalCluster, wait_until

ROOT_PWD = "root-Pa55word"
ANN_PWD = "ann-Pa55word"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(3, wire=True, extra_args=["--auth"]).start()
    try:
        # the localhost exception: the first user, created without credentials
        with MongoClient(c.wire_uri, serverSelectionTimeoutMS=20000) as bare:
            bare.admin.command("createUser", "root", pwd=ROOT_PWD, roles=["root"])
        yield c
    finally:
        c.stop()


def wire_hosts(c: LocalCluster) -> str:
    return ",".join(m.wire_address or "" for m in c.members)


def pym(c: LocalCluster, user: str | None = None, pwd: str | None = None,
        source: str = "admin") -> MongoClient:
    auth = f"{user}:{pwd}@" if user else ""
    return MongoClient(f"mongodb://{auth}{wire_hosts(c)}/?replicaSet={c.replset}"
                       f"&authSource={source}", serverSelectionTimeoutMS=20000)


def hg(c: LocalCluster, user: str | None = None, pwd: str | None = None) -> helogale.MongoClient:
    auth = f"{user}:{pwd}@" if user else ""
    hosts = ",".join(c.addresses)
    return helogale.MongoClient(f"helogale://{auth}{hosts}/?replicaSet={c.replset}"
                                "&authSource=admin", serverSelectionTimeoutMS=20000)


def logs(c: LocalCluster) -> str:
    text = ""
    for path in glob.glob(os.path.join(c.data_dir, "member*.log")):
        with open(path, encoding="utf-8", errors="replace") as f:
            text += f.read()
    return text


def test_pymongo_scram_and_refusals(cluster: LocalCluster) -> None:
    with pym(cluster, "root", ROOT_PWD) as root:
        root.app.docs.insert_one({"_id": 1})
        status = root.admin.command("connectionStatus")["authInfo"]
        assert status["authenticatedUsers"] == [{"user": "root", "db": "admin"}]
        with pym(cluster) as anon:  # no password
            with pytest.raises(OperationFailure) as err:
                anon.app.docs.insert_one({"_id": 2})
            assert err.value.code == 13
            with pytest.raises(OperationFailure) as err:  # the exception is closed now
                anon.admin.command("createUser", "evil", pwd="x", roles=["root"])
            assert err.value.code == 13
        with pym(cluster, "root", "wrong-Pa55word") as bad:  # wrong password
            with pytest.raises(OperationFailure) as err:
                bad.app.docs.find_one()
            assert err.value.code == 18
        with pym(cluster, "nobody", ROOT_PWD) as unknown:
            with pytest.raises(OperationFailure) as err:
                unknown.app.docs.find_one()
            assert err.value.code == 18
        assert root.app.docs.count_documents({}) == 1
        assert [u["user"] for u in root.admin.command("usersInfo")["users"]] == ["root"]
    text = logs(cluster)
    assert "authentication failed" in text and "nobody@admin" in text
    assert "command refused: not authorized" in text
    assert "wrong-Pa55word" not in text and ROOT_PWD not in text


def test_roles_on_a_replicated_user(cluster: LocalCluster) -> None:
    with pym(cluster, "root", ROOT_PWD) as root:
        root.shop.command("createUser", "ann", pwd=ANN_PWD, roles=["read"])
        root.shop.items.insert_one({"_id": 1})
        with pym(cluster, "ann", ANN_PWD, source="shop") as ann:
            assert ann.shop.items.find_one() == {"_id": 1}
            with pytest.raises(OperationFailure) as err:  # a user without the role
                ann.shop.items.insert_one({"_id": 2})
            assert err.value.code == 13
            with pytest.raises(OperationFailure) as err:  # read is for shop only
                ann.other.items.find_one()
            assert err.value.code == 13
            root.shop.command("grantRolesToUser", "ann", roles=["readWrite"])
            ann.shop.items.insert_one({"_id": 2})
            root.shop.command("revokeRolesFromUser", "ann", roles=["readWrite"])
            with pytest.raises(OperationFailure) as err:  # a revoked role, same connection
                ann.shop.items.insert_one({"_id": 3})
            assert err.value.code == 13
        assert sorted(d["_id"] for d in root.shop.items.find()) == [1, 2]
        # the user is replicated (the Raft log): every member can authenticate her
        for m in cluster.members:
            def member_knows_ann(addr: str = m.wire_address or "") -> bool:
                with MongoClient(f"mongodb://ann:{ANN_PWD}@{addr}/?authSource=shop"
                                 "&directConnection=true&readPreference=secondaryPreferred",
                                 serverSelectionTimeoutMS=5000) as one:
                    try:
                        return one.shop.items.count_documents({}) == 2
                    except OperationFailure:
                        return False
            wait_until(member_knows_ann, 20, f"ann on {m.address}")


def test_helogale_client_over_grpc(cluster: LocalCluster) -> None:
    with hg(cluster) as anon:
        with pytest.raises(helogale.errors.OperationFailure) as err:
            anon.app.docs.find_one()
        assert err.value.code == 13
    with hg(cluster, "root", "wrong-Pa55word") as bad:
        with pytest.raises(helogale.errors.OperationFailure) as err:
            bad.app.docs.find_one()
        assert err.value.code == 18
    with hg(cluster, "root", ROOT_PWD) as root:
        root.app.grpc.insert_one({"_id": 1})
        assert root.app.grpc.find_one() == {"_id": 1}
        assert "password" not in root.options
        # the server forgets the connection's session (as after a reconnect): the client
        # authenticates again and the command runs once
        for channel in root._channels._channels.values():
            channel._session = "forgotten"
            channel._mux.metadata = (("x-helogale-session", "forgotten"),)
            channel._mux.close()
        root.app.grpc.insert_one({"_id": 2})
        assert root.app.grpc.count_documents({}) == 2
        status = root.admin.command("connectionStatus")["authInfo"]
        assert status["authenticatedUsers"] == [{"user": "root", "db": "admin"}]

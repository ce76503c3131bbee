"""``--auth`` and TLS with real processes: a three-member set (``requireTLS`` on every port,
mutual TLS and the key file between members), pymongo over the wire and the helogale client
over gRPC. Every refusal answers the right code (or fails the handshake), is logged (never with
the password) and changes nothing. One cluster serves the module.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator

import bson
import grpc
import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

import helogale
import helogale.errors
from node.local_cluster import LocalCluster, wait_until
from node.security.certs import PKI, make_pki
from proto import helogale_pb2, helogale_pb2_grpc
from raft.tls import REQUIRE, TLSSettings
from tests.raft_io import forge

ROOT_PWD = "root-Pa55word"
ANN_PWD = "ann-Pa55word"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="module")
def cluster(pki: PKI) -> Iterator[LocalCluster]:
    c = LocalCluster(3, wire=True, extra_args=["--auth"], tls=pki).start(60)
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
                       f"&authSource={source}{c.tls_query}", serverSelectionTimeoutMS=20000)


def hg(c: LocalCluster, user: str | None = None, pwd: str | None = None) -> helogale.MongoClient:
    auth = f"{user}:{pwd}@" if user else ""
    hosts = ",".join(c.addresses)
    return helogale.MongoClient(f"helogale://{auth}{hosts}/?replicaSet={c.replset}"
                                f"&authSource=admin{c.tls_query}",
                                serverSelectionTimeoutMS=20000)


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
                                 "&directConnection=true&readPreference=secondaryPreferred"
                                 f"{cluster.tls_query}",
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


def _grpc_refused(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()  # type: ignore[operator]
    return err.value.code()


def test_tls_refusals(cluster: LocalCluster, pki: PKI, tmp_path: object) -> None:
    rogue = make_pki(str(tmp_path), ca_name="rogue CA")  # a forged / unknown certificate
    member = cluster.members[0]
    before = len(logs(cluster))
    # a plain-text client on the TLS wire port
    with (MongoClient(f"mongodb://root:{ROOT_PWD}@{member.wire_address}/"
                      "?directConnection=true", serverSelectionTimeoutMS=1500) as plain,
          pytest.raises(ServerSelectionTimeoutError)):
        plain.admin.command("ping")
    # a client that trusts another CA refuses the cluster's certificate
    with (MongoClient(f"mongodb://root:{ROOT_PWD}@{member.wire_address}/"
                      f"?directConnection=true&tls=true&tlsCAFile={rogue.ca_file}",
                      serverSelectionTimeoutMS=1500) as wrong_ca,
          pytest.raises(ServerSelectionTimeoutError)):
        wrong_ca.admin.command("ping")
    # a plain-text client on the TLS gRPC client port
    hello = helogale_pb2.CommandRequest(db="admin", command=bson.encode({"hello": 1}))
    with grpc.insecure_channel(member.address) as ch:
        code = _grpc_refused(lambda: helogale_pb2_grpc.CommandStub(ch).Run(hello, timeout=3))
    assert code == grpc.StatusCode.UNAVAILABLE
    # the Raft port (raft.tcp_transport): mutual TLS, then the key file
    with pytest.raises(OSError):  # a certificate the cluster's CA did not sign
        forge.hello(member.raft_address, TLSSettings(REQUIRE, rogue.client_file, pki.ca_file))
    ours = TLSSettings(REQUIRE, pki.client_file, pki.ca_file)
    assert forge.hello(member.raft_address, ours)["node_id"] == member.member_id
    code = forge.send(member.raft_address, [forge.batch(2, [])], kind="tcp", tls=ours)
    assert code == grpc.StatusCode.UNAUTHENTICATED  # a certificate, but not the key
    text = logs(cluster)[before:]
    assert "plain-text client on a TLS port" in text
    assert "refused a stream" in text
    # nothing changed: the set still serves, with TLS and credentials
    with pym(cluster, "root", ROOT_PWD) as root:
        assert root.admin.command("ping")["ok"] == 1.0
        assert root.app.docs.count_documents({}) == 1


@pytest.mark.bench
def test_bench_load_clients_speak_tls_and_scram(cluster: LocalCluster, pki: PKI) -> None:
    """``python -m bench replset --tls``'s load clients: TLS, SCRAM per connection, inserts."""
    from bench.replset import run_insert_clients

    with pym(cluster, "root", ROOT_PWD) as root:
        root.admin.command("createUser", "loader", pwd="loader-pw",
                           roles=["readWriteAnyDatabase"])
    p = cluster.wait_for_primary()
    r = run_insert_clients(cluster.members[p].address, 2, 1.0, "tlsload", "majority",
                           {"ca": pki.ca_file, "user": "loader", "password": "loader-pw"})
    assert r["ops_per_s"] > 0
    with pym(cluster, "root", ROOT_PWD) as root:
        assert root.bench.tlsload.count_documents({}) >= r["ops_per_s"]

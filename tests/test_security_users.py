"""Users, roles and SCRAM-SHA-256 on an in-process member with ``--auth`` (node.security).

Every refusal is checked three ways: the code (13 Unauthorized, 18 AuthenticationFailed), a
log line without the password, and nothing changed.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import pytest

from helogale.auth import ClientConversation
from node.commands.context import WIRE, RequestContext
from node.commands.dispatcher import Dispatcher
from node.security import scram
from node.security.authz import Authorizer, AuthSession, LocalUsers, is_loopback
from node.server.standalone import standalone_dispatcher

LOCAL = "127.0.0.1:50000"
REMOTE = "10.1.2.3:50000"
PASSWORD = "s3cret-Pa55"


@pytest.fixture
def d() -> Dispatcher:
    d = standalone_dispatcher()
    d.services.authz = Authorizer(LocalUsers(d.services.engine))
    return d


def ctx(peer: str = LOCAL, session: AuthSession | None = None) -> RequestContext:
    return RequestContext(transport=WIRE, peer=peer, auth=session or AuthSession())


def login(d: Dispatcher, c: RequestContext, user: str, pwd: str, db: str = "admin"
          ) -> dict[str, Any]:
    """A SCRAM-SHA-256 exchange as pymongo runs it; the last reply."""
    client = ClientConversation(user, pwd)
    r = d.run(db, {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": client.first(),
                   "options": {"skipEmptyExchange": True}}, c)
    if r["ok"] != 1.0:
        return r
    r2 = d.run(db, {"saslContinue": 1, "conversationId": r["conversationId"],
                    "payload": client.final(r["payload"])}, c)
    if r2["ok"] == 1.0:
        client.verify(r2["payload"])
        assert r2["done"] is True
    return r2


def make_root(d: Dispatcher) -> RequestContext:
    """The first user through the localhost exception, then a session logged in as it."""
    assert d.run("admin", {"createUser": "root", "pwd": PASSWORD, "roles": ["root"]},
                 ctx())["ok"] == 1.0
    c = ctx()
    assert login(d, c, "root", PASSWORD)["ok"] == 1.0
    return c


def test_scram_rfc7677_vector() -> None:
    """RFC 7677's example exchange (user/pencil, 4096 rounds) checks the proof math."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    salted = scram.salted_password("pencil", salt, 4096)
    client_key = scram._hmac(salted, b"Client Key")
    creds = {"iterationCount": 4096, "salt": "W22ZaJ0SNY7soEsUEjb6gQ==",
             "storedKey": base64.b64encode(hashlib.sha256(client_key).digest()).decode(),
             "serverKey": base64.b64encode(scram._hmac(salted, b"Server Key")).decode()}
    conv = scram.ServerConversation(credentials=creds)
    conv.client_first_bare = b"n=user,r=rOprNGfwEbeRWgbNEkqO"
    conv.nonce = b"rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    conv.server_first = b"r=" + conv.nonce + b",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final = conv.final(b"c=biws,r=" + conv.nonce
                       + b",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    conv2 = scram.ServerConversation(credentials=creds, client_first_bare=conv.client_first_bare,
                                     server_first=conv.server_first, nonce=conv.nonce)
    with pytest.raises(scram.ScramError):  # one flipped proof byte
        conv2.final(b"c=biws,r=" + conv.nonce
                    + b",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=")


def test_credentials_keep_only_salted_keys() -> None:
    creds = scram.make_credentials(PASSWORD)
    assert creds["iterationCount"] >= 15_000
    assert set(creds) == {"iterationCount", "salt", "storedKey", "serverKey"}
    assert PASSWORD not in repr(creds)
    with pytest.raises(ValueError):
        scram.make_credentials(PASSWORD, iterations=4096)


def test_unauthenticated_is_refused_but_handshake_is_served(d: Dispatcher, caplog: Any
                                                            ) -> None:
    make_root(d)
    c = ctx(REMOTE)
    for cmd in ({"hello": 1}, {"isMaster": 1}, {"buildInfo": 1}, {"connectionStatus": 1}):
        assert d.run("admin", cmd, c)["ok"] == 1.0, cmd
    with caplog.at_level(logging.WARNING, "helogale.security"):
        for db, cmd in (("app", {"find": "c"}), ("app", {"insert": "c", "documents": [{}]}),
                        ("admin", {"ping": 1}), ("admin", {"listDatabases": 1}),
                        ("admin", {"usersInfo": 1})):
            r = d.run(db, cmd, c)
            assert (r["code"], r["codeName"]) == (13, "Unauthorized"), cmd
    assert "requires authentication" in d.run("app", {"find": "c"}, c)["errmsg"]
    assert any(getattr(r, "fields", {}).get("command") == "insert" for r in caplog.records)
    assert d.services.engine.collection("app", "c").count({}) == 0


def test_localhost_exception_only_for_the_first_user(d: Dispatcher) -> None:
    r = d.run("admin", {"createUser": "x", "pwd": "p", "roles": ["root"]}, ctx(REMOTE))
    assert r["code"] == 13  # not from loopback
    assert d.run("app", {"createUser": "x", "pwd": "p", "roles": []}, ctx())["code"] == 13
    make_root(d)
    r = d.run("admin", {"createUser": "y", "pwd": "p", "roles": ["root"]}, ctx())
    assert r["code"] == 13  # a user exists: the exception is closed
    assert [u["user"] for u in d.run("admin", {"usersInfo": 1}, make_root_session(d))["users"]
            ] == ["root"]
    assert is_loopback("ipv4:127.0.0.1:1") and is_loopback("ipv6:[::1]:1")
    assert not is_loopback("ipv4:10.0.0.1:1") and not is_loopback("")


def make_root_session(d: Dispatcher) -> RequestContext:
    c = ctx()
    assert login(d, c, "root", PASSWORD)["ok"] == 1.0
    return c


def test_wrong_password_and_unknown_user_fail_alike(d: Dispatcher, caplog: Any) -> None:
    make_root(d)
    c = ctx(REMOTE)
    with caplog.at_level(logging.INFO, "helogale.security"):
        bad = login(d, c, "root", "wrong-password")
        unknown = login(d, c, "nobody", PASSWORD)
    for r in (bad, unknown):
        assert (r["code"], r["codeName"], r["errmsg"]) == (
            18, "AuthenticationFailed", "Authentication failed.")
    assert d.run("admin", {"connectionStatus": 1}, c)["authInfo"]["authenticatedUsers"] == []
    assert d.run("app", {"find": "c"}, c)["code"] == 13
    failed = [r for r in caplog.records if r.getMessage() == "authentication failed"]
    assert len(failed) == 2 and failed[0].fields["user"] == "root@admin"
    for record in caplog.records:
        assert PASSWORD not in str(record.__dict__) and "wrong-password" not in str(
            record.__dict__)
    # wrong mechanism, unknown conversation
    assert d.run("admin", {"saslStart": 1, "mechanism": "PLAIN", "payload": b"x"}, c)[
        "code"] == 334
    assert d.run("admin", {"saslContinue": 1, "conversationId": 99, "payload": b""}, c)[
        "code"] == 18


def test_stored_user_and_connection_status(d: Dispatcher) -> None:
    c = make_root(d)
    doc = d.services.engine.collection("admin", "system.users").find_one({"_id": "admin.root"})
    assert doc["user"] == "root" and doc["roles"] == [{"role": "root", "db": "admin"}]
    assert doc["credentials"]["SCRAM-SHA-256"]["iterationCount"] >= 15_000
    assert PASSWORD not in repr(doc)
    info = d.run("admin", {"connectionStatus": 1}, c)["authInfo"]
    assert info["authenticatedUsers"] == [{"user": "root", "db": "admin"}]
    assert info["authenticatedUserRoles"] == [{"role": "root", "db": "admin"}]
    assert d.run("admin", {"createUser": "root", "pwd": "x", "roles": []}, c)["code"] == 51003
    assert d.run("app", {"createUser": "u", "pwd": "x", "roles": ["nope"]}, c)["code"] == 31
    assert d.run("app", {"createUser": "u", "pwd": "x", "roles": ["root"]}, c)["code"] == 31
    assert d.run("app", {"dropUser": "ghost"}, c)["code"] == 11
    users = d.run("admin", {"usersInfo": {"user": "root", "db": "admin"}}, c)["users"]
    assert users[0]["mechanisms"] == ["SCRAM-SHA-256"] and "credentials" not in users[0]
    assert d.run("admin", {"logout": 1}, c)["ok"] == 1.0
    assert d.run("app", {"find": "c"}, c)["code"] == 13


def test_roles_grant_revoke_and_drop(d: Dispatcher) -> None:
    root = make_root(d)
    coll = d.services.engine.collection("app", "c")
    assert d.run("app", {"insert": "c", "documents": [{"_id": 1}]}, root)["n"] == 1
    assert d.run("app", {"createUser": "ann", "pwd": "pw-ann", "roles": ["read"]},
                 root)["ok"] == 1.0
    ann = ctx(REMOTE)
    assert login(d, ann, "ann", "pw-ann", db="app")["ok"] == 1.0
    assert d.run("app", {"find": "c"}, ann)["cursor"]["firstBatch"] == [{"_id": 1}]
    assert d.run("other", {"find": "c"}, ann)["code"] == 13  # read is per database
    assert d.run("app", {"insert": "c", "documents": [{"_id": 2}]}, ann)["code"] == 13
    assert d.run("app", {"drop": "c"}, ann)["code"] == 13
    assert d.run("admin", {"createUser": "evil", "pwd": "x", "roles": ["root"]}, ann)[
        "code"] == 13
    assert coll.count({}) == 1
    assert d.run("app", {"grantRolesToUser": "ann", "roles": ["readWrite"]}, root)["ok"] == 1.0
    assert d.run("app", {"insert": "c", "documents": [{"_id": 2}]}, ann)["n"] == 1
    assert d.run("app", {"revokeRolesFromUser": "ann", "roles": ["readWrite"]},
                 root)["ok"] == 1.0
    r = d.run("app", {"insert": "c", "documents": [{"_id": 3}]}, ann)  # at once, same session
    assert r["code"] == 13 and coll.count({}) == 2
    assert d.run("app", {"find": "c"}, ann)["ok"] == 1.0
    assert d.run("app", {"dropUser": "ann"}, root)["ok"] == 1.0
    assert d.run("app", {"find": "c"}, ann)["code"] == 13


def test_users_change_only_through_user_commands(d: Dispatcher) -> None:
    root = make_root(d)
    d.run("app", {"createUser": "ann", "pwd": "pw-ann", "roles": ["readAnyDatabase"]}, root)
    for cmd in ({"insert": "system.users", "documents": [{"_id": "admin.x"}]},
                {"update": "system.users", "updates": [{"q": {}, "u": {"$set": {"roles": []}}}]},
                {"delete": "system.users", "deletes": [{"q": {}, "limit": 0}]},
                {"drop": "system.users"}):
        assert d.run("admin", cmd, root)["code"] == 13, cmd
    assert d.services.engine.collection("admin", "system.users").count({}) == 1
    assert len(d.run("admin", {"find": "system.users"}, root)["cursor"]["firstBatch"]) == 1
    # readAnyDatabase on admin is refused: it exists only on admin (RoleNotFound above)
    ann = d.run("admin", {"createUser": "bob", "pwd": "pw", "roles": ["readAnyDatabase"]}, root)
    assert ann["ok"] == 1.0
    bob = ctx(REMOTE)
    assert login(d, bob, "bob", "pw")["ok"] == 1.0
    assert d.run("zzz", {"find": "c"}, bob)["ok"] == 1.0
    assert d.run("admin", {"find": "system.users"}, bob)["code"] == 13


def test_update_user_password_and_speculative_hello(d: Dispatcher) -> None:
    root = make_root(d)
    assert d.run("admin", {"updateUser": "root", "pwd": "new-pass"}, root)["ok"] == 1.0
    assert login(d, ctx(), "root", PASSWORD)["code"] == 18
    # speculativeAuthenticate: hello carries saslStart, the reply its first answer
    client = ClientConversation("root", "new-pass")
    c = ctx()
    hello = d.run("admin", {"hello": 1, "saslSupportedMechs": "admin.root",
                            "speculativeAuthenticate": {
                                "saslStart": 1, "mechanism": "SCRAM-SHA-256",
                                "payload": client.first(), "db": "admin",
                                "options": {"skipEmptyExchange": True}}}, c)
    assert hello["saslSupportedMechs"] == ["SCRAM-SHA-256"]
    spec = hello["speculativeAuthenticate"]
    r = d.run("admin", {"saslContinue": 1, "conversationId": spec["conversationId"],
                        "payload": client.final(spec["payload"])}, c)
    assert r["ok"] == 1.0 and r["done"] is True
    assert d.run("app", {"find": "c"}, c)["ok"] == 1.0


def test_without_auth_nothing_is_checked() -> None:
    d = standalone_dispatcher()
    assert d.run("app", {"insert": "c", "documents": [{}]}, ctx(REMOTE))["n"] == 1


def test_internal_identity_and_audit(d: Dispatcher, caplog: Any) -> None:
    """A router authenticates as __system@local (the key as SCRAM password) and names the
    end user in ``$audit``: the member's logs say whom a change was made for."""
    key = b"c2VjcmV0LWNsdXN0ZXIta2V5"
    d.services.users = LocalUsers(d.services.engine, key)
    d.services.authz = Authorizer(d.services.users)
    router = ctx(REMOTE)
    assert login(d, router, "__system", "wrong-key", db="local")["code"] == 18
    assert login(d, router, "__system", key.decode(), db="local")["ok"] == 1.0
    with caplog.at_level(logging.INFO, "helogale.security"):
        r = d.run("app", {"createUser": "ann", "pwd": "pw", "roles": ["read"],
                          "$audit": {"users": ["root@admin"]}}, router)
    assert r["ok"] == 1.0  # internal: no localhost exception needed, any command
    created = [x for x in caplog.records if x.getMessage() == "user created"]
    assert created[0].fields["by"] == ["root@admin"]
    # an ordinary user cannot borrow someone else's name with $audit
    ann = ctx(REMOTE)
    assert login(d, ann, "ann", "pw", db="app")["ok"] == 1.0
    with caplog.at_level(logging.WARNING, "helogale.security"):
        d.run("app", {"insert": "c", "documents": [{}], "$audit": {"users": ["root@admin"]}},
              ann)
    refused = [x for x in caplog.records if x.getMessage().startswith("command refused")]
    assert refused[-1].fields["for"] == ["ann@app"]


def test_bulk_write_needs_each_operations_action(d: Dispatcher) -> None:
    """``bulkWrite`` runs its operations' handlers itself: each needs its own action on its
    own database (checked before anything runs)."""
    root = make_root(d)
    d.run("app", {"createUser": "ann", "pwd": "pw", "roles": ["readWrite"]}, root)
    ann = ctx(REMOTE)
    assert login(d, ann, "ann", "pw", db="app")["ok"] == 1.0
    ok = d.run("admin", {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"_id": 1}}],
                         "nsInfo": [{"ns": "app.c"}]}, ann)
    assert ok["ok"] == 1.0 and ok["nInserted"] == 1
    for ns in ("other.c", "admin.system.users"):  # another database; the users
        r = d.run("admin", {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"_id": 2}},
                                                    {"insert": 1, "document": {"_id": 3}}],
                            "nsInfo": [{"ns": "app.c"}, {"ns": ns}]}, ann)
        assert r["code"] == 13, ns
    r = d.run("admin", {"bulkWrite": 1, "ops": [{"delete": 0, "filter": {}}],
                        "nsInfo": [{"ns": "admin.system.users"}]}, root)
    assert r["code"] == 13  # not even root writes users directly
    assert d.services.engine.collection("app", "c").count({}) == 1
    assert d.services.engine.collection("admin", "system.users").count({}) == 2


def test_out_and_merge_need_write_actions_where_they_write(d: Dispatcher) -> None:
    """An aggregate is a read, unless it ends in ``$out``/``$merge``: then its user needs
    insert and remove on the database it writes to."""
    root = make_root(d)
    d.run("app", {"insert": "src", "documents": [{"_id": 1}]}, root)
    d.run("app", {"createUser": "reader", "pwd": "pw", "roles": ["read"]}, root)
    d.run("app", {"createUser": "writer", "pwd": "pw", "roles": ["readWrite"]}, root)
    reader, writer = ctx(REMOTE), ctx(REMOTE)
    assert login(d, reader, "reader", "pw", db="app")["ok"] == 1.0
    assert login(d, writer, "writer", "pw", db="app")["ok"] == 1.0
    read_only = {"aggregate": "src", "pipeline": [{"$match": {}}], "cursor": {}}
    assert d.run("app", read_only, reader)["ok"] == 1.0
    for last in ({"$out": "copy"}, {"$merge": {"into": "copy"}}):
        cmd = {"aggregate": "src", "pipeline": [{"$match": {}}, last], "cursor": {}}
        assert d.run("app", cmd, reader)["code"] == 13, last
        assert d.run("app", cmd, writer)["ok"] == 1.0, last
    elsewhere = {"aggregate": "src", "pipeline": [{"$out": {"db": "other", "coll": "x"}}],
                 "cursor": {}}
    assert d.run("app", elsewhere, writer)["code"] == 13
    assert d.services.engine.collection("other", "x").count({}) == 0


def test_a_cursor_belongs_to_the_user_who_opened_it(d: Dispatcher) -> None:
    """Another user who learns a cursor id can neither read on from it nor kill it (13), as
    MongoDB refuses; its owner still can, and so can a second session of the same user."""
    root = make_root(d)
    assert d.run("admin", {"createUser": "other", "pwd": PASSWORD,
                           "roles": [{"role": "readWrite", "db": "app"}]}, root)["ok"] == 1.0
    d.run("app", {"insert": "c", "documents": [{"_id": i} for i in range(5)]}, root)
    opened = d.run("app", {"find": "c", "batchSize": 1}, root)["cursor"]
    cid = opened["id"]
    other = ctx()
    assert login(d, other, "other", PASSWORD, "admin")["ok"] == 1.0
    for cmd in ({"getMore": cid, "collection": "c"}, {"killCursors": "c", "cursors": [cid]}):
        refused = d.run("app", cmd, other)
        assert refused["code"] == 13 and "not created by the authenticated user" in refused[
            "errmsg"], refused
    second = make_root_session(d)  # the same user on another connection: still the owner
    more = d.run("app", {"getMore": cid, "collection": "c", "batchSize": 1}, second)["cursor"]
    assert more["nextBatch"] == [{"_id": 1}]
    killed = d.run("app", {"killCursors": "c", "cursors": [cid]}, root)
    assert killed["cursorsKilled"] == [cid]
    # ids are random, not a counter a neighbour can step through
    ids = {d.run("app", {"find": "c", "batchSize": 1}, root)["cursor"]["id"] for _ in range(4)}
    assert len(ids) == 4 and max(ids) - min(ids) > 1_000_000


def test_a_password_scram_cannot_prepare_is_bad_value(d: Dispatcher) -> None:
    """SASLprep refuses control characters: BadValue (2), not an internal error (the fuzzer's
    find), and the message does not carry the password."""
    root = make_root(d)
    for cmd in ({"createUser": "u", "pwd": "bad\x1fpw", "roles": []},
                {"updateUser": "root", "pwd": "bad\x1fpw"}):
        reply = d.run("admin", cmd, root)
        assert reply["code"] == 2 and "bad\x1fpw" not in reply["errmsg"], reply

"""Custom roles on an in-process member with ``--auth`` (node/security/role_commands.py):
what a role grants (collection-level privileges, inherited roles) applies from the next
command; role commands refuse what MongoDB refuses, with its codes."""

from __future__ import annotations

from typing import Any

import pytest

from node.commands.context import RequestContext
from node.commands.dispatcher import Dispatcher
from node.security.authz import Authorizer, LocalUsers
from node.server.standalone import standalone_dispatcher
from tests.test_security_users import PASSWORD, ctx, login, make_root

ORDERS = {"db": "app", "collection": "orders"}


@pytest.fixture
def d() -> Dispatcher:
    d = standalone_dispatcher()
    d.services.authz = Authorizer(LocalUsers(d.services.engine))
    return d


def _user(d: Dispatcher, root: RequestContext, name: str, roles: list[Any]) -> RequestContext:
    assert d.run("app", {"createUser": name, "pwd": PASSWORD, "roles": roles}, root)["ok"] == 1
    session = ctx()
    assert login(d, session, name, PASSWORD, "app")["ok"] == 1.0
    return session


def _code(reply: dict[str, Any]) -> int | None:
    return None if reply.get("ok") == 1.0 else int(reply["code"])


def test_a_collection_privilege_grants_that_collection_only(d: Dispatcher) -> None:
    root = make_root(d)
    d.run("app", {"insert": "orders", "documents": [{"_id": i} for i in range(3)]}, root)
    d.run("app", {"insert": "other", "documents": [{"_id": 1}]}, root)
    assert d.run("app", {"createRole": "ordersReader", "roles": [], "privileges": [
        {"resource": ORDERS, "actions": ["find"]}]}, root)["ok"] == 1.0
    alice = _user(d, root, "alice", ["ordersReader"])
    opened = d.run("app", {"find": "orders", "batchSize": 1}, alice)["cursor"]
    assert opened["firstBatch"] == [{"_id": 0}]
    more = d.run("app", {"getMore": opened["id"], "collection": "orders"}, alice)["cursor"]
    assert [x["_id"] for x in more["nextBatch"]] == [1, 2]
    assert _code(d.run("app", {"find": "other"}, alice)) == 13
    assert _code(d.run("app", {"insert": "orders", "documents": [{"_id": 9}]}, alice)) == 13
    # granted and revoked: from the next command on
    assert d.run("app", {"grantPrivilegesToRole": "ordersReader", "privileges": [
        {"resource": ORDERS, "actions": ["insert"]}]}, root)["ok"] == 1.0
    assert _code(d.run("app", {"insert": "orders", "documents": [{"_id": 9}]}, alice)) is None
    assert d.run("app", {"revokePrivilegesFromRole": "ordersReader", "privileges": [
        {"resource": ORDERS, "actions": ["insert"]}]}, root)["ok"] == 1.0
    assert _code(d.run("app", {"insert": "orders", "documents": [{"_id": 10}]}, alice)) == 13
    info = d.run("app", {"rolesInfo": "ordersReader", "showPrivileges": True}, root)["roles"]
    assert info[0]["privileges"] == [{"resource": ORDERS, "actions": ["find"]}]
    assert info[0]["isBuiltin"] is False
    # dropped: the user keeps the name of the role, which grants nothing any more
    assert d.run("app", {"dropRole": "ordersReader"}, root)["ok"] == 1.0
    assert _code(d.run("app", {"find": "orders"}, alice)) == 13


def test_inherited_roles_and_cycles(d: Dispatcher) -> None:
    root = make_root(d)
    d.run("app", {"createRole": "reader", "roles": [], "privileges": [
        {"resource": ORDERS, "actions": ["find"]}]}, root)
    assert d.run("app", {"createRole": "writer", "roles": ["reader", {"role": "read",
                                                                       "db": "logs"}],
                         "privileges": [{"resource": ORDERS, "actions": ["insert"]}]},
                 root)["ok"] == 1.0
    bob = _user(d, root, "bob", ["writer"])
    assert _code(d.run("app", {"insert": "orders", "documents": [{"_id": 1}]}, bob)) is None
    assert _code(d.run("app", {"find": "orders"}, bob)) is None  # through reader
    assert _code(d.run("logs", {"find": "x"}, bob)) is None  # through the built-in read@logs
    # a role may not come to inherit itself, directly or through another
    assert _code(d.run("app", {"grantRolesToRole": "reader", "roles": ["writer"]}, root)) == 5
    assert _code(d.run("app", {"grantRolesToRole": "reader", "roles": ["reader"]}, root)) == 5
    assert _code(d.run("app", {"updateRole": "reader", "roles": ["writer"]}, root)) == 5
    assert d.run("app", {"rolesInfo": "reader"}, root)["roles"][0]["roles"] == []
    assert d.run("app", {"revokeRolesFromRole": "writer", "roles": ["reader"]}, root)["ok"] == 1
    assert _code(d.run("app", {"find": "orders"}, bob)) == 13
    shown = d.run("app", {"rolesInfo": 1, "showBuiltinRoles": True}, root)["roles"]
    assert {r["role"] for r in shown} >= {"reader", "writer", "read", "readWrite"}


@pytest.mark.parametrize("cmd, code", [
    ({"createRole": "read", "roles": [], "privileges": []}, 49),
    ({"createRole": "", "roles": [], "privileges": []}, 2),
    ({"createRole": 1, "roles": [], "privileges": []}, 14),
    ({"createRole": "r", "roles": 1, "privileges": []}, 14),
    ({"createRole": "r", "roles": []}, 2),
    ({"createRole": "r", "roles": [], "privileges": [{"resource": {}, "actions": ["find"]}]},
     2),
    ({"createRole": "r", "roles": [], "privileges": [{"resource": ORDERS, "actions": []}]}, 2),
    ({"createRole": "r", "roles": [], "privileges": [
        {"resource": {"db": "app"}, "actions": ["find"]}]}, 2),
    ({"createRole": "r", "roles": [], "privileges": [
        {"resource": {"cluster": False}, "actions": ["find"]}]}, 2),
    ({"createRole": "r", "roles": [], "privileges": [
        {"resource": {"db": "app", "collection": "$cmd"}, "actions": ["find"]}]}, 2),
    ({"createRole": "r", "roles": [], "privileges": [
        {"resource": ORDERS, "actions": ["fakeAction"]}]}, 2),
    ({"createRole": "r", "roles": [], "privileges": [  # another database, from app
        {"resource": {"db": "other", "collection": ""}, "actions": ["find"]}]}, 2),
    ({"createRole": "r", "roles": [], "privileges": [
        {"resource": {"cluster": True}, "actions": ["serverStatus"]}]}, 2),
    ({"createRole": "r", "roles": ["nope"], "privileges": []}, 31),
    ({"createRole": "r", "roles": ["r"], "privileges": []}, 31),  # not yet there
    ({"updateRole": "read", "roles": []}, 49),
    ({"updateRole": "ghost", "roles": []}, 31),
    ({"updateRole": "ghost"}, 2),
    ({"grantRolesToRole": "ghost", "roles": ["read"]}, 31),
    ({"dropRole": "read"}, 49),
    ({"rolesInfo": 5}, 2),
    ({"rolesInfo": []}, 2),
])
def test_role_commands_refuse_as_mongodb(d: Dispatcher, cmd: dict[str, Any], code: int
                                         ) -> None:
    root = make_root(d)
    assert _code(d.run("app", cmd, root)) == code
    assert d.services.engine.collection("admin", "system.roles").find_one({}) is None


def test_duplicates_merge_and_dropping_a_missing_role_is_not_an_error(d: Dispatcher) -> None:
    root = make_root(d)
    assert d.run("app", {"createRole": "r", "roles": ["read", "read"], "privileges": [
        {"resource": ORDERS, "actions": ["find"]},
        {"resource": ORDERS, "actions": ["insert", "find"]}]}, root)["ok"] == 1.0
    doc = d.services.engine.collection("admin", "system.roles").find_one({"_id": "app.r"})
    assert doc["roles"] == [{"role": "read", "db": "app"}]
    assert doc["privileges"] == [{"resource": ORDERS, "actions": ["find", "insert"]}]
    assert _code(d.run("app", {"createRole": "r", "roles": [], "privileges": []}, root)) == 51002
    assert d.run("app", {"dropRole": "ghost"}, root)["ok"] == 1.0
    assert d.run("app", {"rolesInfo": "ghost"}, root)["roles"] == []
    # admin roles may name other databases and the cluster
    assert d.run("admin", {"createRole": "ops", "roles": [], "privileges": [
        {"resource": {"cluster": True}, "actions": ["serverStatus"]},
        {"resource": {"db": "", "collection": "audit"}, "actions": ["find"]}]}, root)["ok"] == 1
    assert d.run("app", {"dropAllRolesFromDatabase": 1}, root)["n"] == 1


def test_roles_change_only_through_role_commands(d: Dispatcher) -> None:
    root = make_root(d)
    forged = {"_id": "app.evil", "role": "evil", "db": "app", "roles": [],
              "privileges": [{"resource": {"db": "", "collection": ""}, "actions": ["find"]}]}
    assert _code(d.run("admin", {"insert": "system.roles", "documents": [forged]}, root)) == 13
    reader = _user(d, root, "carol", [{"role": "read", "db": "app"}])
    assert _code(d.run("app", {"createRole": "mine", "roles": [], "privileges": []},
                       reader)) == 13
    assert _code(d.run("admin", {"find": "system.roles"}, reader)) == 13


def test_user_and_role_commands_refuse_unknown_fields(d: Dispatcher) -> None:
    """Their field tables (node/commands/catalog_requests.py): 40415 and 14 as MongoDB's IDL."""
    root = make_root(d)
    assert _code(d.run("app", {"createRole": "r", "roles": [], "privileges": [],
                               "bogus": 1}, root)) == 40415
    assert _code(d.run("app", {"createUser": "u", "pwd": "pw", "roles": [],
                               "bogus": 1}, root)) == 40415
    assert _code(d.run("app", {"createUser": "u", "pwd": "pw", "roles": {}}, root)) == 14
    assert _code(d.run("app", {"rolesInfo": 1, "showPrivileges": "asUserFragment",
                               "comment": "x"}, root)) is None

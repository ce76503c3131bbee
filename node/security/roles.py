"""Actions and MongoDB's built-in roles.

Every command row declares the action(s) it needs (``Command.action``): :data:`OPEN`
(served to anyone, even with ``--auth``: the handshake and the authentication commands),
:data:`AUTHENTICATED` (any authenticated user), a database action (checked on the command's
database) or a cluster action (:data:`CLUSTER_ACTIONS`). A row with no action is refused to
every user but the cluster's internal identity (fail closed).

A user's roles (``[{role, db}]``) grant privileges: :func:`privileges` turns them into
``{resource: actions}`` where a resource is ``"db:<name>"``, :data:`ANY_DB` or
:data:`CLUSTER`. The ``*AnyDatabase`` roles, ``clusterAdmin`` and ``root`` exist only on
``admin``, as in MongoDB.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

OPEN = "open"
AUTHENTICATED = "authenticated"
INTERNAL = "internal"
"""Commands only members and routers send each other (the cluster's own identity)."""

CLUSTER = "cluster"
ANY_DB = "anyDatabase"

READ = frozenset({"find", "listCollections", "listIndexes", "collStats", "dbStats",
                  "killCursors"})
WRITE = frozenset({"insert", "update", "remove", "createCollection", "dropCollection",
                   "createIndex", "dropIndex", "renameCollectionSameDB", "convertToCapped"})
DB_ADMIN = frozenset({"listCollections", "listIndexes", "collStats", "dbStats",
                      "createCollection", "dropCollection", "createIndex", "dropIndex",
                      "dropDatabase", "renameCollectionSameDB", "convertToCapped", "collMod"})
USER_ADMIN = frozenset({"createUser", "updateUser", "dropUser", "grantRole", "revokeRole",
                        "viewUser"})
CLUSTER_ACTIONS = frozenset({"listDatabases", "serverStatus", "getParameter",
                             "replSetGetStatus", "replSetGetConfig", "replSetConfigure",
                             "replSetStateChange", "getShardVersion", "shardingAdmin",
                             "applyOps", "configureFailPoint", "inprog", "killop", "top"})
DB_ACTIONS = READ | WRITE | DB_ADMIN | USER_ADMIN

_ADMIN_ONLY: dict[str, dict[str, frozenset[str]]] = {
    "readAnyDatabase": {ANY_DB: READ, CLUSTER: frozenset({"listDatabases"})},
    "readWriteAnyDatabase": {ANY_DB: READ | WRITE, CLUSTER: frozenset({"listDatabases"})},
    "dbAdminAnyDatabase": {ANY_DB: DB_ADMIN, CLUSTER: frozenset({"listDatabases"})},
    "userAdminAnyDatabase": {ANY_DB: USER_ADMIN, CLUSTER: frozenset({"listDatabases"})},
    "clusterAdmin": {CLUSTER: CLUSTER_ACTIONS - {"applyOps", "configureFailPoint"},
                     ANY_DB: frozenset({"dropDatabase"})},
    "root": {ANY_DB: DB_ACTIONS, CLUSTER: CLUSTER_ACTIONS},
    "__system": {ANY_DB: DB_ACTIONS, CLUSTER: CLUSTER_ACTIONS | {INTERNAL}},
}
_PER_DB: dict[str, frozenset[str]] = {
    "read": READ,
    "readWrite": READ | WRITE,
    "dbAdmin": DB_ADMIN,
    "userAdmin": USER_ADMIN,
}
BUILTIN_ROLES = tuple(_PER_DB) + tuple(r for r in _ADMIN_ONLY if r != "__system")


def role_exists(role: str, db: str) -> bool:
    """A built-in role of that name exists on that database."""
    return role in _PER_DB or (role in _ADMIN_ONLY and db == "admin" and role != "__system")


def privileges(roles: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """``{resource: actions}`` granted by ``roles`` (unknown roles grant nothing)."""
    out: dict[str, set[str]] = {}
    for r in roles:
        name, db = r.get("role"), r.get("db")
        if not isinstance(name, str) or not isinstance(db, str):
            continue
        if name in _PER_DB:
            out.setdefault(f"db:{db}", set()).update(_PER_DB[name])
        elif name in _ADMIN_ONLY and db == "admin":
            for resource, actions in _ADMIN_ONLY[name].items():
                out.setdefault(resource, set()).update(actions)
    return out


def allowed(privs: Mapping[str, set[str]], action: str, db: str) -> bool:
    """Whether ``privs`` allow ``action`` on database ``db`` (or on the cluster)."""
    if action in CLUSTER_ACTIONS or action == INTERNAL:
        return action in privs.get(CLUSTER, ())
    return action in privs.get(f"db:{db}", ()) or action in privs.get(ANY_DB, ())

"""Actions and MongoDB's built-in roles.

Every command row declares the action(s) it needs (``Command.action``): :data:`OPEN`
(served to anyone, even with ``--auth``: the handshake and the authentication commands),
:data:`AUTHENTICATED` (any authenticated user), a database action (checked on the command's
database) or a cluster action (:data:`CLUSTER_ACTIONS`). A row with no action is refused to
every user but the cluster's internal identity (fail closed).

A user's roles (``[{role, db}]``) grant privileges: :func:`privileges` turns them into
``{resource: actions}`` where a resource is ``"db:<name>"``, ``"ns:<db>.<coll>"``,
``"coll:<coll>"`` (that collection in every database), :data:`ANY_DB` or :data:`CLUSTER`. The
``*AnyDatabase`` roles, ``clusterAdmin`` and ``root`` exist only on ``admin``, as in MongoDB.
A role that is not built in is a custom role (``admin.system.roles``, made by ``createRole``):
its own privileges plus those of the roles it inherits, looked up through ``find_role``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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
                        "viewUser", "createRole", "dropRole", "viewRole"})
CLUSTER_ACTIONS = frozenset({"listDatabases", "serverStatus", "getParameter",
                             "replSetGetStatus", "replSetGetConfig", "replSetConfigure",
                             "replSetStateChange", "getShardVersion", "shardingAdmin",
                             "applyOps", "configureFailPoint", "inprog", "killop", "top"})
DB_ACTIONS = READ | WRITE | DB_ADMIN | USER_ADMIN
MONGODB_ACTIONS = DB_ACTIONS | CLUSTER_ACTIONS | frozenset({
    "bypassDocumentValidation", "changeStream", "compact", "reIndex", "validate", "dbHash",
    "enableProfiler", "planCacheRead", "planCacheWrite", "indexStats", "killAnyCursor",
    "changePassword", "changeCustomData", "changeOwnPassword", "changeOwnCustomData",
    "setAuthenticationRestriction", "setParameter", "replSetHeartbeat", "addShard",
    "removeShard", "enableSharding", "shardCollection", "splitChunk", "moveChunk",
    "getShardMap", "listShards", "flushRouterConfig", "shutdown", "fsync", "hostInfo",
    "connPoolStats", "logRotate", "getLog", "getCmdLineOpts", "netstat", "listSessions",
    "killAnySession", "cleanupOrphaned", "appendOplogNote", "useUUID", "impersonate"})
"""Action names a custom role's privilege may name: Helogale's own plus MongoDB's others
(accepted so roles port unchanged; an action no Helogale command checks grants nothing)."""

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


MAX_ROLE_DEPTH = 16
"""Custom roles inherit at most this deep (a longer chain grants nothing more)."""

FindRole = Callable[[str, str], "Mapping[str, Any] | None"]


def resource_key(resource: Mapping[str, Any]) -> str | None:
    """A custom privilege's resource as a :func:`privileges` key: ``{cluster: true}``,
    ``{db, collection}`` with either left empty for "any" (None: not one of those)."""
    if resource.get("cluster") is True:
        return CLUSTER
    db, coll = resource.get("db"), resource.get("collection")
    if not isinstance(db, str) or not isinstance(coll, str):
        return None
    if db and coll:
        return f"ns:{db}.{coll}"
    if db:
        return f"db:{db}"
    return f"coll:{coll}" if coll else ANY_DB


def privileges(roles: Iterable[Mapping[str, Any]], find_role: FindRole | None = None
               ) -> dict[str, set[str]]:
    """``{resource: actions}`` granted by ``roles`` (unknown roles grant nothing; custom
    roles through ``find_role(role, db)``, inherited roles included, each role once)."""
    out: dict[str, set[str]] = {}
    seen: set[tuple[str, str]] = set()

    def grant(r: Mapping[str, Any], depth: int) -> None:
        name, db = r.get("role"), r.get("db")
        if not isinstance(name, str) or not isinstance(db, str) or (name, db) in seen:
            return
        seen.add((name, db))
        if name in _PER_DB:
            out.setdefault(f"db:{db}", set()).update(_PER_DB[name])
        elif name in _ADMIN_ONLY and db == "admin":
            for resource, actions in _ADMIN_ONLY[name].items():
                out.setdefault(resource, set()).update(actions)
        elif find_role is not None and depth < MAX_ROLE_DEPTH:
            doc = find_role(name, db)
            if doc is None:
                return
            for priv in doc.get("privileges") or ():
                key = resource_key(priv.get("resource") or {})
                if key is not None:
                    out.setdefault(key, set()).update(
                        a for a in priv.get("actions") or () if isinstance(a, str))
            for inherited in doc.get("roles") or ():
                if isinstance(inherited, Mapping):
                    grant(inherited, depth + 1)

    for r in roles:
        grant(r, 0)
    return out


def allowed(privs: Mapping[str, set[str]], action: str, db: str, coll: str | None = None
            ) -> bool:
    """Whether ``privs`` allow ``action`` on database ``db`` (or on the cluster); with
    ``coll``, a privilege on that collection (or that collection name anywhere) is enough."""
    if action in CLUSTER_ACTIONS or action == INTERNAL:
        return action in privs.get(CLUSTER, ())
    if action in privs.get(f"db:{db}", ()) or action in privs.get(ANY_DB, ()):
        return True
    return coll is not None and (action in privs.get(f"ns:{db}.{coll}", ())
                                 or action in privs.get(f"coll:{coll}", ()))

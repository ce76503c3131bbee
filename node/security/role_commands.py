"""Custom roles: ``createRole``, ``updateRole``, ``dropRole``, ``dropAllRolesFromDatabase``,
``grantRolesToRole``, ``revokeRolesFromRole``, ``grantPrivilegesToRole``,
``revokePrivilegesFromRole`` and ``rolesInfo``, as MongoDB has them.

A role lives in ``admin.system.roles`` in MongoDB's shape (``_id: "<db>.<role>"``, ``role``,
``db``, ``privileges: [{resource, actions}]``, ``roles: [{role, db}]``) and changes only through
``applyOps`` entries with preconditions, replicated like any write (as users do,
:mod:`node.security.users`). What a role grants is resolved at every authorization check
(:func:`node.security.roles.privileges`), so a change applies from the next command on.

Checks, with MongoDB's codes: a built-in role's name cannot be taken, changed or dropped
(InvalidRoleModification, 49); a role that exists already (51002); unknown roles (RoleNotFound,
31); a role that would inherit itself, directly or not (GraphContainsCycle, 5); a resource must
be ``{db, collection}`` (both strings, either empty for "any") or ``{cluster: true}``, a role
outside ``admin`` may only name its own database, and actions must be MongoDB's (BadValue, 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from node.commands.context import RequestContext
from node.engine.errors import BAD_VALUE, ROLE_NOT_FOUND, MongoError, type_mismatch
from node.security import roles as R
from node.security.authz import ROLES_COLL, ROLES_NS, USERS_DB, user_id
from node.security.users import audit, role_list, submit_ops

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices

GRAPH_CONTAINS_CYCLE = 5
INVALID_ROLE_MODIFICATION = 49
ROLE_ALREADY_EXISTS = 51002


def _name(cmd: Mapping[str, Any], field: str) -> str:
    name = cmd.get(field)
    if type(name) is not str:  # not bson's Code, a str subclass
        raise type_mismatch(f"\"{field}\" must be a string (the role's name)")
    if not name:
        raise MongoError(BAD_VALUE, "Role name must be non-empty")
    return name


def _not_builtin(name: str, db: str, verb: str) -> None:
    if R.role_exists(name, db) or name == "__system":
        raise MongoError(INVALID_ROLE_MODIFICATION, f"Cannot {verb} the built-in role "
                         f"\"{name}@{db}\"", code_name="InvalidRoleModification")


def _not_found(name: str, db: str) -> MongoError:
    return MongoError(ROLE_NOT_FOUND, f"Could not find role: {name}@{db}",
                      code_name="RoleNotFound")


def _resource(raw: Any, db: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise MongoError(BAD_VALUE, "a privilege needs a resource document")
    if set(raw) == {"cluster"} and raw["cluster"] is True:
        resource: dict[str, Any] = {"cluster": True}
    elif set(raw) == {"db", "collection"} and all(type(raw[k]) is str for k in raw):
        resource = {"db": raw["db"], "collection": raw["collection"]}
        if resource["collection"].startswith("$") or "\x00" in resource["collection"]:
            raise MongoError(BAD_VALUE, f"invalid collection name in a privilege's resource: "
                             f"{resource['collection']!r}")
    else:
        raise MongoError(BAD_VALUE, "a privilege's resource must be {db: <string>, collection: "
                         "<string>} or {cluster: true}")
    if db != USERS_DB and resource != {"db": db, "collection": resource.get("collection")}:
        raise MongoError(BAD_VALUE, f"Roles on the '{db}' database cannot be granted privileges "
                         "that target other databases or the cluster")
    return resource


def _privileges(value: Any, db: str, field: str = "privileges") -> list[dict[str, Any]]:
    """A privileges array, checked; privileges on the same resource merged (actions sorted)."""
    if not isinstance(value, list):
        raise type_mismatch(f"\"{field}\" field must be an array")
    merged: dict[tuple[Any, ...], set[str]] = {}
    resources: dict[tuple[Any, ...], dict[str, Any]] = {}
    for priv in value:
        if not isinstance(priv, Mapping) or "resource" not in priv or "actions" not in priv:
            raise MongoError(BAD_VALUE, "a privilege must be {resource: ..., actions: [...]}")
        resource = _resource(priv["resource"], db)
        actions = priv["actions"]
        if not isinstance(actions, list) or not actions:
            raise MongoError(BAD_VALUE, "a privilege needs a non-empty array of actions")
        for action in actions:
            if type(action) is not str or action not in R.MONGODB_ACTIONS:
                raise MongoError(BAD_VALUE, f"Unrecognized action privilege string: {action}")
        key = tuple(sorted(resource.items()))
        resources[key] = resource
        merged.setdefault(key, set()).update(actions)
    return [{"resource": resources[k], "actions": sorted(a)} for k, a in merged.items()]


class _Roles:
    """Custom-role documents as this member reads them (for existence and cycle checks)."""

    def __init__(self, node: NodeServices) -> None:
        self.coll = node.engine.collection(USERS_DB, ROLES_COLL)

    def get(self, name: str, db: str) -> dict[str, Any] | None:
        return self.coll.find_one({"_id": user_id(name, db)})

    def exists(self, name: str, db: str) -> bool:
        return R.role_exists(name, db) or self.get(name, db) is not None

    def check_acyclic(self, name: str, db: str, inherits: list[dict[str, str]]) -> None:
        """GraphContainsCycle (5) if ``name@db`` would inherit itself through ``inherits``."""
        stack = list(inherits)
        seen: set[tuple[str, str]] = set()
        while stack:
            r = stack.pop()
            key = (r["role"], r["db"])
            if key == (name, db):
                raise MongoError(GRAPH_CONTAINS_CYCLE, f"Granting these roles to {name}@{db} "
                                 "would introduce a cycle in the role graph",
                                 code_name="GraphContainsCycle")
            if key in seen:
                continue
            seen.add(key)
            doc = self.get(*key)
            if doc is not None:
                stack.extend(x for x in doc.get("roles") or () if isinstance(x, Mapping))


def _submit(node: NodeServices, cmd: Mapping[str, Any], ctx: RequestContext, op: dict[str, Any],
            name: str, db: str, *, must_exist: bool) -> dict[str, Any]:
    """One ``applyOps`` entry on ``admin.system.roles``, preconditioned on the role existing
    (or not); a failed precondition is the role error it stands for."""
    rid = user_id(name, db)
    pre = {"ns": ROLES_NS, "q": {"_id": rid}, "res": {"_id": rid} if must_exist else None}
    missing = _not_found(name, db) if must_exist else MongoError(
        ROLE_ALREADY_EXISTS, f"Role \"{name}@{db}\" already exists")
    return submit_ops(node, cmd, [op], [pre], ctx, missing)


def create_role(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                ) -> dict[str, Any]:
    name = _name(cmd, "createRole")
    if db in ("local", "$external", "config"):
        raise MongoError(BAD_VALUE, f"cannot create roles in the {db} database")
    _not_builtin(name, db, "create")
    for field in ("privileges", "roles"):
        if field not in cmd:
            raise MongoError(BAD_VALUE, f"\"createRole\" command requires a \"{field}\" array")
    roles = _Roles(node)
    privileges = _privileges(cmd["privileges"], db)
    inherits = role_list(cmd["roles"], db, roles.exists)
    roles.check_acyclic(name, db, inherits)
    doc = {"_id": user_id(name, db), "role": name, "db": db, "privileges": privileges,
           "roles": inherits}
    extra = _submit(node, cmd, ctx, {"op": "i", "ns": ROLES_NS, "o": doc}, name, db,
                    must_exist=False)
    audit("role created", ctx, name, db)
    return extra


def update_role(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                ) -> dict[str, Any]:
    name = _name(cmd, "updateRole")
    _not_builtin(name, db, "update")
    roles = _Roles(node)
    changes: dict[str, Any] = {}
    if "privileges" in cmd:
        changes["privileges"] = _privileges(cmd["privileges"], db)
    if "roles" in cmd:
        changes["roles"] = role_list(cmd["roles"], db, roles.exists)
        roles.check_acyclic(name, db, changes["roles"])
    if not changes:
        raise MongoError(BAD_VALUE, "Must specify at least one field to update in updateRole")
    extra = _submit(node, cmd, ctx, {"op": "u", "ns": ROLES_NS, "o2": {"_id": user_id(name, db)},
                                     "o": {"$set": changes}, "b": False}, name, db,
                    must_exist=True)
    audit("role updated", ctx, name, db, fields=sorted(changes))
    return extra


def drop_role(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
              ) -> dict[str, Any]:
    """Drop a custom role (nothing to do for one that does not exist, as MongoDB); users and
    roles that held it simply stop getting anything from it."""
    name = _name(cmd, "dropRole")
    _not_builtin(name, db, "drop")
    if _Roles(node).get(name, db) is None:
        return {}
    extra = _submit(node, cmd, ctx, {"op": "d", "ns": ROLES_NS,
                                     "o": {"_id": user_id(name, db)}}, name, db,
                    must_exist=True)
    audit("role dropped", ctx, name, db)
    return extra


def drop_all_roles(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                   ) -> dict[str, Any]:
    docs = _Roles(node).coll.find({"db": db})
    ops = [{"op": "d", "ns": ROLES_NS, "o": {"_id": d["_id"]}} for d in docs]
    extra = submit_ops(node, cmd, ops, [], ctx, _not_found("*", db)) if ops else {}
    audit("roles dropped", ctx, "*", db, n=len(ops))
    return {"n": len(ops), **extra}


def _change(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext,
            field: str, what: str, build: Callable[[_Roles, str], dict[str, Any]]
            ) -> dict[str, Any]:
    name = _name(cmd, field)
    _not_builtin(name, db, "modify")
    roles = _Roles(node)
    if roles.get(name, db) is None:
        raise _not_found(name, db)
    update = build(roles, name)
    extra = _submit(node, cmd, ctx, {"op": "u", "ns": ROLES_NS, "o2": {"_id": user_id(name, db)},
                                     "o": update, "b": False}, name, db, must_exist=True)
    audit(what, ctx, name, db)
    return extra


def _non_empty(cmd: Mapping[str, Any], field: str) -> list[Any]:
    value = cmd.get(field)
    if not isinstance(value, list):
        raise type_mismatch(f"\"{field}\" field must be an array")
    if not value:
        raise MongoError(BAD_VALUE, f"\"{field}\" argument must be a non-empty array")
    return value


def grant_roles_to_role(node: NodeServices, db: str, cmd: Mapping[str, Any],
                        ctx: RequestContext) -> dict[str, Any]:
    def build(roles: _Roles, name: str) -> dict[str, Any]:
        granted = role_list(_non_empty(cmd, "roles"), db, roles.exists)
        current = [r for r in (roles.get(name, db) or {}).get("roles", [])]
        roles.check_acyclic(name, db, current + granted)
        return {"$addToSet": {"roles": {"$each": granted}}}
    return _change(node, db, cmd, ctx, "grantRolesToRole", "roles granted to role", build)


def revoke_roles_from_role(node: NodeServices, db: str, cmd: Mapping[str, Any],
                           ctx: RequestContext) -> dict[str, Any]:
    def build(roles: _Roles, name: str) -> dict[str, Any]:
        revoked = role_list(_non_empty(cmd, "roles"), db, lambda _r, _d: True)
        return {"$pull": {"roles": {"$in": revoked}}}
    return _change(node, db, cmd, ctx, "revokeRolesFromRole", "roles revoked from role", build)


def _edit_privileges(current: list[dict[str, Any]], changes: list[dict[str, Any]],
                     grant: bool) -> list[dict[str, Any]]:
    by_resource = {tuple(sorted(p["resource"].items())): (p["resource"], set(p["actions"]))
                   for p in current}
    for p in changes:
        key = tuple(sorted(p["resource"].items()))
        resource, actions = by_resource.get(key, (p["resource"], set()))
        actions = actions | set(p["actions"]) if grant else actions - set(p["actions"])
        by_resource[key] = (resource, actions)
    return [{"resource": r, "actions": sorted(a)} for r, a in by_resource.values() if a]


def grant_privileges_to_role(node: NodeServices, db: str, cmd: Mapping[str, Any],
                             ctx: RequestContext) -> dict[str, Any]:
    return _privileges_change(node, db, cmd, ctx, "grantPrivilegesToRole", grant=True)


def revoke_privileges_from_role(node: NodeServices, db: str, cmd: Mapping[str, Any],
                                ctx: RequestContext) -> dict[str, Any]:
    return _privileges_change(node, db, cmd, ctx, "revokePrivilegesFromRole", grant=False)


def _privileges_change(node: NodeServices, db: str, cmd: Mapping[str, Any],
                       ctx: RequestContext, field: str, *, grant: bool) -> dict[str, Any]:
    def build(roles: _Roles, name: str) -> dict[str, Any]:
        changes = _privileges(_non_empty(cmd, "privileges"), db)
        current = (roles.get(name, db) or {}).get("privileges", [])
        return {"$set": {"privileges": _edit_privileges(current, changes, grant)}}
    what = "privileges granted to role" if grant else "privileges revoked from role"
    return _change(node, db, cmd, ctx, field, what, build)


def roles_info(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any]:
    """``rolesInfo``: 1 (this database's custom roles; ``showBuiltinRoles`` adds the
    built-in ones), a name, ``{role, db}`` or an array of them; unknown roles are left out.
    ``showPrivileges`` adds each role's own and inherited privileges."""
    arg = cmd.get("rolesInfo")
    roles = _Roles(node)
    wanted: list[tuple[str, str]] = []
    if arg == 1 and not isinstance(arg, bool):
        wanted = [(d["role"], d["db"]) for d in roles.coll.find({"db": db}, None,
                                                                 sort={"_id": 1})]
        if cmd.get("showBuiltinRoles"):
            wanted += [(r, db) for r in R.BUILTIN_ROLES if R.role_exists(r, db)]
    else:
        items = arg if isinstance(arg, list) else [arg]
        if isinstance(arg, list) and not arg:
            raise MongoError(BAD_VALUE, "rolesInfo needs at least one role")
        for item in items:
            if type(item) is str:
                wanted.append((item, db))
            elif isinstance(item, Mapping) and type(item.get("role")) is str \
                    and type(item.get("db")) is str:
                wanted.append((item["role"], item["db"]))
            else:
                raise MongoError(BAD_VALUE, "rolesInfo takes 1, a role name, {role, db} or an "
                                 "array of them")
    out = []
    for name, rdb in wanted:
        info = _describe(roles, name, rdb, bool(cmd.get("showPrivileges")))
        if info is not None:
            out.append(info)
    return {"roles": out}


def _describe(roles: _Roles, name: str, db: str, show_privileges: bool
              ) -> dict[str, Any] | None:
    builtin = R.role_exists(name, db)
    doc = None if builtin else roles.get(name, db)
    if not builtin and doc is None:
        return None
    inherits = [] if doc is None else list(doc.get("roles", []))
    info: dict[str, Any] = {"role": name, "db": db, "isBuiltin": builtin, "roles": inherits}
    if show_privileges:
        info["privileges"] = [] if doc is None else list(doc.get("privileges", []))
        granted = R.privileges([{"role": name, "db": db}], roles.get)
        info["inheritedPrivileges"] = [{"resource": res, "actions": sorted(acts)}
                                       for res, acts in sorted(granted.items())]
    return info

"""User management and authentication commands.

User management (``createUser``, ``updateUser``, ``dropUser``, ``usersInfo``,
``grantRolesToUser``, ``revokeRolesFromUser``): users live in ``admin.system.users`` in
MongoDB's shape (``_id: "<db>.<user>"``, ``user``, ``db``, ``roles``, ``credentials`` with only
the SCRAM-SHA-256 salted keys) and change only through ``applyOps`` entries with
preconditions, replicated through the Raft log like any write; the password itself never
reaches the log.

Authentication (``saslStart``/``saslContinue``, ``speculativeAuthenticate`` in ``hello``,
``logout``, ``connectionStatus``): a SCRAM-SHA-256 exchange on the connection's
:class:`~node.security.authz.AuthSession`. A failure answers AuthenticationFailed (18) and
is logged with the user, database, mechanism and peer, never the password or the proof.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bson import Binary

from helogale.auth import saslprep
from node.commands import crud
from node.commands.args import is_number
from node.commands.context import RequestContext
from node.engine.errors import (
    AUTHENTICATION_FAILED,
    BAD_VALUE,
    MECHANISM_UNAVAILABLE,
    ROLE_NOT_FOUND,
    USER_ALREADY_EXISTS,
    USER_NOT_FOUND,
    MongoError,
    type_mismatch,
)
from node.security import roles as R
from node.security.authz import (
    USERS_COLL,
    USERS_DB,
    USERS_NS,
    AuthSession,
    acting_users,
    find_role,
    find_user,
    user_id,
)
from node.security.scram import MECHANISM, ScramError, ServerConversation, make_credentials

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices

log = logging.getLogger("helogale.security")

_FAKE_SEED = secrets.token_bytes(32)
"""Salts for unknown users' fake conversations (stable for this process's life)."""


# ---------------------------------------------------------------------- helpers
def role_list(value: Any, db: str, exists: Callable[[str, str], bool],
              field: str = "roles") -> list[dict[str, str]]:
    """A roles array (names on ``db`` or ``{role, db}``), each role existing (RoleNotFound,
    31), duplicates dropped."""
    if not isinstance(value, list):
        raise type_mismatch(f"\"{field}\" field must be an array")
    out: list[dict[str, str]] = []
    for r in value:
        if type(r) is str:  # exactly: bson's Code is a str subclass
            role = {"role": r, "db": db}
        elif isinstance(r, Mapping) and type(r.get("role")) is str \
                and type(r.get("db")) is str:
            role = {"role": r["role"], "db": r["db"]}
        else:
            raise MongoError(BAD_VALUE, "a role must be a name or {role: <name>, db: <db>}")
        if not exists(role["role"], role["db"]):
            raise MongoError(ROLE_NOT_FOUND, f"Could not find role: {role['role']}@{role['db']}",
                             code_name="RoleNotFound")
        if role not in out:
            out.append(role)
    return out


def _roles(node: NodeServices, value: Any, db: str) -> list[dict[str, str]]:
    """A user's roles: built-in ones, or custom roles this member holds."""
    return role_list(value, db, lambda role, rdb: R.role_exists(role, rdb)
                     or find_role(node.engine, role, rdb) is not None)


def _name(cmd: Mapping[str, Any], field: str) -> str:
    name = cmd.get(field)
    if not isinstance(name, str) or not name:
        raise MongoError(BAD_VALUE, f"{field} needs a user name (a non-empty string)")
    return name


def _password(cmd: Mapping[str, Any]) -> str:
    pwd = cmd.get("pwd")
    if not isinstance(pwd, str) or not pwd:
        raise MongoError(BAD_VALUE, "pwd must be a non-empty string")
    if cmd.get("digestPassword") is False:
        raise MongoError(BAD_VALUE, "digestPassword: false is not supported (SCRAM-SHA-256)")
    try:  # a password SCRAM cannot prepare (control characters, ...) is the client's error
        saslprep(pwd)
    except ValueError as exc:
        raise MongoError(BAD_VALUE, f"Error preparing password: {exc}") from None
    mechs = cmd.get("mechanisms")
    if mechs is not None and (not isinstance(mechs, list)
                              or any(m != MECHANISM for m in mechs)):
        raise MongoError(BAD_VALUE, f"only {MECHANISM} is supported")
    return pwd


def submit_ops(node: NodeServices, cmd: Mapping[str, Any], ops: list[dict[str, Any]],
               pre: list[dict[str, Any]], ctx: RequestContext, failed: MongoError
               ) -> dict[str, Any]:
    """Replicate the ops as one ``applyOps`` entry (waiting here, whatever the transport);
    a failed precondition raises ``failed``. The reply's extra fields
    (``writeConcernError``)."""
    entry = {"op": "applyOps", "ops": ops, "preCondition": pre}
    reply = crud.submit(node, cmd, entry, dataclasses.replace(ctx, deferred_replies=False))
    assert isinstance(reply, dict)
    if reply.get("ok", 1.0) == 0.0:
        if reply.get("code") != BAD_VALUE:
            raise MongoError(int(reply.get("code", 1)), str(reply.get("errmsg", "")))
        raise failed
    return {k: v for k, v in reply.items() if k == "writeConcernError"}


def _submit(node: NodeServices, cmd: Mapping[str, Any], ops: list[dict[str, Any]],
            pre: list[dict[str, Any]], ctx: RequestContext, user: str, db: str
            ) -> dict[str, Any]:
    """:func:`submit_ops` on a user: a failed precondition is UserAlreadyExists for a
    creation, UserNotFound otherwise."""
    failed = (MongoError(USER_ALREADY_EXISTS, f'User "{user}@{db}" already exists')
              if any(p["res"] is None for p in pre) else _not_found(user, db))
    return submit_ops(node, cmd, ops, pre, ctx, failed)


def _names(roles: list[dict[str, str]]) -> list[str]:
    return [f"{r['role']}@{r['db']}" for r in roles]


def audit(what: str, ctx: RequestContext, user: str, db: str, **fields: Any) -> None:
    """One log line per user change: which user, from where, and for whom (the users the
    command acts for: a router's ``$audit``, or the session's)."""
    log.info(what, extra={"fields": {"user": f"{user}@{db}", "peer": ctx.peer,
                                     "by": list(acting_users()), **fields}})


def _not_found(user: str, db: str) -> MongoError:
    return MongoError(USER_NOT_FOUND, f"Could not find user \"{user}\" for db \"{db}\"",
                      code_name="UserNotFound")


def _exists(uid: str) -> dict[str, Any]:
    return {"ns": USERS_NS, "q": {"_id": uid}, "res": {"_id": uid}}


# ---------------------------------------------------------------------- user management
def create_user(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                ) -> dict[str, Any]:
    name = _name(cmd, "createUser")
    if db in ("local", "$external"):
        raise MongoError(BAD_VALUE, f"cannot create users in the {db} database")
    pwd = _password(cmd)
    roles = _roles(node, cmd.get("roles"), db)
    doc: dict[str, Any] = {
        "_id": user_id(name, db), "userId": Binary.from_uuid(uuid.uuid4()),
        "user": name, "db": db,
        "credentials": {MECHANISM: make_credentials(pwd)},
        "roles": roles,
    }
    if isinstance(cmd.get("customData"), Mapping):
        doc["customData"] = dict(cmd["customData"])
    uid = doc["_id"]
    extra = _submit(node, cmd, [{"op": "i", "ns": USERS_NS, "o": doc}],
            [{"ns": USERS_NS, "q": {"_id": uid}, "res": None}], ctx, name, db)
    audit("user created", ctx, name, db, roles=_names(roles))
    return extra


def update_user(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                ) -> dict[str, Any]:
    name = _name(cmd, "updateUser")
    changes: dict[str, Any] = {}
    if "pwd" in cmd:
        changes[f"credentials.{MECHANISM}"] = make_credentials(_password(cmd))
    if "roles" in cmd:
        changes["roles"] = _roles(node, cmd["roles"], db)
    if "customData" in cmd:
        if not isinstance(cmd["customData"], Mapping):
            raise type_mismatch("customData must be an object")
        changes["customData"] = dict(cmd["customData"])
    if not changes:
        raise MongoError(BAD_VALUE, "Must specify at least one field to update in updateUser")
    uid = user_id(name, db)
    extra = _submit(node, cmd, [{"op": "u", "ns": USERS_NS, "o2": {"_id": uid},
                                 "o": {"$set": changes},
                         "b": False}], [_exists(uid)], ctx, name, db)
    audit("user updated", ctx, name, db, fields=sorted(k.split(".")[0] for k in changes))
    return extra


def drop_user(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
              ) -> dict[str, Any]:
    name = _name(cmd, "dropUser")
    uid = user_id(name, db)
    extra = _submit(node, cmd, [{"op": "d", "ns": USERS_NS, "o": {"_id": uid}}], [_exists(uid)],
            ctx, name, db)
    audit("user dropped", ctx, name, db)
    return extra


def grant_roles(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                ) -> dict[str, Any]:
    return _change_roles(node, db, cmd, ctx, "grantRolesToUser", "roles granted",
                         lambda roles: {"$addToSet": {"roles": {"$each": roles}}})


def revoke_roles(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any]:
    return _change_roles(node, db, cmd, ctx, "revokeRolesFromUser", "roles revoked",
                         lambda roles: {"$pull": {"roles": {"$in": roles}}})


def _change_roles(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext,
                  name_field: str, what: str,
                  update: Callable[[list[dict[str, str]]], dict[str, Any]]) -> dict[str, Any]:
    """Grant or revoke roles: one update of the user's document, if the user exists."""
    name = _name(cmd, name_field)
    roles = _roles(node, cmd.get("roles"), db)
    uid = user_id(name, db)
    extra = _submit(node, cmd, [{"op": "u", "ns": USERS_NS, "o2": {"_id": uid},
                                 "o": update(roles), "b": False}],
                    [_exists(uid)], ctx, name, db)
    audit(what, ctx, name, db, roles=_names(roles))
    return extra


def _public(doc: Mapping[str, Any], show_credentials: bool) -> dict[str, Any]:
    out = {k: doc[k] for k in ("_id", "userId", "user", "db", "roles", "customData")
           if k in doc}
    out["mechanisms"] = sorted(doc.get("credentials", {}))
    if show_credentials:
        out["credentials"] = doc.get("credentials", {})
    return out


def users_info(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any]:
    arg = cmd.get("usersInfo")
    coll = node.engine.collection(USERS_DB, USERS_COLL)
    wanted: list[Any]
    if is_number(arg) and arg == 1:
        query: dict[str, Any] = {"db": db}
    else:
        wanted = arg if isinstance(arg, list) else [arg]
        ids = []
        for w in wanted:
            if isinstance(w, str):
                ids.append(user_id(w, db))
            elif isinstance(w, Mapping) and isinstance(w.get("user"), str):
                ids.append(user_id(w["user"], str(w.get("db", db))))
            else:
                raise MongoError(BAD_VALUE, "usersInfo takes 1, a user name, "
                                 "{user, db} or an array of them")
        query = {"_id": {"$in": ids}}
    show = bool(cmd.get("showCredentials", False))
    return {"users": [_public(d, show) for d in coll.find(query, None, sort={"_id": 1})]}


# ---------------------------------------------------------------------- authentication
def lookup_user(node: Any, user: str, db: str) -> dict[str, Any] | None:
    """A user's document where this process finds users (``services.users``: its own store,
    or a router's config servers), else this member's engine."""
    source = getattr(node, "users", None)
    if source is not None:
        return source.find(user, db)
    engine = getattr(node, "engine", None)  # a router without --auth keeps no users
    return find_user(engine, user, db) if engine is not None else None


def _session(ctx: RequestContext) -> AuthSession:
    session = getattr(ctx, "auth", None)
    if session is None:
        raise MongoError(MECHANISM_UNAVAILABLE, "this transport does not authenticate")
    return session


def _auth_failed(ctx: RequestContext, user: str, db: str, why: str) -> MongoError:
    log.warning("authentication failed", extra={"fields": {
        "user": f"{user}@{db}", "mechanism": MECHANISM, "peer": ctx.peer, "reason": why}})
    return MongoError(AUTHENTICATION_FAILED, "Authentication failed.",
                      code_name="AuthenticationFailed")


def _payload(cmd: Mapping[str, Any]) -> bytes:
    payload = cmd.get("payload", b"")
    if isinstance(payload, str):
        payload = payload.encode()
    if not isinstance(payload, bytes | bytearray):
        raise type_mismatch("payload must be binary data")
    return bytes(payload)


def sasl_start(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any]:
    session = _session(ctx)
    mechanism = cmd.get("mechanism")
    if mechanism != MECHANISM:
        raise MongoError(MECHANISM_UNAVAILABLE, f"Received authentication for mechanism "
                         f"{mechanism} which is not enabled", code_name="MechanismUnavailable")
    try:
        user, bare = ServerConversation.parse_first(_payload(cmd))
    except ScramError as exc:
        raise _auth_failed(ctx, "?", db, str(exc)) from None
    doc = lookup_user(node, user, db)
    creds = (doc or {}).get("credentials", {}).get(MECHANISM)
    conv = ServerConversation(user=f"{user}\x00{db}")
    first = conv.first(bare, creds, _FAKE_SEED)
    options = cmd.get("options")
    conv.skip_empty = bool(isinstance(options, Mapping) and options.get("skipEmptyExchange"))
    cid = session.next_conversation_id()
    session.add_conversation(cid, conv)
    return {"conversationId": cid, "done": False, "payload": first}


def sasl_continue(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                  ) -> dict[str, Any]:
    session = _session(ctx)
    cid = cmd.get("conversationId")
    conv = session.conversations.get(int(cid)) if is_number(cid) else None
    if conv is None:
        raise MongoError(AUTHENTICATION_FAILED, "No SASL session state found",
                         code_name="AuthenticationFailed")
    user, _, user_db = conv.user.partition("\x00")
    if conv.done:  # the empty last step of a client that did not skip it
        session.conversations.pop(int(cid), None)
        return {"conversationId": cid, "done": True, "payload": b""}
    try:
        final = conv.final(_payload(cmd))
    except ScramError as exc:
        session.conversations.pop(int(cid), None)
        raise _auth_failed(ctx, user, user_db, str(exc)) from None
    session.authenticated(user, user_db)
    log.info("authenticated", extra={"fields": {"user": f"{user}@{user_db}",
                                                "mechanism": MECHANISM, "peer": ctx.peer}})
    done = conv.skip_empty
    if done:
        session.conversations.pop(int(cid), None)
    return {"conversationId": cid, "done": done, "payload": final}


def logout(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
           ) -> dict[str, Any]:
    session = getattr(ctx, "auth", None)
    if session is not None:
        session.logout()
    return {}


def connection_status(node: NodeServices, db: str, cmd: Mapping[str, Any],
                      ctx: RequestContext) -> dict[str, Any]:
    session = getattr(ctx, "auth", None)
    users = list(session.users) if session is not None else []
    authz = getattr(node, "authz", None)
    roles = authz.user_roles(session) if authz is not None and session is not None else []
    info: dict[str, Any] = {
        "authenticatedUsers": [{"user": u, "db": d} for u, d in users],
        "authenticatedUserRoles": [{"role": r["role"], "db": r["db"]} for r in roles],
    }
    if cmd.get("showPrivileges"):
        privs = authz.privileges(session) if authz is not None and session is not None else {}
        info["authenticatedUserPrivileges"] = [
            {"resource": res, "actions": sorted(acts)} for res, acts in sorted(privs.items())]
    return {"authInfo": info}


def hello_fields(node: NodeServices, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any]:
    """What ``hello`` adds for authentication: ``saslSupportedMechs`` for the user a driver
    names, and the first SCRAM step of ``speculativeAuthenticate``."""
    out: dict[str, Any] = {}
    named = cmd.get("saslSupportedMechs")
    if isinstance(named, str) and "." in named:
        user_db, _, user = named.partition(".")
        if lookup_user(node, user, user_db) is not None:
            out["saslSupportedMechs"] = [MECHANISM]
    spec = cmd.get("speculativeAuthenticate")
    if isinstance(spec, Mapping) and getattr(ctx, "auth", None) is not None:
        auth_db = spec.get("db", "admin")
        try:
            if spec.get("mechanism") == MECHANISM and isinstance(auth_db, str):
                out["speculativeAuthenticate"] = sasl_start(node, auth_db, spec, ctx)
        except MongoError:
            pass  # the driver then authenticates the ordinary way
    return out

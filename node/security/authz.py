"""Who a connection is, and THE authorization check the dispatcher runs before any handler.

:class:`AuthSession` is one connection's authentication state (a wire connection's, a gRPC
connection's): the users it authenticated and its SCRAM conversations in progress. A transport
creates one per connection and puts it on every :class:`~node.commands.context.RequestContext`
it makes; a context without one (``auth=None``) is an in-process caller of this member (its TTL
monitor, its session reaper), which is trusted.

:class:`Authorizer` (``services.authz``, set only with ``--auth``) checks a command against the
action its table row declares (:mod:`node.security.roles`) and the roles the session's users
hold *now* (read from ``admin.system.users`` on every check, so a revoked role or a dropped user
takes effect at the next command). Refusals are Unauthorized (13) and are logged.
"""

from __future__ import annotations

import contextvars
import hashlib
import ipaddress
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from node.engine.errors import UNAUTHORIZED, MongoError
from node.security import roles as R

log = logging.getLogger("helogale.security")

USERS_DB = "admin"
USERS_COLL = "system.users"
USERS_NS = f"{USERS_DB}.{USERS_COLL}"
ROLES_COLL = "system.roles"
ROLES_NS = f"{USERS_DB}.{ROLES_COLL}"
MAX_CONVERSATIONS = 8


AUDIT_FIELD = "$audit"
"""``{users: ["user@db", ...]}``: who a command sent by a router (as the internal identity)
runs for, so a shard's logs name the end user."""
_acting: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "helogale_acting_users", default=())


def acting_users() -> tuple[str, ...]:
    """The users the command running in this context acts for (``user@db``): the session's,
    or, for the internal identity, those its ``$audit`` names; () when unauthenticated or
    in-process."""
    return _acting.get()


def unauthorized(errmsg: str) -> MongoError:
    return MongoError(UNAUTHORIZED, errmsg, code_name="Unauthorized")


@dataclass
class AuthSession:
    """One connection's authentication state (mutable, shared by that connection's requests)."""

    users: dict[tuple[str, str], None] = field(default_factory=dict)
    """Authenticated ``(user, db)`` in order (a dict used as an ordered set)."""
    conversations: dict[int, Any] = field(default_factory=dict)
    token: str = ""
    """The gRPC transport's handle on this session (sent back by the client as metadata;
    given when the session first holds something)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ids: Any = field(default_factory=lambda: itertools.count(1), repr=False)

    def next_conversation_id(self) -> int:
        return int(next(self._ids))

    def add_conversation(self, cid: int, conv: Any) -> None:
        with self.lock:
            while len(self.conversations) >= MAX_CONVERSATIONS:
                self.conversations.pop(next(iter(self.conversations)))
            self.conversations[cid] = conv

    def authenticated(self, user: str, db: str) -> None:
        with self.lock:
            self.users[(user, db)] = None

    def logout(self) -> None:
        with self.lock:
            self.users.clear()
            self.conversations.clear()

    @property
    def is_authenticated(self) -> bool:
        return bool(self.users)


class SessionTable:
    """The gRPC transport's sessions: a call names its session by token (metadata
    :data:`SESSION_METADATA`), valid only from the peer (TCP connection) it was made on, so a
    client that reconnects authenticates again and a token is worthless elsewhere."""

    def __init__(self, max_sessions: int = 10_000) -> None:
        self._by_token: dict[str, tuple[AuthSession, str]] = {}
        self._lock = threading.Lock()
        self.max_sessions = max_sessions

    def get(self, token: str | None, peer: str) -> AuthSession:
        """The session ``token`` names from ``peer``, else a fresh unregistered one."""
        if token:
            with self._lock:
                found = self._by_token.get(token)
            if found is not None and found[1] == peer:
                return found[0]
        return AuthSession()

    def register(self, session: AuthSession, peer: str) -> str | None:
        """Give ``session`` a token once it holds state; the token to send back, if new."""
        if session.token or not (session.users or session.conversations):
            return None
        session.token = secrets.token_urlsafe(24)
        with self._lock:
            while len(self._by_token) >= self.max_sessions:
                self._by_token.pop(next(iter(self._by_token)))
            self._by_token[session.token] = (session, peer)
        return session.token


SESSION_METADATA = "x-helogale-session"


def user_id(user: str, db: str) -> str:
    """``_id`` of a user's document in ``admin.system.users``."""
    return f"{db}.{user}"


def find_user(engine: Any, user: str, db: str) -> dict[str, Any] | None:
    """The user's document: one point read by record key (no query planning: this runs on
    every authorized command)."""
    from node.engine.keystring import encode_key

    coll = engine.collection(USERS_DB, USERS_COLL)
    with engine.store.read() as txn:
        for _, doc in coll.records(txn, [encode_key(user_id(user, db))]):
            return dict(doc) if doc is not None else None
    return None


def find_role(engine: Any, role: str, db: str) -> dict[str, Any] | None:
    """A custom role's document (``admin.system.roles``, ``_id: "<db>.<role>"``): one point
    read by record key."""
    from node.engine.keystring import encode_key

    coll = engine.collection(USERS_DB, ROLES_COLL)
    with engine.store.read() as txn:
        for _, doc in coll.records(txn, [encode_key(user_id(role, db))]):
            return dict(doc) if doc is not None else None
    return None


def any_user(engine: Any) -> bool:
    return engine.collection(USERS_DB, USERS_COLL).find_one({}) is not None


INTERNAL_USER = ("__system", "local")
"""The cluster's own identity: members and routers holding the key file authenticate as it
(SCRAM, the key as password), as MongoDB's keyFile internal authentication does."""


def internal_user_doc(key: bytes) -> dict[str, Any]:
    """The internal user's document, its salted keys derived from the cluster key."""
    from node.security.scram import make_credentials

    salt = hashlib.sha256(b"helogale/internal-user/v1" + key).digest()[:28]
    user, db = INTERNAL_USER
    return {"_id": user_id(user, db), "user": user, "db": db,
            "credentials": {"SCRAM-SHA-256": make_credentials(key.decode("ascii"),
                                                              salt=salt)},
            "roles": [{"role": "__system", "db": "admin"}]}


class _InternalUser:
    """The internal user's document, derived from the key on first use (PBKDF2 is not
    free: a process that is never asked for it never pays)."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key
        self._doc: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def doc(self) -> dict[str, Any] | None:
        if self._key is None:
            return None
        with self._lock:
            if self._doc is None:
                self._doc = internal_user_doc(self._key)
            return self._doc


class LocalUsers:
    """Users of this member's own ``admin.system.users`` (and the internal user, with a key)."""

    def __init__(self, engine: Any, key: bytes | None = None) -> None:
        self.engine = engine
        self._internal = _InternalUser(key)

    def find(self, user: str, db: str) -> dict[str, Any] | None:
        if (user, db) == INTERNAL_USER:
            return self._internal.doc()
        return find_user(self.engine, user, db)

    def find_role(self, role: str, db: str) -> dict[str, Any] | None:
        return find_role(self.engine, role, db)

    def any_user(self) -> bool:
        return any_user(self.engine)


class RemoteUsers:
    """Users kept on the config servers (a router's): read as the internal user, each kept
    ``ttl_s`` (a role revoked through another router reaches this one within that long;
    through this one, at once)."""

    def __init__(self, config: Any, key: bytes | None, ttl_s: float = 1.0) -> None:
        self.config = config
        self.ttl_s = ttl_s
        self._internal = _InternalUser(key)
        self._cache: dict[tuple[str, str, str], tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def _query(self, flt: dict[str, Any], coll: str = USERS_COLL) -> dict[str, Any] | None:
        reply = self.config.command(USERS_DB, {"find": coll, "filter": flt, "limit": 1})
        if not reply.get("ok"):
            raise MongoError(int(reply.get("code", 1)), "cannot read users from the config "
                             f"servers: {reply.get('errmsg')}")
        batch = reply.get("cursor", {}).get("firstBatch", [])
        return dict(batch[0]) if batch else None

    def find(self, user: str, db: str) -> dict[str, Any] | None:
        if (user, db) == INTERNAL_USER:
            return self._internal.doc()
        return self._kept(USERS_COLL, user, db)

    def find_role(self, role: str, db: str) -> dict[str, Any] | None:
        return self._kept(ROLES_COLL, role, db)

    def _kept(self, coll: str, name: str, db: str) -> dict[str, Any] | None:
        """A user's or role's document, read again once older than ``ttl_s``."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get((coll, name, db))
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        doc = self._query({"_id": user_id(name, db)}, coll)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[(coll, name, db)] = (now, doc)
        return doc

    def any_user(self) -> bool:
        return self._query({}) is not None

    def invalidate(self) -> None:
        """Forget every kept user (this router changed one)."""
        with self._lock:
            self._cache.clear()


def is_loopback(peer: str) -> bool:
    """A transport's peer string (``ipv4:127.0.0.1:5``, ``ipv6:[::1]:5``, ``127.0.0.1:5``) is a
    loopback address."""
    text = peer
    for prefix in ("ipv4:", "ipv6:"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    if text.startswith("["):
        text = text[1:text.find("]")]
    elif text.count(":") == 1:
        text = text.rsplit(":", 1)[0]
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


class Authorizer:
    """The check of ``--auth`` (see module docstring)."""

    def __init__(self, users: Any) -> None:
        self.users = users
        """Where users are found: :class:`LocalUsers` or :class:`RemoteUsers`."""

    def user_roles(self, session: AuthSession) -> list[dict[str, Any]]:
        """The roles the session's users hold now (a dropped user holds none)."""
        out: list[dict[str, Any]] = []
        for user, db in list(session.users):
            doc = self.users.find(user, db)
            if doc is not None:
                out.extend(r for r in doc.get("roles", []) if isinstance(r, Mapping))
        return out

    def privileges(self, session: AuthSession) -> dict[str, set[str]]:
        """What the session's users may do now, custom roles resolved."""
        return R.privileges(self.user_roles(session), getattr(self.users, "find_role", None))

    def check(self, name: str, spec: Any, db: str, command: Mapping[str, Any],
              session: AuthSession | None, peer: str = "") -> None:
        """Raise Unauthorized (13) unless ``session`` may run ``command`` on ``db``."""
        action = getattr(spec, "action", None)
        _acting.set(_acting_for(session, command))
        if action == R.OPEN or session is None:
            return
        if not session.is_authenticated:
            if (name == "createUser" and db == USERS_DB and is_loopback(peer)
                    and not self.users.any_user()):
                return  # the localhost exception: the first user
            self._refuse(name, db, peer, session, "unauthenticated")
            raise unauthorized(f"Command {name} requires authentication")
        if action == R.AUTHENTICATED:
            return
        privs = self.privileges(session)
        actions = (action,) if isinstance(action, str) else tuple(action or (R.INTERNAL,))
        coll = command.get("collection" if name == "getMore" else name)
        coll = coll if isinstance(coll, str) and coll else None
        for act, where in self._targets(name, actions, db, command):
            if not R.allowed(privs, act, where, coll if where == db else None):
                self._refuse(name, db, peer, session, act)
                raise unauthorized(f"not authorized on {db} to execute command "
                                   f"{{ {name}: {_short(command.get(name))} }}")

    @staticmethod
    def _targets(name: str, actions: tuple[str, ...], db: str, command: Mapping[str, Any]
                 ) -> list[tuple[str, str]]:
        """(action, database) pairs to check: the command's database, both of a rename's,
        and nothing less than the internal identity for writing ``admin.system.users`` or
        ``admin.system.roles`` directly (they change only through their commands)."""
        targets = [(a, db) for a in actions]
        if name == "renameCollection":
            dbs = {str(v).partition(".")[0] for v in (command.get(name), command.get("to"))}
            targets = [(a, d) for a in actions for d in sorted(dbs)]
        if name == "bulkWrite":
            return _bulk_write_targets(command)
        if name == "aggregate":
            targets += _aggregate_write_targets(db, command)
        coll = command.get(name)
        if db == USERS_DB and coll in (USERS_COLL, ROLES_COLL) and actions != ("find",):
            targets.append((R.INTERNAL, db))  # users and roles change only by their commands
        elif db == USERS_DB and coll in (USERS_COLL, ROLES_COLL):
            targets.append(("viewUser" if coll == USERS_COLL else "viewRole", db))
        return targets

    @staticmethod
    def _refuse(name: str, db: str, peer: str, session: AuthSession, why: str) -> None:
        log.warning("command refused: not authorized", extra={"fields": {
            "command": name, "db": db, "peer": peer, "needs": why,
            "users": [f"{u}@{d}" for u, d in session.users], "for": list(acting_users())}})


_BULK_ACTIONS = {"insert": "insert", "update": "update", "delete": "remove"}


def _bulk_write_targets(command: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``bulkWrite`` runs its operations' handlers itself: each operation needs its own
    action on its namespace's database (malformed ones are left to the command's parser,
    which refuses them before anything runs)."""
    ns_info = command.get("nsInfo")
    ops = command.get("ops")
    if not isinstance(ns_info, list) or not isinstance(ops, list):
        return []
    names = [e.get("ns") if isinstance(e, Mapping) else None for e in ns_info]
    out: set[tuple[str, str]] = set()
    for op in ops:
        if not isinstance(op, Mapping) or not op:
            continue
        kind = next(iter(op))
        index = op.get(kind)
        action = _BULK_ACTIONS.get(kind)
        if action is None or not isinstance(index, int) or not 0 <= index < len(names):
            continue
        ns = names[index]
        if not isinstance(ns, str) or "." not in ns:
            continue
        db = ns.partition(".")[0]
        out.add((action, db))
        if ns in (USERS_NS, ROLES_NS):
            out.add((R.INTERNAL, db))
    return sorted(out)


def _acting_for(session: AuthSession | None, command: Mapping[str, Any]) -> tuple[str, ...]:
    if session is None:
        return ()
    users = tuple(f"{u}@{d}" for u, d in session.users)
    audit = command.get(AUDIT_FIELD)
    if users == ("__system@local",) and isinstance(audit, Mapping):
        named = audit.get("users")
        if isinstance(named, list):
            return tuple(str(u) for u in named[:16])
    return users


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _aggregate_write_targets(db: str, command: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An aggregate ending in ``$out``/``$merge`` writes: insert and remove on the database it
    writes to (as MongoDB asks of ``$out``), besides reading its own."""
    pipeline = command.get("pipeline")
    if not isinstance(pipeline, list) or not pipeline or not isinstance(pipeline[-1], Mapping):
        return []
    last = pipeline[-1]
    stage = next(iter(last), None)
    if stage not in ("$out", "$merge"):
        return []
    spec = last[stage]
    target_db = db
    if isinstance(spec, Mapping):
        into = spec.get("into", spec) if stage == "$merge" else spec
        if isinstance(into, Mapping) and isinstance(into.get("db"), str):
            target_db = into["db"]
    return [("insert", target_db), ("remove", target_db)]

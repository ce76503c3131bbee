"""Checks of a ``replSetReconfig`` document before anything is proposed, with MongoDB's codes.

Owns :func:`parse_reconfig` (every field: types, member ids, ``HOST:PORT`` addresses, priorities,
tags, no unknown member fields, nothing shared between members, at least one electable member,
``settings`` with its write modes) and
:func:`check_quorum` (a majority of the new configuration's voters must answer right now, as
MongoDB's quorum check demands), plus :func:`tcp_probe`, the quick connect used for members this
one has no recent Raft contact with. A refused configuration raises ``MongoError`` and changes
nothing.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bson import Int64

from node.commands.write_modes import parse_member_tags, parse_modes
from node.engine.errors import MongoError
from node.server.config import MemberSpec

TYPE_MISMATCH = 14
NODE_NOT_FOUND = 74
INVALID_REPLICA_SET_CONFIG = 93
NEW_CONFIG_INCOMPATIBLE = 103

MEMBER_FIELDS = ("_id", "host", "wireHost", "raftHost", "priority", "tags")
SETTINGS_FIELDS = ("getLastErrorModes", "chainingAllowed", "heartbeatIntervalMillis",
                   "heartbeatTimeoutSecs", "electionTimeoutMillis", "catchUpTimeoutMillis",
                   "catchUpTakeoverDelayMillis", "getLastErrorDefaults", "replicaSetId")
"""MongoDB's ``settings`` fields; only ``getLastErrorModes`` is used here, the others are
accepted (Raft's own timers govern elections and heartbeats)."""
MAX_PRIORITY = 1000
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")


def _invalid(msg: str) -> MongoError:
    return MongoError(INVALID_REPLICA_SET_CONFIG, msg, code_name="InvalidReplicaSetConfig")


def _incompatible(msg: str) -> MongoError:
    return MongoError(NEW_CONFIG_INCOMPATIBLE, msg,
                      code_name="NewReplicaSetConfigurationIncompatible")


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Int64):
        return "long"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Mapping):
        return "object"
    if isinstance(v, list | tuple):
        return "array"
    if v is None:
        return "null"
    return type(v).__name__


def _wrong_type(field: str, v: Any, want: str) -> MongoError:
    return MongoError(TYPE_MISMATCH, f"BSON field '{field}' is the wrong type "
                      f"'{_type_name(v)}', expected type '{want}'", code_name="TypeMismatch")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _whole(field: str, v: Any) -> int:
    """An integer-valued number (MongoDB takes 2.0 for 2), else TypeMismatch / invalid."""
    if not _is_number(v):
        raise _wrong_type(field, v, "int")
    if isinstance(v, float) and not v.is_integer():
        raise _invalid(f"{field} must be a whole number, got {v}")
    return int(v)


def check_host_port(field: str, v: Any) -> str:
    """``HOST:PORT`` with a port in 1..65535 (IPv6 hosts in brackets)."""
    if not isinstance(v, str):
        raise _wrong_type(field, v, "string")
    m = _HOST_PORT.fullmatch(v)
    if m is None:
        raise _invalid(f"{field} must look like HOST:PORT, got {v!r}")
    if not 1 <= int(m.group(2)) <= 65535:
        raise _invalid(f"{field} has port {m.group(2)}, must be between 1 and 65535")
    return v


@dataclass(frozen=True)
class NewConfig:
    version: int
    specs: list[MemberSpec]
    docs: list[dict[str, Any]]
    """The members as stored in the configuration entry (priority filled in)."""
    settings: dict[str, Any]
    """``settings`` as stored: the write modes (``getLastErrorModes``), when any."""


def parse_reconfig(config: Mapping[str, Any], *, replset: str, current_version: int
                   ) -> NewConfig:
    """Check every field of a new configuration; MongoError (93/103/14) on the first problem."""
    name = config.get("_id")
    if not isinstance(name, str):
        raise _wrong_type("replSetReconfig._id", name, "string")
    if name != replset:
        raise _incompatible(f"New and old configurations differ in replica set name; old was "
                            f"{replset}, and new is {name}")
    version = current_version + 1
    if "version" in config:
        version = _whole("replSetReconfig.version", config["version"])
        if version <= current_version:
            raise _incompatible(f"New replica set configuration version must be greater than "
                                f"old, but {version} is not greater than {current_version} for "
                                f"replica set {replset}")
    raw = config.get("members")
    if not isinstance(raw, list):
        raise _wrong_type("replSetReconfig.members", raw, "array")
    if not raw:
        raise _invalid("Replica set configuration must have at least one member")
    docs: list[dict[str, Any]] = []
    specs: list[MemberSpec] = []
    for i, member in enumerate(raw):
        where = f"members.{i}"
        if not isinstance(member, Mapping):
            raise _wrong_type(where, member, "object")
        for key in member:
            if key not in MEMBER_FIELDS:
                raise _invalid(f"Unexpected field {key} in replica set member configuration "
                               f"({where})")
        for key in ("_id", "host"):
            if key not in member:
                raise _invalid(f"{where} is missing the required field '{key}'")
        mid = _whole(f"{where}._id", member["_id"])
        if mid <= 0:
            raise _invalid(f"{where}._id must be a positive integer (0 is reserved), got {mid}")
        host = check_host_port(f"{where}.host", member["host"])
        wire = raft = None
        if "wireHost" in member:
            wire = check_host_port(f"{where}.wireHost", member["wireHost"])
        if "raftHost" in member:
            raft = check_host_port(f"{where}.raftHost", member["raftHost"])
        priority = member.get("priority", 1.0)
        if not _is_number(priority):
            raise _wrong_type(f"{where}.priority", priority, "double")
        if not 0 <= priority <= MAX_PRIORITY:
            raise _invalid(f"{where}.priority must be between 0 and {MAX_PRIORITY}, "
                           f"got {priority}")
        doc: dict[str, Any] = {"_id": mid, "host": host, "priority": float(priority)}
        if wire is not None:
            doc["wireHost"] = wire
        if raft is not None:
            doc["raftHost"] = raft
        if "tags" in member:
            doc["tags"] = parse_member_tags(where, member["tags"])
        docs.append(doc)
        specs.append(MemberSpec(mid, host, wire, float(priority), raft))
    for field in ("_id", "host", "wireHost", "raftHost"):
        seen: dict[Any, int] = {}
        for i, doc in enumerate(docs):
            value = doc.get(field) if field != "raftHost" else specs[i].raft_address
            if value is None:
                continue
            if value in seen:
                raise _invalid(f"Found two member configurations with same {field} field, "
                               f"members.{seen[value]}.{field} == members.{i}.{field} == "
                               f"{value}")
            seen[value] = i
    if not any(s.priority > 0 for s in specs):
        raise _invalid("Replica set configuration must have at least one member with "
                       "priority > 0 (no member could become primary)")
    return NewConfig(version, specs, docs, _parse_settings(config.get("settings"), docs))


def _parse_settings(raw: Any, docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``settings``: an object of MongoDB's fields (93 for others); its write modes checked
    against the members' tags."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _wrong_type("replSetReconfig.settings", raw, "object")
    for key in raw:
        if key not in SETTINGS_FIELDS:
            raise _invalid(f"Unexpected field {key} in replica set settings")
    if "getLastErrorModes" not in raw:
        return {}
    tags = {int(d["_id"]): d.get("tags") or {} for d in docs}
    return {"getLastErrorModes": parse_modes(raw["getLastErrorModes"], tags)}


def tcp_probe(address: str, timeout: float) -> str | None:
    """None if a TCP connection to ``address`` opens within ``timeout``, else why not."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def check_quorum(specs: Sequence[MemberSpec], self_id: int,
                 probe: Callable[[MemberSpec], str | None]) -> None:
    """Refuse (NodeNotFound, 74) unless a majority of ``specs`` (every member votes) answer:
    this member does; ``probe(spec)`` says None for a member that answers, else why not.
    Probes run in parallel."""
    others = [s for s in specs if s.id != self_id]
    with ThreadPoolExecutor(max_workers=max(1, len(others))) as pool:
        results = list(pool.map(probe, others))
    ok = [s.host for s in specs if s.id == self_id]
    failed: list[str] = []
    for spec, why in zip(others, results):
        if why is None:
            ok.append(spec.host)
        else:
            failed.append(f"{spec.host} (Raft {spec.raft_address}) failed with {why}")
    need = len(specs) // 2 + 1
    if len(ok) < need:
        raise MongoError(NODE_NOT_FOUND, "Quorum check failed because not enough voting nodes "
                         f"responded; required {need} but only the following {len(ok)} voting "
                         f"nodes responded: {', '.join(ok) or 'none'}; the following nodes did "
                         f"not respond affirmatively: {', '.join(failed)}",
                         code_name="NodeNotFound")

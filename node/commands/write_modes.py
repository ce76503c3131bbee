"""Tagged write concerns: member tags and ``settings.getLastErrorModes``, as MongoDB has them.

A replica-set configuration may tag members (``members[i].tags: {dc: "east", rack: "r1"}``)
and name write modes (``settings.getLastErrorModes: {twoDCs: {dc: 2}}``). A write with
``w: "twoDCs"`` (or an inline tag set ``w: {dc: 2}``) is acknowledged once the members that hold
it durably cover at least 2 distinct values of the ``dc`` tag (and likewise for every tag the
mode names).

Owns :func:`parse_modes` (the configuration's side: checked when ``replSetReconfig`` is, with
MongoDB's codes) and :func:`tag_rule` (the write's side: a mode name or tag set resolved against
the configuration into a :class:`TagRule`, or UnknownReplWriteConcern (79) /
UnsatisfiableWriteConcern (100)). A :class:`TagRule` only answers whether a set of member ids
satisfies it; counting who holds an entry is the Raft leader's job.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from node.engine.errors import MongoError

UNKNOWN_REPL_WRITE_CONCERN = 79
INVALID_REPLICA_SET_CONFIG = 93
UNSATISFIABLE_WRITE_CONCERN = 100


@dataclass(frozen=True)
class TagRule:
    """A resolved tag requirement: for each tag key, the value of that tag on each member that
    carries it, and how many distinct values the holders must cover."""

    name: str
    parts: tuple[tuple[str, int, tuple[tuple[int, str], ...]], ...]

    def met_by(self, holders: Collection[int]) -> bool:
        """Whether the members ``holders`` (ids) cover every tag's required count."""
        for _key, count, values in self.parts:
            if len({value for mid, value in values if mid in holders}) < count:
                return False
        return True


def member_tags(config: Mapping[str, Any]) -> dict[int, dict[str, str]]:
    """Member id -> its tags, from a stored configuration document."""
    return {int(m["_id"]): dict(m.get("tags") or {}) for m in config.get("members") or ()}


def _invalid(msg: str) -> MongoError:
    return MongoError(INVALID_REPLICA_SET_CONFIG, msg, code_name="InvalidReplicaSetConfig")


def parse_member_tags(where: str, raw: Any) -> dict[str, str]:
    """``members[i].tags``: a document of string values (InvalidReplicaSetConfig, 93)."""
    if not isinstance(raw, Mapping):
        raise _invalid(f"{where}.tags must be an object, not {type(raw).__name__}")
    tags: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise _invalid(f"tags field {key} in {where} must be a string, found "
                           f"{type(value).__name__}")
        tags[str(key)] = value
    return tags


def parse_modes(raw: Any, tags: Mapping[int, Mapping[str, str]]) -> dict[str, dict[str, int]]:
    """``settings.getLastErrorModes``: each mode a document of positive whole counts, each
    naming a tag key some member carries (InvalidReplicaSetConfig, 93)."""
    if not isinstance(raw, Mapping):
        raise _invalid("settings.getLastErrorModes must be an object")
    known = {key for member in tags.values() for key in member}
    modes: dict[str, dict[str, int]] = {}
    for name, spec in raw.items():
        if name == "majority":
            raise _invalid("getLastErrorModes may not redefine the mode \"majority\"")
        if not isinstance(spec, Mapping) or not spec:
            raise _invalid(f"getLastErrorModes.{name} must be a non-empty object")
        counts: dict[str, int] = {}
        for key, count in spec.items():
            if (isinstance(count, bool) or not isinstance(count, int | float)
                    or count != int(count) or count <= 0):
                raise _invalid(f"getLastErrorModes.{name}.{key} must be a positive whole "
                               f"number, not {count!r}")
            if key not in known:
                raise _invalid(f"No replica set tag with key \"{key}\" (used by write mode "
                               f"\"{name}\")")
            counts[str(key)] = int(count)
        modes[str(name)] = counts
    return modes


def tag_rule(w: str | Mapping[str, int], config: Mapping[str, Any]) -> TagRule:
    """The rule for ``w`` (a mode name of the configuration, or an inline ``{tag: count}``):
    UnknownReplWriteConcern (79) for a mode the configuration does not name,
    UnsatisfiableWriteConcern (100) when the members cannot cover a count even all together."""
    if isinstance(w, str):
        modes = (config.get("settings") or {}).get("getLastErrorModes") or {}
        if w not in modes:
            raise MongoError(UNKNOWN_REPL_WRITE_CONCERN, f"No write concern mode named '{w}' "
                             "found in replica set configuration",
                             code_name="UnknownReplWriteConcern")
        counts, name = modes[w], w
    else:
        counts, name = w, str(dict(w))
    tags = member_tags(config)
    parts = []
    for key, count in counts.items():
        values = tuple(sorted((mid, t[key]) for mid, t in tags.items() if key in t))
        if len({v for _m, v in values}) < count:
            raise MongoError(UNSATISFIABLE_WRITE_CONCERN, "Not enough nodes match write "
                             f"concern mode \"{name}\": tag \"{key}\" needs {count} distinct "
                             f"value(s), the members have {len({v for _m, v in values})}",
                             code_name="UnsatisfiableWriteConcern")
        parts.append((key, int(count), values))
    return TagRule(name, tuple(parts))

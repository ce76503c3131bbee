"""replSetReconfig document checks (node/server/replset_config.py): MongoDB's codes for every
field, and the quorum check. (Against a real set: tests/test_replset_raft_auth.py.)"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from bson import Int64

from node.engine.errors import MongoError
from node.server.config import MemberSpec
from node.server.replset_config import check_quorum, parse_reconfig, tcp_probe


def _member(i: int, **kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": i, "host": f"127.0.0.1:{7000 + 2 * i}", "priority": 1}
    doc.update(kw)
    return doc


def _cfg(*members: dict[str, Any], **kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": "rs0", "version": 3,
                           "members": list(members) or [_member(1), _member(2), _member(3)]}
    doc.update(kw)
    return doc


def _code(cfg: dict[str, Any]) -> tuple[int, str]:
    with pytest.raises(MongoError) as info:
        parse_reconfig(cfg, replset="rs0", current_version=2)
    return info.value.code, info.value.errmsg


def test_a_good_config_is_normalised() -> None:
    new = parse_reconfig(_cfg(_member(1, wireHost="db1.example:27017", raftHost="[::1]:9001"),
                              _member(2, priority=0), _member(3, priority=Int64(5)),
                              _member(4, _id=4.0, priority=2.5)),
                         replset="rs0", current_version=2)
    assert new.version == 3
    assert [s.id for s in new.specs] == [1, 2, 3, 4]
    assert new.specs[0].raft_address == "[::1]:9001" and new.specs[0].wire_host == "db1.example:27017"
    assert new.docs[1] == {"_id": 2, "host": "127.0.0.1:7004", "priority": 0.0}
    assert all(type(d["_id"]) is int and type(d["priority"]) is float for d in new.docs)
    assert new.settings == {}
    tagged = parse_reconfig(_cfg(_member(1, tags={"dc": "e"}), _member(2, tags={"dc": "w"}),
                                 settings={"getLastErrorModes": {"two": {"dc": 2.0}},
                                           "heartbeatTimeoutSecs": 10}),
                            replset="rs0", current_version=2)
    assert tagged.docs[1]["tags"] == {"dc": "w"}
    assert tagged.settings == {"getLastErrorModes": {"two": {"dc": 2}}}
    # no version: the next one
    assert parse_reconfig({"_id": "rs0", "members": [_member(1)]}, replset="rs0",
                          current_version=7).version == 8


@pytest.mark.parametrize("cfg, code, text", [
    (_cfg(_id=5), 14, "'replSetReconfig._id' is the wrong type 'int', expected type 'string'"),
    (_cfg(_id="other"), 103, "differ in replica set name"),
    (_cfg(version="4"), 14, "expected type 'int'"),
    (_cfg(version=2), 103, "must be greater than old"),
    (_cfg(version=2.5), 93, "whole number"),
    (_cfg(members={"0": _member(1)}), 14, "members' is the wrong type 'object'"),
    (_cfg(members=[]), 93, "at least one member"),
    (_cfg(members=["127.0.0.1:7000"]), 14, "'members.0' is the wrong type 'string'"),
    (_cfg(_member(1, votes=1)), 93, "Unexpected field votes"),
    (_cfg({"host": "127.0.0.1:7000"}), 93, "missing the required field '_id'"),
    (_cfg({"_id": 1}), 93, "missing the required field 'host'"),
    (_cfg(_member(1, _id="1")), 14, "'members.0._id' is the wrong type 'string'"),
    (_cfg(_member(1, _id=True)), 14, "wrong type 'bool'"),
    (_cfg(_member(1, _id=0)), 93, "positive integer"),
    (_cfg(_member(1, _id=-3)), 93, "positive integer"),
    (_cfg(_member(1), _member(2, _id=1)), 93, "same _id field, members.0._id == members.1._id"),
    (_cfg(_member(1, host=7000)), 14, "'members.0.host' is the wrong type 'int'"),
    (_cfg(_member(1, host="127.0.0.1")), 93, "HOST:PORT"),
    (_cfg(_member(1, host="127.0.0.1:0")), 93, "between 1 and 65535"),
    (_cfg(_member(1, host="127.0.0.1:70000")), 93, "between 1 and 65535"),
    (_cfg(_member(1, host="a b:70")), 93, "HOST:PORT"),
    (_cfg(_member(1, raftHost="127.0.0.1:x")), 93, "members.0.raftHost must look like"),
    (_cfg(_member(1, raftHost=None)), 14, "raftHost' is the wrong type 'null'"),
    (_cfg(_member(1, wireHost=["h:1"])), 14, "wireHost' is the wrong type 'array'"),
    (_cfg(_member(1), _member(2, host="127.0.0.1:7002")), 93, "same host field"),
    (_cfg(_member(1, raftHost="h:1"), _member(2, raftHost="h:1")), 93, "same raftHost field"),
    (_cfg(_member(1, priority="high")), 14, "priority' is the wrong type 'string'"),
    (_cfg(_member(1, tags={"dc": 1})), 93, "tags field dc in members.0 must be a string"),
    (_cfg(settings=[]), 14, "'replSetReconfig.settings' is the wrong type 'array'"),
    (_cfg(settings={"chainingAllowed": True, "votes": 1}), 93, "Unexpected field votes"),
    (_cfg(_member(1, tags={"dc": "e"}), settings={"getLastErrorModes": {"m": {"rack": 1}}}),
     93, "No replica set tag with key \"rack\""),
    (_cfg(_member(1, priority=True)), 14, "wrong type 'bool'"),
    (_cfg(_member(1, priority=-1)), 93, "between 0 and 1000"),
    (_cfg(_member(1, priority=1001)), 93, "between 0 and 1000"),
    (_cfg(_member(1, priority=float("nan"))), 93, "between 0 and 1000"),
    (_cfg(_member(1, priority=0), _member(2, priority=0)), 93, "priority > 0"),
])
def test_bad_fields_are_refused_with_mongodbs_codes(cfg: dict[str, Any], code: int,
                                                     text: str) -> None:
    got_code, msg = _code(cfg)
    assert (got_code, text in msg) == (code, True), msg


def test_raft_host_none_differs_from_absent() -> None:
    """raftHost may be left out (gRPC port + 1) but not given as null."""
    new = parse_reconfig(_cfg(_member(1)), replset="rs0", current_version=2)
    assert new.specs[0].raft_address == "127.0.0.1:7003"


def _specs(n: int) -> list[MemberSpec]:
    return [MemberSpec(i, f"h{i}:1", raft_host=f"h{i}:2") for i in range(1, n + 1)]


def test_quorum_needs_a_majority_of_the_new_members() -> None:
    down = {3}
    probe_calls: list[int] = []

    def probe(s: MemberSpec) -> str | None:
        probe_calls.append(s.id)
        return "connection refused" if s.id in down else None

    check_quorum(_specs(3), 1, probe)  # 1 (self) + 2 answer
    assert sorted(probe_calls) == [2, 3]  # never probes itself
    down = {2, 3}
    with pytest.raises(MongoError) as info:
        check_quorum(_specs(3), 1, probe)
    e = info.value
    assert e.code == 74 and e.code_name == "NodeNotFound"
    assert "required 2 but only the following 1 voting nodes responded: h1:1" in e.errmsg
    assert "h3:1 (Raft h3:2) failed with connection refused" in e.errmsg
    down = {4, 5}
    check_quorum(_specs(5), 1, probe)  # 3 of 5
    down = {3, 4, 5}
    with pytest.raises(MongoError):
        check_quorum(_specs(5), 1, probe)
    # this member (1) not in the new set {2, 3, 4}: it does not count
    others = [*_specs(4)[1:]]
    check_quorum(others, 1, lambda s: "refused" if s.id == 2 else None)
    with pytest.raises(MongoError, match="required 2 but only the following 1"):
        check_quorum(others, 1, lambda s: "refused" if s.id in (2, 3) else None)


def test_tcp_probe() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        assert tcp_probe(f"127.0.0.1:{port}", 1.0) is None
    assert tcp_probe(f"127.0.0.1:{port}", 1.0) is not None  # closed now

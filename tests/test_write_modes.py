"""Tagged write concerns (node/commands/write_modes.py): modes and member tags as a
configuration declares them, resolved into rules, and the rules' answer for sets of holders;
the write-concern parser's side (mode names, tag sets, MongoDB's codes)."""

from __future__ import annotations

from typing import Any

import pytest

from node.commands.member import parse_write_concern
from node.commands.write_modes import parse_member_tags, parse_modes, tag_rule
from node.engine.errors import MongoError

CONFIG: dict[str, Any] = {
    "members": [{"_id": 1, "host": "a:1", "tags": {"dc": "east", "rack": "r1"}},
                {"_id": 2, "host": "b:1", "tags": {"dc": "east", "rack": "r2"}},
                {"_id": 3, "host": "c:1", "tags": {"dc": "west", "rack": "r1"}},
                {"_id": 4, "host": "d:1"}],
    "settings": {"getLastErrorModes": {"twoDCs": {"dc": 2}, "spread": {"dc": 2, "rack": 2}}},
}


def _code(fn: Any, *args: Any) -> int:
    with pytest.raises(MongoError) as info:
        fn(*args)
    return info.value.code


@pytest.mark.parametrize("w, holders, met", [
    ("twoDCs", {1, 2}, False),  # two members, one dc
    ("twoDCs", {1, 3}, True),
    ("twoDCs", {2, 3, 4}, True),
    ("twoDCs", {4}, False),  # untagged members never count
    ("spread", {1, 3}, False),  # two dcs, one rack
    ("spread", {2, 3}, True),
    ({"rack": 2}, {1, 3}, False),
    ({"rack": 2}, {1, 2}, True),
    ({"dc": 1}, {1}, True),
])
def test_a_rule_is_met_by_holders_covering_its_tag_counts(w: Any, holders: set[int],
                                                          met: bool) -> None:
    assert tag_rule(w, CONFIG).met_by(holders) is met


def test_modes_the_config_cannot_satisfy_or_does_not_name() -> None:
    assert _code(tag_rule, "nope", CONFIG) == 79
    assert _code(tag_rule, {"dc": 3}, CONFIG) == 100
    assert _code(tag_rule, {"zone": 1}, CONFIG) == 100
    assert _code(tag_rule, "twoDCs", {}) == 79  # not a replica set: no modes


@pytest.mark.parametrize("modes, text", [
    ([], "must be an object"),
    ({"m": {}}, "non-empty"),
    ({"m": {"dc": 0}}, "positive whole number"),
    ({"m": {"dc": 1.5}}, "positive whole number"),
    ({"m": {"dc": True}}, "positive whole number"),
    ({"m": {"zone": 1}}, "No replica set tag with key \"zone\""),
    ({"majority": {"dc": 1}}, "majority"),
])
def test_bad_modes_are_invalid_configs(modes: Any, text: str) -> None:
    tags = {1: {"dc": "east"}}
    with pytest.raises(MongoError) as info:
        parse_modes(modes, tags)
    assert info.value.code == 93 and text in info.value.errmsg


def test_member_tags_are_documents_of_strings() -> None:
    assert parse_member_tags("members.0", {"dc": "east"}) == {"dc": "east"}
    assert _code(parse_member_tags, "members.0", {"dc": 1}) == 93
    assert _code(parse_member_tags, "members.0", ["dc"]) == 93


def test_the_write_concern_parser_resolves_modes_against_the_config() -> None:
    wc = parse_write_concern({"writeConcern": {"w": "twoDCs", "wtimeout": 10}}, 4,
                             config=lambda: CONFIG)
    assert wc.rule is not None and wc.rule.met_by({1, 3}) and not wc.settles_on_apply
    assert wc.to_doc()["w"] == "twoDCs"
    assert parse_write_concern({"writeConcern": {"w": "majority"}}, 4,
                               config=lambda: CONFIG).rule is None
    assert _code(parse_write_concern, {"writeConcern": {"w": "x"}}, 4, 0, lambda: CONFIG) == 79
    assert _code(parse_write_concern, {"writeConcern": {"w": {"dc": 5}}}, 4, 0,
                 lambda: CONFIG) == 100

    def standalone() -> dict[str, Any]:
        raise MongoError(76, "not running with --replSet")

    assert _code(parse_write_concern, {"writeConcern": {"w": "twoDCs"}}, 1, 0, standalone) == 79

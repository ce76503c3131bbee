"""helogale.uri, write concern and read preference objects, and how MongoClient reads options."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import helogale
from helogale.errors import ConfigurationError, InvalidURI
from helogale.read_preferences import ReadPreference, read_pref_from_name
from helogale.topology import ServerDescription
from helogale.uri import DEFAULT_PORT, parse_host, parse_uri
from helogale.write_concern import WriteConcern, from_legacy


def test_full_uri() -> None:
    parsed = parse_uri(
        "helogale://h1:7001,H2:7002/shop?replicaSet=rs0&w=majority&wtimeoutMS=5000"
        "&readPreference=secondaryPreferred&retryWrites=true&serverSelectionTimeoutMS=2500"
    )
    assert parsed.hosts == [("h1", 7001), ("h2", 7002)]
    assert parsed.database == "shop"
    assert parsed.options == {
        "replicaSet": "rs0", "w": "majority", "wTimeoutMS": 5000,
        "readPreference": "secondaryPreferred", "retryWrites": True,
        "serverSelectionTimeoutMS": 2500,
    }


def test_defaults_and_numeric_w() -> None:
    parsed = parse_uri("helogale://localhost/?w=2&journal=false")
    assert parsed.hosts == [("localhost", DEFAULT_PORT)]
    assert parsed.database is None
    assert parsed.options == {"w": 2, "journal": False}
    assert parse_uri("helogale://a").hosts == [("a", DEFAULT_PORT)]


def test_option_names_are_case_insensitive() -> None:
    parsed = parse_uri("helogale://a/?REPLICASET=x&readpreference=NEAREST&retrywrites=False")
    assert parsed.options == {"replicaSet": "x", "readPreference": "nearest", "retryWrites": False}


def test_ipv6_and_credentials() -> None:
    parsed = parse_uri("helogale://us%40r:p%3Ass@[::1]:7000,[fe80::2]/db")
    assert parsed.hosts == [("::1", 7000), ("fe80::2", DEFAULT_PORT)]
    assert (parsed.username, parsed.password) == ("us@r", "p:ss")


def test_mongodb_scheme_points_to_wire_protocol_port() -> None:
    with pytest.raises(InvalidURI) as info:
        parse_uri("mongodb://localhost:27017/")
    message = str(info.value)
    assert "wire-protocol port" in message and "helogale://" in message
    with pytest.raises(InvalidURI, match="wire-protocol"):
        helogale.MongoClient("mongodb+srv://cluster.example.com/", connect=False)


@pytest.mark.parametrize(
    "uri, fragment",
    [
        ("http://a", "must begin with"),
        ("helogale://a:0", "Port"),
        ("helogale://a:99999", "Port"),
        ("helogale://a:x1", "Port"),
        ("helogale://", "empty host"),
        ("helogale://a?w=1", "'/' is required"),
        ("helogale://a/?bogus=1", "Unknown option"),
        ("helogale://a/?retryWrites=maybe", "true or false"),
        ("helogale://a/?wtimeoutMS=-5", ">= 0"),
        ("helogale://a/?readPreference=fastest", "readPreference"),
        ("helogale://a/b$c", "Bad database name"),
        ("helogale://[::1/", "IPv6"),
    ],
)
def test_bad_uris(uri: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment.replace("$", r"\$")):
        parse_uri(uri)


def test_parse_host() -> None:
    assert parse_host("Example.COM:123") == ("example.com", 123)
    assert parse_host("x", 9) == ("x", 9)


def test_client_options_from_uri_and_keywords() -> None:
    client = helogale.MongoClient(
        "helogale://h1:1,h2:2/app?replicaSet=rs0&w=majority&wtimeoutMS=5000"
        "&readPreference=secondaryPreferred",
        connect=False,
        serverselectiontimeoutms=1234,
    )
    try:
        assert client.write_concern == WriteConcern(w="majority", wtimeout=5000)
        assert client.read_preference == ReadPreference.SECONDARY_PREFERRED
        assert client.options["serverSelectionTimeoutMS"] == 1234
        assert client.topology.server_selection_timeout == pytest.approx(1.234)
        assert client.topology.replica_set_name == "rs0"
        assert client.get_default_database().name == "app"
        assert client.get_database().name == "app"
        db = client.shop
        assert db.write_concern == client.write_concern
        coll = db.get_collection("users", write_concern=WriteConcern(w=1),
                                 read_preference=ReadPreference.PRIMARY)
        assert coll.write_concern.document == {"w": 1}
        assert coll.read_preference == ReadPreference.PRIMARY
        assert coll.with_options(write_concern=WriteConcern(w=2)).write_concern.document == {"w": 2}
        assert coll.full_name == "shop.users"
        assert db.users == db["users"] and db.users.sub.name == "users.sub"
        assert db.client is client and db.connection is client
    finally:
        client.close()


def test_client_host_port_and_list_forms() -> None:
    with helogale.MongoClient("db1", 5000, connect=False) as client:
        assert client.topology.seeds == [("db1", 5000)]
    with helogale.MongoClient(["a:1", "b:2"], connect=False, w=3) as client:
        assert client.topology.seeds == [("a", 1), ("b", 2)]
        assert client.write_concern.document == {"w": 3}
    with pytest.raises(ConfigurationError, match="Unknown option"):
        helogale.MongoClient("a", connect=False, replicaset_name="x")
    with helogale.MongoClient("a", connect=False) as client, \
            pytest.raises(ConfigurationError, match="No default database"):
        client.get_default_database()


def test_write_concern() -> None:
    wc = WriteConcern(w="majority", wtimeout=100, j=True)
    assert wc.document == {"w": "majority", "wtimeout": 100, "j": True}
    assert wc.acknowledged and not wc.is_server_default
    assert not WriteConcern(w=0).acknowledged
    assert WriteConcern().is_server_default
    with pytest.raises(ConfigurationError):
        WriteConcern(w=-1)
    with pytest.raises(ConfigurationError):
        WriteConcern(w=0, j=True)
    with pytest.raises(ConfigurationError):
        WriteConcern(wtimeout=-1)


def test_legacy_safe_and_w_keywords() -> None:
    default = WriteConcern(wtimeout=50)
    assert from_legacy(default, True, {}) is default
    assert from_legacy(default, None, {"w": 2}).document == {"wtimeout": 50, "w": 2}
    assert from_legacy(default, False, {}).document == {"w": 0}
    assert from_legacy(default, True, {"j": True}).document == {"wtimeout": 50, "j": True}
    with pytest.raises(ConfigurationError, match="unexpected keyword"):
        from_legacy(default, None, {"multy": True})


def _servers() -> list[ServerDescription]:
    hosts = ["a:1", "b:2", "c:3"]
    def hello(me: str, primary: bool, tags: dict[str, str]) -> dict[str, object]:
        return {"ok": 1, "setName": "rs", "hosts": hosts, "me": me, "isWritablePrimary": primary,
                "secondary": not primary, "tags": tags}
    return [
        ServerDescription.from_hello(("a", 1), hello("a:1", True, {"dc": "x"}), 0.001),
        ServerDescription.from_hello(("b", 2), hello("b:2", False, {"dc": "y"}), 0.001),
        ServerDescription.from_hello(("c", 3), hello("c:3", False, {"dc": "x"}), 0.001),
    ]


def test_read_preference_selection() -> None:
    servers = _servers()
    addresses = lambda chosen: sorted(s.address for s in chosen)  # noqa: E731
    assert addresses(ReadPreference.PRIMARY.select(servers)) == [("a", 1)]
    assert addresses(ReadPreference.SECONDARY.select(servers)) == [("b", 2), ("c", 3)]
    assert addresses(ReadPreference.SECONDARY_PREFERRED.select(servers[:1])) == [("a", 1)]
    assert addresses(ReadPreference.PRIMARY_PREFERRED.select(servers[1:])) == [("b", 2), ("c", 3)]
    assert len(ReadPreference.NEAREST.select(servers)) == 3
    tagged = helogale.read_preferences.Secondary(tag_sets=[{"dc": "x"}])
    assert addresses(tagged.select(servers)) == [("c", 3)]
    assert tagged.document == {"mode": "secondary", "tags": [{"dc": "x"}]}
    assert read_pref_from_name("SecondaryPreferred") == ReadPreference.SECONDARY_PREFERRED
    with pytest.raises(ConfigurationError):
        read_pref_from_name("fastest")


_hostnames = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,6}){0,2}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    hosts=st.lists(st.tuples(_hostnames, st.integers(1, 65535)), min_size=1, max_size=4),
    database=st.none() | st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,12}", fullmatch=True),
    w=st.none() | st.integers(0, 5) | st.just("majority"),
    timeout=st.none() | st.integers(0, 10**6),
    retry=st.none() | st.booleans(),
)
def test_uri_round_trip(hosts: list[tuple[str, int]], database: str | None, w: object,
                        timeout: int | None, retry: bool | None) -> None:
    options: dict[str, object] = {}
    if w is not None:
        options["w"] = w
    if timeout is not None:
        options["serverSelectionTimeoutMS"] = timeout
    if retry is not None:
        options["retryWrites"] = retry
    query = "&".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items())
    uri = "helogale://" + ",".join(f"{h}:{p}" for h, p in hosts) + "/" + (database or "")
    if query:
        uri += "?" + query
    parsed = parse_uri(uri)
    assert parsed.hosts == hosts
    assert parsed.database == database
    assert parsed.options == options

"""Parsing of ``helogale://`` connection strings (MongoDB's URI format under Helogale's scheme).

``helogale://[user:pass@]host1[:port1][,host2[:port2],...][/[database][?options]]``. Option names
are case-insensitive and are returned under their canonical (camelCase) spelling with typed values.
A ``mongodb://`` URI is refused with an error that points to the node's wire-protocol port, which
is where MongoDB's own drivers connect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from helogale.errors import ConfigurationError, InvalidURI

SCHEME = "helogale://"
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 27027

Address = tuple[str, int]


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigurationError(f"{name} must be true or false, not {value!r}")


def _non_negative_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be an integer, not {value!r}") from None
    if number < 0:
        raise ConfigurationError(f"{name} must be >= 0, not {value!r}")
    return number


def _w(name: str, value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value)
    return int(text) if text.isdigit() else text


def _str(name: str, value: Any) -> str:
    return str(value)


def _read_preference(name: str, value: Any) -> str:
    modes = ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")
    for mode in modes:
        if str(value).lower() == mode.lower():
            return mode
    raise ConfigurationError(f"{name} must be one of {', '.join(modes)}, not {value!r}")


def _read_concern_level(name: str, value: Any) -> str:
    from helogale.read_concern import LEVELS

    if str(value) not in LEVELS:
        raise ConfigurationError(f"{name} must be one of {', '.join(LEVELS)}, not {value!r}")
    return str(value)


# canonical option name -> validator
_OPTIONS = {
    "replicaSet": _str,
    "w": _w,
    "wTimeoutMS": _non_negative_int,
    "journal": _bool,
    "readPreference": _read_preference,
    "readConcernLevel": _read_concern_level,
    "retryWrites": _bool,
    "retryReads": _bool,
    "serverSelectionTimeoutMS": _non_negative_int,
    "connectTimeoutMS": _non_negative_int,
    "socketTimeoutMS": _non_negative_int,
    "heartbeatFrequencyMS": _non_negative_int,
    "localThresholdMS": _non_negative_int,
    "directConnection": _bool,
    "appName": _str,
    "authSource": _str,
    "username": _str,
    "password": _str,
    "tls": _bool,
    "tlsCAFile": _str,
    "tlsCertificateKeyFile": _str,
}
_ALIASES = {"wtimeout": "wTimeoutMS", "j": "journal", "safe": "safe", "ssl": "tls"}
_CANONICAL = {name.lower(): name for name in _OPTIONS}


def canonical_option(name: str) -> str:
    """The canonical spelling of option ``name`` (case-insensitive); raises for unknown options."""
    lowered = name.lower()
    if lowered in _ALIASES:
        return _ALIASES[lowered]
    if lowered in _CANONICAL:
        return _CANONICAL[lowered]
    raise ConfigurationError(f"Unknown option {name!r}")


def validate_option(name: str, value: Any) -> tuple[str, Any]:
    """``(canonical name, typed value)`` for one client option given by URI or keyword."""
    canonical = canonical_option(name)
    if canonical == "safe":
        return canonical, _bool(name, value)
    return canonical, _OPTIONS[canonical](name, value)


@dataclass
class ParsedURI:
    """What a connection string says: seed hosts, default database, options, credentials."""

    hosts: list[Address]
    database: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    username: str | None = None
    password: str | None = None


def parse_host(entity: str, default_port: int = DEFAULT_PORT) -> Address:
    """``"host"``, ``"host:port"`` or ``"[v6]:port"`` -> ``(host, port)``."""
    host, port_text = entity, ""
    if entity.startswith("["):
        end = entity.find("]")
        if end == -1:
            raise InvalidURI(f"an IPv6 address must be enclosed in '[' and ']': {entity!r}")
        host = entity[1:end]
        rest = entity[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise InvalidURI(f"bad host {entity!r}")
            port_text = rest[1:]
    elif ":" in entity:
        host, port_text = entity.rsplit(":", 1)
    if not host:
        raise InvalidURI(f"empty host in {entity!r}")
    if not port_text:
        return host.lower(), default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidURI(f"Port must be an integer between 1 and 65535: {port_text!r}")
    return host.lower(), int(port_text)


def parse_uri(uri: str, default_port: int = DEFAULT_PORT) -> ParsedURI:
    """Parse a ``helogale://`` connection string."""
    if uri.lower().startswith(("mongodb://", "mongodb+srv://")):
        raise InvalidURI(
            f"{uri.split('://', 1)[0]}:// URIs are for MongoDB drivers (pymongo, mongosh), which "
            "reach a Helogale node on its MongoDB wire-protocol port; the helogale client speaks "
            "gRPC and needs a helogale:// URI, e.g. helogale://localhost:27027/?replicaSet=rs0"
        )
    if not uri.lower().startswith(SCHEME):
        raise InvalidURI(f"Invalid URI scheme: URI must begin with {SCHEME!r}: {uri!r}")
    rest = uri[len(SCHEME) :]
    if "/" in rest:
        netloc, _, path = rest.partition("/")
    elif "?" in rest:
        raise InvalidURI("A '/' is required between the host list and any options.")
    else:
        netloc, path = rest, ""
    database_part, _, query = path.partition("?")
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, pwd = userinfo.partition(":")
        username, password = unquote(user), (unquote(pwd) if pwd else None)
    if not netloc:
        raise InvalidURI(f"Reserved characters or empty host list in {uri!r}")
    hosts = [parse_host(unquote(entity), default_port) for entity in netloc.split(",")]
    database = unquote(database_part) or None
    if database is not None and any(ch in database for ch in ' "$/\\'):
        raise InvalidURI(f"Bad database name {database!r}")
    options: dict[str, Any] = {}
    if query:
        for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            name, typed = validate_option(key, value)
            options[name] = typed
    return ParsedURI(hosts, database, options, username, password)

"""Client authentication: SCRAM-SHA-256 (RFC 5802 / 7677) as MongoDB speaks it.

:class:`Credentials` come from the URI (``helogale://user:pass@host/?authSource=admin``) or
the ``username``/``password``/``authSource`` keyword options. :class:`ClientConversation` is the
client side of the exchange (the server's is ``node.security.scram``, which shares the
primitives here); :func:`authenticate` runs ``saslStart``/``saslContinue`` over any
``run(db, command) -> reply`` and verifies the server's signature, so a server that does not
hold the user's keys is refused as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

MECHANISM = "SCRAM-SHA-256"
NONCE_BYTES = 24
MIN_CLIENT_ITERATIONS = 4096
"""RFC 7677's floor: a server asking for fewer rounds is refused."""


class ScramError(ValueError):
    """The exchange failed; the message is safe to log (it never holds a secret)."""


@dataclass(frozen=True)
class Credentials:
    """Who the client authenticates as (``repr`` never shows the password)."""

    username: str
    password: str = field(repr=False)
    source: str = "admin"


def saslprep(password: str) -> str:
    """SASLprep (RFC 4013) of a password, as pymongo prepares it."""
    try:
        from pymongo.saslprep import saslprep as _prep
    except ImportError:  # pragma: no cover - pymongo ships with bson
        import unicodedata

        return unicodedata.normalize("NFKC", password)
    return str(_prep(password))


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8"), salt, iterations)


def escape_name(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def parse_message(message: bytes) -> dict[str, bytes]:
    """The ``k=v`` fields of a SCRAM message."""
    try:
        return {k.decode(): v for k, v in (item.split(b"=", 1) for item in message.split(b","))}
    except ValueError:
        raise ScramError("malformed SCRAM message") from None


class ClientConversation:
    """The client side: :meth:`first`, then :meth:`final` with the server-first message, then
    :meth:`verify` the server's signature."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self._password = password
        self.nonce = base64.b64encode(secrets.token_bytes(NONCE_BYTES))
        self.first_bare = b"n=" + escape_name(user).encode() + b",r=" + self.nonce
        self._server_sig = b""

    def first(self) -> bytes:
        return b"n,," + self.first_bare

    def final(self, server_first: bytes) -> bytes:
        fields = parse_message(server_first)
        try:
            nonce, salt, iterations = (fields["r"], base64.b64decode(fields["s"]),
                                       int(fields["i"]))
        except (KeyError, ValueError):
            raise ScramError("malformed SCRAM server-first message") from None
        if not nonce.startswith(self.nonce) or len(nonce) <= len(self.nonce):
            raise ScramError("server nonce does not extend the client's")
        if iterations < MIN_CLIENT_ITERATIONS:
            raise ScramError("server asks for too few SCRAM iterations")
        salted = salted_password(self._password, salt, iterations)
        client_key = hmac_sha256(salted, b"Client Key")
        without_proof = b"c=biws,r=" + nonce
        auth_message = self.first_bare + b"," + server_first + b"," + without_proof
        signature = hmac_sha256(hashlib.sha256(client_key).digest(), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_sig = base64.b64encode(
            hmac_sha256(hmac_sha256(salted, b"Server Key"), auth_message))
        return without_proof + b",p=" + base64.b64encode(proof)

    def verify(self, server_final: bytes) -> None:
        if not hmac.compare_digest(parse_message(server_final).get("v", b""), self._server_sig):
            raise ScramError("server signature mismatch")


Run = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


Step = Generator[tuple[str, dict[str, Any]], Mapping[str, Any], None]


def conversation(creds: Credentials) -> Step:
    """One SCRAM-SHA-256 exchange without I/O: yields ``(db, command)`` to send, is sent each
    reply; raises the server's error reply as :class:`~helogale.errors.OperationFailure`
    (18 AuthenticationFailed) or a :class:`ScramError` for a server that could not prove it
    holds the keys. :func:`authenticate` drives it with a blocking ``run``; the asyncio
    client's channel with awaits."""
    from helogale.errors import check_reply

    conv = ClientConversation(creds.username, creds.password)
    reply = yield creds.source, {"saslStart": 1, "mechanism": MECHANISM,
                                 "payload": conv.first(), "options": {"skipEmptyExchange": True}}
    check_reply(reply)
    cid = reply["conversationId"]
    reply = yield creds.source, {"saslContinue": 1, "conversationId": cid,
                                 "payload": conv.final(bytes(reply["payload"]))}
    check_reply(reply)
    conv.verify(bytes(reply["payload"]))
    if not reply.get("done"):
        reply = yield creds.source, {"saslContinue": 1, "conversationId": cid, "payload": b""}
        check_reply(reply)


def authenticate(run: Run, creds: Credentials) -> None:
    """One SCRAM-SHA-256 exchange through ``run`` (see :func:`conversation`)."""
    steps = conversation(creds)
    try:
        request = next(steps)
        while True:
            request = steps.send(run(*request))
    except StopIteration:
        pass

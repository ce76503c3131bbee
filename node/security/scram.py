"""SCRAM-SHA-256 (RFC 5802 / RFC 7677) as MongoDB speaks it: salted keys and both sides.

Passwords are never stored: :func:`make_credentials` keeps only MongoDB's
``{iterationCount, salt, storedKey, serverKey}`` (PBKDF2-HMAC-SHA-256, at least
:data:`MIN_ITERATIONS` rounds, a 28-byte random salt), exactly the shape of
``admin.system.users.credentials["SCRAM-SHA-256"]``. :class:`ServerConversation` checks a
client's proof against those keys; the client side, and the primitives both share, are
:mod:`helogale.auth`. Passwords go through SASLprep (RFC 4013) on both sides, as pymongo does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from helogale.auth import MECHANISM, ScramError, salted_password
from helogale.auth import hmac_sha256 as _hmac
from helogale.auth import parse_message as _raw_parse

__all__ = ["MECHANISM", "MIN_ITERATIONS", "ScramError", "ServerConversation",
           "make_credentials", "salted_password"]

MIN_ITERATIONS = 15_000
"""MongoDB's default ``scramSHA256IterationCount``."""
SALT_BYTES = 28
NONCE_BYTES = 24


def make_credentials(password: str, iterations: int = MIN_ITERATIONS,
                     salt: bytes | None = None) -> dict[str, Any]:
    """MongoDB's stored SCRAM-SHA-256 credentials for ``password`` (never the password)."""
    if iterations < MIN_ITERATIONS:
        raise ValueError(f"SCRAM iterations must be at least {MIN_ITERATIONS}")
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    salted = salted_password(password, salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    return {
        "iterationCount": iterations,
        "salt": base64.b64encode(salt).decode(),
        "storedKey": base64.b64encode(hashlib.sha256(client_key).digest()).decode(),
        "serverKey": base64.b64encode(_hmac(salted, b"Server Key")).decode(),
    }


def _parse(message: bytes) -> dict[str, bytes]:
    return _raw_parse(message)


def unescape_name(name: str) -> str:
    if "=" in name.replace("=3D", "").replace("=2C", ""):
        raise ScramError("malformed SCRAM user name")
    return name.replace("=2C", ",").replace("=3D", "=")


@dataclass
class ServerConversation:
    """The server's side of one exchange: :meth:`first` answers the client-first message with
    the salt and iterations; :meth:`final` checks the proof and answers the server signature.
    ``credentials`` None (an unknown user) still answers a plausible first reply (a salt
    derived from ``fake_seed``), so a client cannot tell unknown users from bad passwords."""

    user: str = ""
    credentials: Mapping[str, Any] | None = None
    client_first_bare: bytes = b""
    server_first: bytes = b""
    nonce: bytes = b""
    done: bool = False
    skip_empty: bool = False
    """The client asked to skip the empty last round (``skipEmptyExchange``)."""

    @staticmethod
    def parse_first(payload: bytes) -> tuple[str, bytes]:
        """The user name and the client-first-bare of a client-first message."""
        if payload.startswith((b"n,", b"y,")):
            _gs2, _, rest = payload.partition(b",")
            authzid, _, bare = rest.partition(b",")
            if authzid:
                raise ScramError("SCRAM authorization identities are not supported")
        elif payload.startswith(b"p="):
            raise ScramError("SCRAM channel binding is not supported")
        else:
            raise ScramError("malformed SCRAM client-first message")
        fields = _parse(bare)
        if "n" not in fields or "r" not in fields or not fields["r"]:
            raise ScramError("SCRAM client-first message needs n= and r=")
        return unescape_name(fields["n"].decode("utf-8", "replace")), bare

    def first(self, client_first_bare: bytes, credentials: Mapping[str, Any] | None,
              fake_seed: bytes) -> bytes:
        self.client_first_bare = client_first_bare
        self.credentials = credentials
        client_nonce = _parse(client_first_bare)["r"]
        self.nonce = client_nonce + base64.b64encode(secrets.token_bytes(NONCE_BYTES))
        if credentials is not None:
            salt = str(credentials["salt"]).encode()
            iterations = int(credentials["iterationCount"])
        else:
            salt = base64.b64encode(_hmac(fake_seed, client_first_bare)[:SALT_BYTES])
            iterations = MIN_ITERATIONS
        self.server_first = b"r=" + self.nonce + b",s=" + salt + b",i=" + str(iterations).encode()
        return self.server_first

    def final(self, client_final: bytes) -> bytes:
        """The server-final message (``v=signature``); raises :class:`ScramError` on a wrong
        proof, an unknown user or a replayed/mismatched nonce."""
        fields = _parse(client_final)
        if fields.get("r") != self.nonce:
            raise ScramError("SCRAM nonce mismatch")
        if fields.get("c") not in (b"biws", b"eSws"):
            raise ScramError("SCRAM channel binding is not supported")
        proof_b64 = fields.get("p")
        if proof_b64 is None:
            raise ScramError("SCRAM client-final message has no proof")
        without_proof = client_final[: client_final.rindex(b",p=")]
        auth_message = self.client_first_bare + b"," + self.server_first + b"," + without_proof
        creds = self.credentials
        if creds is None:
            raise ScramError("unknown user")
        stored_key = base64.b64decode(creds["storedKey"])
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except ValueError:
            raise ScramError("malformed SCRAM proof") from None
        signature = _hmac(stored_key, auth_message)
        if len(proof) != len(signature):
            raise ScramError("wrong password")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key):
            raise ScramError("wrong password")
        self.done = True
        server_sig = _hmac(base64.b64decode(creds["serverKey"]), auth_message)
        return b"v=" + base64.b64encode(server_sig)

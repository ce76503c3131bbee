"""Cluster authentication between members (and later routers): the shared key and the proof.

Owns, in one place so every link of the cluster uses the same rules:

* the **key file** (``--keyfile``), with MongoDB's keyFile rules: base64 alphabet characters
  only, 6 to 1024 of them once whitespace is removed, and a file that group and others cannot
  read; :func:`load_keyfile` refuses anything else with a clear :class:`KeyFileError`.
  :func:`write_keyfile` makes a fresh random key (``helogale up`` does, once per cluster).
* the **proof** a client presents when it opens a stream:
  ``HMAC-SHA256(key, domain | server nonce | client nonce | sender id | receiver id)``. The
  server nonce comes from the receiver's :meth:`Verifier.challenge` (random, single use, short
  lived, in a bounded table), so a captured proof cannot be replayed; binding both member ids
  means a proof for one receiver, or claiming one sender, is worthless for any other.
* :class:`Verifier`, the receiving side: issues nonces and checks proofs with
  ``hmac.compare_digest``; it never logs or returns the key or a proof.

The key authenticates the *opening* of a stream. It does not encrypt or sign each message: a
machine able to tamper with traffic on the path needs TLS as well (``raft.tls``: mutual TLS
on the Raft port).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "COMMAND_SENDER", "DOMAIN_COMMAND", "DOMAIN_RAFT", "AuthError", "KeyFileError", "Verifier",
    "client_metadata", "generate_key", "load_keyfile", "parse_key", "proof", "write_keyfile",
]

KEY_MIN_CHARS = 6
KEY_MAX_CHARS = 1024
NONCE_BYTES = 32
DOMAIN_RAFT = b"helogale/raft-stream/v1"
"""Domain tag of Raft peer streams; other links (routers) use their own tag, so a proof made
for one kind of link is never accepted by another."""
DOMAIN_COMMAND = b"helogale/command-link/v1"
"""Domain tag of internal command links (a router or another set's member running commands on
a member over its Raft port: ``node.server.command_link``)."""
COMMAND_SENDER = 1 << 62
"""The sender id a command link's proof names: not a member id (the link carries commands,
never Raft messages, and its proofs are made in their own domain)."""

MD_SENDER = "x-helogale-sender"
MD_RECEIVER = "x-helogale-receiver"
MD_SERVER_NONCE = "x-helogale-snonce"
MD_CLIENT_NONCE = "x-helogale-cnonce"
MD_PROOF = "x-helogale-proof"

_KEY_CHARS = re.compile(r"[A-Za-z0-9+/=]+")
_IDS = struct.Struct(">QQ")


class KeyFileError(ValueError):
    """The key file cannot be used; the message says why (never what the key is)."""


class AuthError(Exception):
    """A peer failed authentication; the message is safe to log."""


# ---------------------------------------------------------------------- the key file
def parse_key(text: str, source: str = "key") -> bytes:
    """The key a key file's text holds: every non-whitespace character, which must be of the
    base64 alphabet and number 6 to 1024."""
    key = "".join(text.split())
    if not key:
        raise KeyFileError(f"security key in {source} is empty")
    if not _KEY_CHARS.fullmatch(key):
        raise KeyFileError(f"security key in {source} has invalid characters "
                           "(only the base64 alphabet A-Z a-z 0-9 + / = is allowed)")
    if not KEY_MIN_CHARS <= len(key) <= KEY_MAX_CHARS:
        raise KeyFileError(f"security key in {source} has length {len(key)}, must be between "
                           f"{KEY_MIN_CHARS} and {KEY_MAX_CHARS} characters")
    return key.encode("ascii")


def load_keyfile(path: str | os.PathLike[str]) -> bytes:
    """Read and check a key file (as mongod does: refused if group or others may read it)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"key file {p} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(f"permissions on {p} are too open "
                           f"({stat.filemode(st.st_mode)}); run: chmod 600 {p}")
    try:
        text = p.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"security key in {p} has invalid characters") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {p}: {exc.strerror or exc}") from None
    return parse_key(text, str(p))


def generate_key(nbytes: int = 756) -> str:
    """A random key as ``openssl rand -base64 756`` prints it (1008 characters, 64 a line)."""
    text = base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")
    return "\n".join(text[i:i + 64] for i in range(0, len(text), 64)) + "\n"


def write_keyfile(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` with a fresh random key, readable by its owner only (mode 0600). The
    file must not exist yet: an existing cluster's key is never overwritten."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, generate_key().encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return p


# ---------------------------------------------------------------------- the proof
def proof(key: bytes, domain: bytes, server_nonce: bytes, client_nonce: bytes, sender: int,
          receiver: int) -> bytes:
    """HMAC-SHA256 binding the link kind, both nonces and both ids (fixed-size fields, so no
    two different inputs share an encoding)."""
    if len(server_nonce) != NONCE_BYTES or len(client_nonce) != NONCE_BYTES:
        raise AuthError("nonces must be 32 bytes")
    msg = (domain + b"\0" + server_nonce + client_nonce
           + _IDS.pack(sender & 0xFFFFFFFFFFFFFFFF, receiver & 0xFFFFFFFFFFFFFFFF))
    return hmac.new(key, msg, hashlib.sha256).digest()


def client_metadata(key: bytes, server_nonce: bytes, sender: int, receiver: int, *,
                    domain: bytes = DOMAIN_RAFT, client_nonce: bytes | None = None
                    ) -> list[tuple[str, str]]:
    """gRPC metadata proving ``sender`` holds the key, for one stream to ``receiver``."""
    cn = client_nonce if client_nonce is not None else secrets.token_bytes(NONCE_BYTES)
    p = proof(key, domain, server_nonce, cn, sender, receiver)
    return [(MD_SENDER, str(sender)), (MD_RECEIVER, str(receiver)),
            (MD_SERVER_NONCE, server_nonce.hex()), (MD_CLIENT_NONCE, cn.hex()),
            (MD_PROOF, p.hex())]


class Verifier:
    """The receiving side: hands out single-use nonces and checks the proofs made with them.

    At most ``max_pending`` nonces are outstanding (the oldest is forgotten first) and each
    expires after ``ttl`` seconds, so a flood of challenges costs bounded memory. Thread-safe.
    """

    def __init__(self, key: bytes, node_id: int, *, domain: bytes = DOMAIN_RAFT,
                 ttl: float = 10.0, max_pending: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._key = key
        self.node_id = node_id
        self.domain = domain
        self.ttl = ttl
        self.max_pending = max_pending
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: OrderedDict[bytes, float] = OrderedDict()

    def challenge(self) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        now = self._clock()
        with self._lock:
            self._expire(now)
            while len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
            self._pending[nonce] = now + self.ttl
        return nonce

    def _expire(self, now: float) -> None:
        pending = self._pending
        while pending:
            _nonce, deadline = next(iter(pending.items()))
            if deadline > now:
                break
            pending.popitem(last=False)

    def _redeem(self, nonce: bytes) -> bool:
        now = self._clock()
        with self._lock:
            deadline = self._pending.pop(nonce, None)
        return deadline is not None and deadline > now

    def verify(self, metadata: Iterable[tuple[str, str | bytes]]) -> int:
        """The authenticated sender id, or AuthError saying (safely) what was wrong."""
        md: dict[str, str] = {}
        for k, v in metadata:
            if k.startswith("x-helogale-"):
                md[k] = v.decode("ascii", "replace") if isinstance(v, bytes) else v
        if MD_PROOF not in md:
            raise AuthError("no credentials (is the key file set on the sender?)")
        try:
            sender = int(md[MD_SENDER])
            receiver = int(md[MD_RECEIVER])
            snonce = bytes.fromhex(md[MD_SERVER_NONCE])
            cnonce = bytes.fromhex(md[MD_CLIENT_NONCE])
            given = bytes.fromhex(md[MD_PROOF])
        except (KeyError, ValueError):
            raise AuthError("malformed credentials") from None
        if sender <= 0 or sender == self.node_id:
            raise AuthError(f"invalid sender id {sender}")
        if receiver != self.node_id:
            raise AuthError(f"credentials are for member {receiver}, this is {self.node_id}")
        if len(cnonce) != NONCE_BYTES or not self._redeem(snonce):
            raise AuthError(f"unknown, expired or reused challenge (claimed sender {sender})")
        want = proof(self._key, self.domain, snonce, cnonce, sender, receiver)
        if not hmac.compare_digest(want, given):
            raise AuthError(f"bad proof for claimed sender {sender} (different key file?)")
        return sender

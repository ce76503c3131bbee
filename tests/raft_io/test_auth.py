"""raft.auth: key files (MongoDB's keyFile rules), the proof, and the verifier's nonces."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from raft.auth import (
    DOMAIN_RAFT,
    MD_PROOF,
    AuthError,
    KeyFileError,
    Verifier,
    client_metadata,
    generate_key,
    load_keyfile,
    parse_key,
    proof,
    write_keyfile,
)

KEY = b"a2V5LW9uZQ=="


def _keyfile(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "key"
    p.write_text(text)
    p.chmod(mode)
    return p


# ---------------------------------------------------------------------- key files
def test_key_text_rules() -> None:
    assert parse_key("abc+/=\n  DEF 123\t\n") == b"abc+/=DEF123"  # whitespace ignored
    assert parse_key("x" * 6) == b"xxxxxx" and len(parse_key("y" * 1024)) == 1024
    with pytest.raises(KeyFileError, match="empty"):
        parse_key(" \n\t")
    with pytest.raises(KeyFileError, match="between 6 and 1024"):
        parse_key("abcde")
    with pytest.raises(KeyFileError, match="between 6 and 1024"):
        parse_key("z" * 1025)
    for bad in ("abc-def", "abc_def", "clé123456", "abc.def", "a\x00bcdefg"):
        with pytest.raises(KeyFileError, match="invalid characters"):
            parse_key(bad)


def test_load_keyfile_checks_permissions_like_mongod(tmp_path: Path) -> None:
    assert load_keyfile(_keyfile(tmp_path, "c2VjcmV0\n", 0o600)) == b"c2VjcmV0"
    assert load_keyfile(_keyfile(tmp_path, "c2VjcmV0\n", 0o400)) == b"c2VjcmV0"
    for mode in (0o640, 0o604, 0o644, 0o660):
        with pytest.raises(KeyFileError, match="too open"):
            load_keyfile(_keyfile(tmp_path, "c2VjcmV0\n", mode))
    with pytest.raises(KeyFileError, match="cannot read"):
        load_keyfile(tmp_path / "missing")
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_keyfile(tmp_path)
    p = tmp_path / "bin"
    p.write_bytes(b"\xff\xfe secret")
    p.chmod(0o600)
    with pytest.raises(KeyFileError, match="invalid characters"):
        load_keyfile(p)


def test_generated_key_file_is_private_and_valid(tmp_path: Path) -> None:
    p = write_keyfile(tmp_path / "keyfile")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    key = load_keyfile(p)
    assert len(key) == 1008 and key != load_keyfile(write_keyfile(tmp_path / "other"))
    with pytest.raises(FileExistsError):  # a cluster's key is never overwritten
        write_keyfile(p)
    assert all(len(line) <= 64 for line in generate_key().splitlines())


# ---------------------------------------------------------------------- proofs
def test_proof_binds_every_field() -> None:
    sn, cn = b"s" * 32, b"c" * 32
    base = proof(KEY, DOMAIN_RAFT, sn, cn, 1, 2)
    assert len(base) == 32 and base == proof(KEY, DOMAIN_RAFT, sn, cn, 1, 2)
    variants = [
        proof(b"b3RoZXI=", DOMAIN_RAFT, sn, cn, 1, 2),
        proof(KEY, b"helogale/router/v1", sn, cn, 1, 2),
        proof(KEY, DOMAIN_RAFT, b"t" * 32, cn, 1, 2),
        proof(KEY, DOMAIN_RAFT, sn, b"d" * 32, 1, 2),
        proof(KEY, DOMAIN_RAFT, sn, cn, 2, 1),
        proof(KEY, DOMAIN_RAFT, sn, cn, 1, 3),
    ]
    assert base not in variants and len(set(variants)) == len(variants)
    with pytest.raises(AuthError):
        proof(KEY, DOMAIN_RAFT, b"short", cn, 1, 2)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_verifier_accepts_once_and_refuses_the_rest() -> None:
    clock = Clock()
    v = Verifier(KEY, 2, ttl=5.0, max_pending=3, clock=clock)
    md = client_metadata(KEY, v.challenge(), 1, 2)
    assert v.verify(md) == 1
    with pytest.raises(AuthError, match="reused"):
        v.verify(md)  # replay
    with pytest.raises(AuthError, match="bad proof"):
        v.verify(client_metadata(b"d3Jvbmc=", v.challenge(), 1, 2))
    with pytest.raises(AuthError, match="for member 3"):
        v.verify(client_metadata(KEY, v.challenge(), 1, 3))
    with pytest.raises(AuthError, match="invalid sender"):
        v.verify(client_metadata(KEY, v.challenge(), 2, 2))
    with pytest.raises(AuthError, match="no credentials"):
        v.verify([])
    tampered = [(k, ("00" * 32 if k == MD_PROOF else val)) for k, val in
                client_metadata(KEY, v.challenge(), 1, 2)]
    with pytest.raises(AuthError, match="bad proof"):
        v.verify(tampered)
    with pytest.raises(AuthError, match="malformed"):
        v.verify([(MD_PROOF, "zz")])
    # a nonce never issued, an expired one, and one pushed out by a flood of challenges
    with pytest.raises(AuthError, match="expired or reused"):
        v.verify(client_metadata(KEY, b"n" * 32, 1, 2))
    old = v.challenge()
    clock.now += 5.0
    with pytest.raises(AuthError, match="expired"):
        v.verify(client_metadata(KEY, old, 1, 2))
    first = v.challenge()
    for _ in range(3):
        v.challenge()
    with pytest.raises(AuthError, match="expired or reused"):
        v.verify(client_metadata(KEY, first, 1, 2))
    assert len(v._pending) == 3  # bounded
    assert v.verify(client_metadata(KEY, v.challenge(), 7, 2)) == 7

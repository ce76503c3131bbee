"""Throwaway certificates for a local cluster (``helogale up --tls``, tests): a CA and
certificates it signs, made with the ``cryptography`` package (P-256 keys, 30 days).

:func:`make_pki` writes ``ca.pem`` (the CA certificate: ``--tlsCAFile``, the clients'
``tlsCAFile``), ``server.pem`` (certificate + key for every member and router, valid for
``localhost`` and ``127.0.0.1``: ``--tlsCertificateKeyFile``) and ``client.pem`` (a client
certificate, for ports that require one). Keys are written mode 600. Not for production:
the CA key is thrown away, so nothing else can ever be signed by it.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from dataclasses import dataclass
from typing import Any

VALID_DAYS = 30


@dataclass(frozen=True)
class PKI:
    ca_file: str
    server_file: str
    client_file: str


def _name(common: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "helogale local"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool,
          hosts: tuple[str, ...] = ()) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = _dt.datetime.now(_dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - _dt.timedelta(minutes=5))
               .not_valid_after(now + _dt.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        names: list[Any] = []
        for h in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                names.append(x509.DNSName(h))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: str, data: bytes, private: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_pki(directory: str, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
             ca_name: str = "helogale local CA") -> PKI:
    """A fresh CA and a server and a client certificate under ``directory``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    os.makedirs(directory, exist_ok=True)
    pem = serialization.Encoding.PEM

    def key_pem(key: Any) -> bytes:
        return key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    paths = PKI(os.path.join(directory, "ca.pem"), os.path.join(directory, "server.pem"),
                os.path.join(directory, "client.pem"))
    _write(paths.ca_file, ca.public_bytes(pem), private=False)
    for path, subject, names in ((paths.server_file, "helogale server", hosts),
                                 (paths.client_file, "helogale client", ())):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(subject, key, ca_name, ca_key, ca=False, hosts=names)
        _write(path, cert.public_bytes(pem) + key_pem(key), private=True)
    return paths

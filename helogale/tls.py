"""Client TLS: ``tls=true``, ``tlsCAFile`` and ``tlsCertificateKeyFile`` (URI options or
keywords, pymongo's names) become gRPC channel credentials. The CA verifies the server (its
certificate must name the host dialled); the certificate-key file (one PEM file with both, as
MongoDB's) is presented to servers that ask for client certificates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from helogale.errors import ConfigurationError

_PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----\s*",
                      re.S)
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\s*", re.S)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {path!r}: {exc}") from None


@dataclass(frozen=True)
class ClientTLS:
    ca_file: str | None = None
    certificate_key_file: str | None = None

    def credentials(self) -> Any:
        import grpc

        ca = _read(self.ca_file, "tlsCAFile") if self.ca_file else None
        key = chain = None
        if self.certificate_key_file:
            data = _read(self.certificate_key_file, "tlsCertificateKeyFile")
            found = _PEM_KEY.search(data)
            certs = _PEM_CERT.findall(data)
            if found is None or not certs:
                raise ConfigurationError("tlsCertificateKeyFile must hold a PEM certificate "
                                         "and its private key")
            key, chain = found.group(0), b"".join(certs)
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                            certificate_chain=chain)


def client_tls(opts: dict[str, Any]) -> ClientTLS | None:
    """The client's TLS from its options (None: plain text)."""
    on = opts.get("tls")
    files = opts.get("tlsCAFile") or opts.get("tlsCertificateKeyFile")
    if on is False:
        if files:
            raise ConfigurationError("tls=false contradicts tlsCAFile/tlsCertificateKeyFile")
        return None
    if not on and not files:
        return None
    return ClientTLS(opts.get("tlsCAFile"), opts.get("tlsCertificateKeyFile"))

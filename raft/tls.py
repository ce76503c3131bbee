"""TLS for every listening port of a process (gRPC client port, Raft port, wire port) and for
the connections it opens, from files, with MongoDB's option names.

``--tlsMode``: ``disabled`` (plain text), ``requireTLS`` (every port TLS only; a plain-text
client is refused during the handshake) or ``preferTLS`` (connections this process opens use
TLS; the wire port accepts TLS and plain-text clients, told apart by the first byte; a gRPC
port can only be one or the other, so the gRPC and Raft ports are TLS-only as with
``requireTLS``). ``--tlsCertificateKeyFile``: this process's certificate and private key (one
PEM file, as MongoDB's). ``--tlsCAFile``: the CA that signs every certificate of the cluster;
it verifies the peers this process dials and, on the Raft port, the members dialling in
(mutual TLS: a member whose certificate the CA did not sign cannot speak Raft). Client ports
verify client certificates only with ``--tlsRequireClientCertificate``.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import Any

DISABLED = "disabled"
PREFER = "preferTLS"
REQUIRE = "requireTLS"
MODES = (DISABLED, PREFER, REQUIRE)

_PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----\s*",
                      re.S)
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\s*", re.S)


class TLSConfigError(ValueError):
    """The TLS options cannot be used; the message says why (never a key)."""


@dataclass(frozen=True)
class TLSSettings:
    """One process's TLS: mode and files (see module docstring)."""

    mode: str = DISABLED
    certificate_key_file: str | None = None
    ca_file: str | None = None
    require_client_certificate: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TLSConfigError(f"--tlsMode must be one of {', '.join(MODES)}, not "
                                 f"{self.mode!r}")
        if self.enabled and not self.certificate_key_file:
            raise TLSConfigError(f"--tlsMode {self.mode} needs --tlsCertificateKeyFile")
        if self.enabled and not self.ca_file:
            raise TLSConfigError(f"--tlsMode {self.mode} needs --tlsCAFile (it verifies the "
                                 "members and routers this process talks to)")

    @property
    def enabled(self) -> bool:
        return self.mode != DISABLED

    def _pem(self) -> tuple[bytes, bytes]:
        """(private key, certificate chain) from the certificate-key file."""
        assert self.certificate_key_file is not None
        try:
            with open(self.certificate_key_file, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise TLSConfigError(f"cannot read --tlsCertificateKeyFile: {exc}") from None
        key = _PEM_KEY.search(data)
        certs = _PEM_CERT.findall(data)
        if key is None or not certs:
            raise TLSConfigError(f"{self.certificate_key_file} must hold a PEM certificate and "
                                 "its private key")
        return key.group(0), b"".join(certs)

    def _ca(self) -> bytes:
        assert self.ca_file is not None
        try:
            with open(self.ca_file, "rb") as f:
                return f.read()
        except OSError as exc:
            raise TLSConfigError(f"cannot read --tlsCAFile: {exc}") from None

    # ------------------------------------------------------------------ gRPC
    def grpc_server_credentials(self, *, mutual: bool = False) -> Any:
        """Credentials of a TLS gRPC port; ``mutual``: clients must present a certificate
        the CA signed (the Raft port; client ports with ``require_client_certificate``)."""
        import grpc

        key, chain = self._pem()
        require = mutual or self.require_client_certificate
        return grpc.ssl_server_credentials([(key, chain)], root_certificates=self._ca(),
                                           require_client_auth=require)

    def grpc_channel_credentials(self) -> Any:
        """Credentials for dialling a TLS gRPC port of the cluster (presenting this process's
        certificate, for ports that ask for one)."""
        import grpc

        key, chain = self._pem()
        return grpc.ssl_channel_credentials(root_certificates=self._ca(), private_key=key,
                                            certificate_chain=chain)

    # ------------------------------------------------------------------ wire (ssl)
    def server_ssl_context(self) -> ssl.SSLContext:
        """The wire port's TLS context."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        assert self.certificate_key_file is not None and self.ca_file is not None
        try:
            ctx.load_cert_chain(self.certificate_key_file)
            ctx.load_verify_locations(self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(f"cannot load the TLS certificate or CA: {exc}") from None
        ctx.verify_mode = (ssl.CERT_REQUIRED if self.require_client_certificate
                           else ssl.CERT_OPTIONAL)
        return ctx


def add_port(server: Any, address: str, tls: TLSSettings | None, *, mutual: bool = False
             ) -> int:
    """Listen on ``address``: TLS when ``tls`` is enabled, else plain text; the port (0 when
    the address cannot be bound)."""
    if tls is not None and tls.enabled:
        return int(server.add_secure_port(address, tls.grpc_server_credentials(mutual=mutual)))
    return int(server.add_insecure_port(address))


def channel(address: str, tls: TLSSettings | None, options: Any = None) -> Any:
    """A gRPC channel to ``address``: TLS when ``tls`` is enabled."""
    import grpc

    if tls is not None and tls.enabled:
        return grpc.secure_channel(address, tls.grpc_channel_credentials(), options=options)
    return grpc.insecure_channel(address, options=options)

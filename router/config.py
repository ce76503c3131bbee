"""Settings of a router process, from command-line flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from node.ops.metrics import default_host, default_port
from raft.tls import TLSConfigError, TLSSettings


@dataclass
class RouterConfig:
    configdb: str
    """The config servers: ``cfgset/host:port,host:port`` (their gRPC addresses)."""
    listen: str
    advertise: str | None = None
    wire_port: int | None = None
    wire_listen_host: str = "127.0.0.1"
    advertise_wire: str | None = None
    log_level: str = "INFO"
    cursor_timeout_s: float = 600.0
    metrics_port: int | None = field(default_factory=default_port)
    """Prometheus metrics and the status page (None: off; 0: any free port); default
    ``HELOGALE_METRICS_PORT``."""
    metrics_host: str = field(default_factory=default_host)
    slowms: int = 100
    auth: bool = False
    """``--auth``: users authenticate (SCRAM) and need roles; the router then talks to the
    config servers and shards as the cluster's internal identity (``keyfile``)."""
    keyfile: str | None = None
    tls_mode: str = "disabled"
    tls_certificate_key_file: str | None = None
    tls_ca_file: str | None = None
    tls_require_client_certificate: bool = False

    @property
    def tls(self) -> TLSSettings:
        return TLSSettings(self.tls_mode, self.tls_certificate_key_file, self.tls_ca_file,
                           self.tls_require_client_certificate)

    @property
    def advertised(self) -> str:
        return self.advertise or self.listen

    @property
    def advertised_wire(self) -> str | None:
        if self.advertise_wire:
            return self.advertise_wire
        if self.wire_port is None:
            return None
        return f"{self.advertised.rsplit(':', 1)[0]}:{self.wire_port}"


def config_from_args(argv: list[str] | None = None) -> RouterConfig:
    p = argparse.ArgumentParser(prog="helogale-router",
                                description="Helogale router: a sharded cluster's front door")
    p.add_argument("--configdb", required=True,
                   help="config servers: SETNAME/HOST:PORT,HOST:PORT (gRPC addresses)")
    p.add_argument("--listen", required=True, help="gRPC listen address HOST:PORT")
    p.add_argument("--advertise", help="gRPC address clients dial (default: --listen)")
    p.add_argument("--wire-port", type=int, help="also serve the MongoDB wire protocol here")
    p.add_argument("--wire-host", dest="wire_listen_host", default="127.0.0.1",
                   help="wire listen host")
    p.add_argument("--advertise-wire", help="wire address reported by hello")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    p.add_argument("--metrics-port", type=int,
                   help="metrics and status page port (default $HELOGALE_METRICS_PORT)")
    p.add_argument("--metrics-host", help="metrics listen host (default 127.0.0.1)")
    p.add_argument("--slowms", type=int, help="log operations slower than this (default 100)")
    p.add_argument("--auth", action="store_true",
                   help="require users to authenticate and hold roles (needs --keyfile)")
    p.add_argument("--keyfile", help="the cluster key file (the internal identity)")
    p.add_argument("--tlsMode", dest="tls_mode", default="disabled",
                   choices=["disabled", "preferTLS", "requireTLS"],
                   help="TLS on the router's ports and to the config servers and shards")
    p.add_argument("--tlsCertificateKeyFile", dest="tls_certificate_key_file",
                   help="PEM file with the router's certificate and private key")
    p.add_argument("--tlsCAFile", dest="tls_ca_file", help="PEM file of the cluster's CA")
    p.add_argument("--tlsRequireClientCertificate", dest="tls_require_client_certificate",
                   action="store_true",
                   help="refuse clients without a certificate the CA signed")
    ns = p.parse_args(argv)
    if ns.auth and not ns.keyfile:
        p.error("--auth needs --keyfile: the router talks to the shards as the cluster")
    config = RouterConfig(**{k: v for k, v in vars(ns).items() if v is not None})
    try:
        config.tls  # noqa: B018 - validates the TLS options
    except TLSConfigError as exc:
        p.error(str(exc))
    return config

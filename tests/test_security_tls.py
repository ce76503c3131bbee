"""TLS settings and the wire listener's TLS modes, in process (``raft.tls``, node.wire)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import ServerSelectionTimeoutError

from node.commands.context import WIRE, RequestContext
from node.security.certs import PKI, make_pki
from node.server.standalone import standalone_dispatcher
from node.wire.server import WireServer
from raft.tls import PREFER, REQUIRE, TLSConfigError, TLSSettings


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(str(tmp_path_factory.mktemp("pki")))


def serve(pki: PKI, mode: str) -> Iterator[WireServer]:
    d = standalone_dispatcher()

    def handle(db: str, command: dict[str, Any], info: Any) -> dict[str, Any]:
        return d.run(db, command, RequestContext(transport=WIRE, peer=info.peer,
                                                 auth=info.session()))

    tls = TLSSettings(mode, pki.server_file, pki.ca_file)
    server = WireServer(handle, "127.0.0.1", 0, ssl_context=tls.server_ssl_context(),
                        tls_only=mode == REQUIRE).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def require(pki: PKI) -> Iterator[WireServer]:
    yield from serve(pki, REQUIRE)


@pytest.fixture
def prefer(pki: PKI) -> Iterator[WireServer]:
    yield from serve(pki, PREFER)


def uri(server: WireServer, query: str = "") -> str:
    host, port = server.address
    return f"mongodb://{host}:{port}/?directConnection=true{query}"


def test_settings_refuse_what_cannot_work(pki: PKI, tmp_path: Any) -> None:
    with pytest.raises(TLSConfigError, match="tlsMode"):
        TLSSettings("sometimes")
    with pytest.raises(TLSConfigError, match="tlsCertificateKeyFile"):
        TLSSettings(REQUIRE, ca_file=pki.ca_file)
    with pytest.raises(TLSConfigError, match="tlsCAFile"):
        TLSSettings(REQUIRE, pki.server_file)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(TLSConfigError, match="PEM"):
        TLSSettings(REQUIRE, str(bad), pki.ca_file).grpc_server_credentials()
    assert not TLSSettings().enabled
    assert os.stat(pki.server_file).st_mode & 0o077 == 0  # keys are private


def test_require_tls_serves_tls_and_refuses_plain_text(require: WireServer, pki: PKI) -> None:
    with MongoClient(uri(require, f"&tls=true&tlsCAFile={pki.ca_file}"),
                     serverSelectionTimeoutMS=5000) as c:
        assert c.admin.command("ping")["ok"] == 1.0
    with MongoClient(uri(require), serverSelectionTimeoutMS=1000) as c, \
            pytest.raises(ServerSelectionTimeoutError):
        c.admin.command("ping")
    assert require.tls_refused >= 1


def test_prefer_tls_serves_both(prefer: WireServer, pki: PKI) -> None:
    with MongoClient(uri(prefer, f"&tls=true&tlsCAFile={pki.ca_file}"),
                     serverSelectionTimeoutMS=5000) as c:
        assert c.admin.command("ping")["ok"] == 1.0
    with MongoClient(uri(prefer), serverSelectionTimeoutMS=5000) as c:
        assert c.admin.command("ping")["ok"] == 1.0
    assert prefer.tls_refused == 0

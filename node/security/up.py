"""``helogale up --auth --tls``: a throwaway CA and certificates, and a first ``root`` user.

With ``--tls`` the CA and the certificates are made under ``<data>/tls`` (kept with the
data, so a restarted cluster keeps its CA) or a temporary directory removed at exit. With
``--auth`` the first user, ``root`` (role ``root`` on ``admin``), is created through the
localhost exception with a random password kept in ``<data>/root-password`` (mode 600), and
the printed URIs carry it, with ``authSource=admin`` and, with TLS, ``tls=true`` and the CA
file: they work as they are, for pymongo and the helogale client alike.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from node.security.certs import PKI, make_pki

USER = "root"


class SecureUp:
    def __init__(self, data_dir: str | None, auth: bool, tls: bool) -> None:
        self.auth = auth
        self._tmp: str | None = None
        self.pki: PKI | None = None
        if tls:
            if data_dir is None:
                self._tmp = tempfile.mkdtemp(prefix="helogale-tls-")
                where = self._tmp
            else:
                where = os.path.join(data_dir, "tls")
            ca = os.path.join(where, "ca.pem")
            self.pki = (PKI(ca, os.path.join(where, "server.pem"),
                            os.path.join(where, "client.pem"))
                        if os.path.exists(ca) else make_pki(where))
        self._password_file = (os.path.join(data_dir, "root-password") if data_dir is not None
                               else None)

    def _password(self) -> tuple[str, bool]:
        """The root password and whether an earlier run already created the user."""
        path = self._password_file
        if path is not None and os.path.exists(path):
            with open(path, encoding="ascii") as f:
                return f.read().strip(), True
        password = secrets.token_urlsafe(18)
        if path is not None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(password + "\n")
        return password, False

    def first_user(self, cluster: Any, say: Callable[[str], None]) -> None:
        """Create ``root`` (once per data directory) and put it in the cluster's URIs."""
        if not self.auth:
            return
        import helogale

        password, existed = self._password()
        if not existed:
            with helogale.MongoClient(cluster.uri, serverSelectionTimeoutMS=30000) as bare:
                bare.admin.command("createUser", USER, pwd=password, roles=["root"])
            say(f"created user {USER} (role root on admin)")
        cluster.userinfo = f"{USER}:{quote(password, safe='')}@"

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

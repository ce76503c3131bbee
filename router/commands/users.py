"""The router's user management: users live on the config servers (``admin.system.users`` of
the config set), so ``createUser`` and the rest are sent there, as the cluster's internal
identity, once this router has checked the caller may run them. Authentication itself
(``saslStart``/``saslContinue``) runs on the router, with users read from the config servers
(:class:`~node.security.authz.RemoteUsers`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.commands.context import RequestContext
from router.services import RouterServices, forwardable


def to_config(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
              ) -> dict[str, Any]:
    """Run a user-management command on the config set's primary; its reply (this router
    forgets the users it kept, so a change made through it applies to its next command)."""
    reply = svc.config.command(db, forwardable(cmd, "lsid", "txnNumber"))
    invalidate = getattr(svc.users, "invalidate", None)
    if invalidate is not None:
        invalidate()
    return reply

"""What the router's handlers reach: the metadata cache, the shards, the config servers and
the router's own cursors (the same registry class a node uses)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from helogale.read_preferences import ReadPreference, ServerMode, read_pref_from_name
from node.commands.cursors import CursorRegistry
from node.sharding.remote import RemoteSet
from router.catalog import CatalogCache
from router.shards import Shards
from router.snapshots import RouterSnapshots

TRANSPORT_FIELDS = frozenset({"$db", "$clusterTime", "$readPreference", "shardVersion",
                              "$secondaryOk", "$queryOptions"})
"""Fields of a client's command the router never forwards as they are."""


@dataclass
class RouterServices:
    catalog: CatalogCache
    shards: Shards
    config: RemoteSet
    cursors: CursorRegistry = field(default_factory=CursorRegistry)
    started_at: float = field(default_factory=time.time)
    commands: Mapping[str, Any] = field(default_factory=dict)
    advertised: str = ""
    """This router's own address, as ``hello.me`` reports it."""
    ops: Any = None
    """The dispatcher's :class:`~node.ops.hook.OpsHook` (set by the Dispatcher)."""
    users: Any = None
    """``--auth``: users read from the config servers (``node.security.authz.RemoteUsers``)."""
    authz: Any = None
    """``--auth``: the authorization check every command passes first."""
    snapshots: RouterSnapshots = field(default_factory=RouterSnapshots)
    """``readConcern: snapshot`` tokens this router issued (``router.snapshots``)."""


def read_preference(cmd: Mapping[str, Any]) -> ServerMode:
    """The client's ``$readPreference`` (primary when absent or unknown)."""
    pref = cmd.get("$readPreference")
    mode = pref.get("mode") if isinstance(pref, Mapping) else None
    if not isinstance(mode, str):
        return ReadPreference.PRIMARY
    try:
        return read_pref_from_name(mode)
    except Exception:
        return ReadPreference.PRIMARY


def forwardable(cmd: Mapping[str, Any], *drop: str) -> dict[str, Any]:
    """``cmd`` without transport fields (and ``drop``), ready to send to a shard. A
    ``readConcern`` loses ``afterClusterTime``/``atClusterTime``: each shard counts its own
    cluster time (``router.snapshots`` sets a snapshot's per shard)."""
    out = {k: v for k, v in cmd.items() if k not in TRANSPORT_FIELDS and k not in drop}
    rc = out.get("readConcern")
    if isinstance(rc, Mapping) and ("afterClusterTime" in rc or "atClusterTime" in rc):
        out["readConcern"] = {k: v for k, v in rc.items()
                              if k not in ("afterClusterTime", "atClusterTime")}
    return out

"""The internal commands of the sharded cluster, served by config servers and shards.

Config servers (``_configsvr*``): called by routers (and donors, for the migration commit);
each changes the metadata with one ``applyOps`` entry (:mod:`node.sharding.config_server`).
Shards (``_shardsvr*``, ``_recvChunk*``, ``getShardVersion``): called by config servers, by a
donor shard (the recipient's side of a migration) and by operators.

All run against ``admin`` on the primary; a member of the wrong role answers IllegalOperation.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bson import Int64

from node.commands.args import get_bool, get_str
from node.commands.context import RequestContext
from node.engine.errors import BAD_VALUE, MongoError
from node.engine.values import compare
from node.server.periodic import Periodic
from node.sharding import chunk_stats
from node.sharding.config_server import PRESPLIT_WINDOW_S, ConfigServer
from node.sharding.migration import (
    MigrationDestination,
    MigrationRecovery,
    MigrationSource,
    RangeDeleter,
)
from node.sharding.migration_ops import read_migration
from node.sharding.shard_state import ShardState

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices

ILLEGAL_OPERATION = 20
log = logging.getLogger("helogale.sharding")


def _config(node: NodeServices, name: str) -> ConfigServer:
    role = node.sharding
    if not isinstance(role, ConfigServer):
        raise MongoError(ILLEGAL_OPERATION, f"{name} can only be run on config servers",
                         code_name="IllegalOperation")
    node.member.require_writable()
    return role


def _shard(node: NodeServices, name: str) -> ShardRole:
    role = node.sharding
    if not isinstance(role, ShardRole):
        raise MongoError(ILLEGAL_OPERATION, f"{name} can only be run on a shard (a member "
                         "started with --shardsvr)", code_name="IllegalOperation")
    return role


def _ns(cmd: Mapping[str, Any], name: str) -> str:
    ns = cmd.get(name)
    if not isinstance(ns, str) or "." not in ns:
        raise MongoError(BAD_VALUE, f"{name} needs a namespace 'db.collection', got {ns!r}")
    return ns


def _bound(cmd: Mapping[str, Any], field: str) -> Any:
    if field not in cmd:
        raise MongoError(BAD_VALUE, f"missing '{field}'")
    return cmd[field]


class ShardRole:
    """A shard's moving parts: its state, the migration sides, the range deleter, and the
    recovery of a migration a previous primary left unfinished (checked every second)."""

    def __init__(self, state: ShardState, deleter: RangeDeleter,
                 is_primary: Callable[[], bool], interval_s: float = 1.0) -> None:
        self.state = state
        self.deleter = deleter
        self.destination = MigrationDestination(state)
        self.source: MigrationSource | None = None
        self.recovery = MigrationRecovery(
            state, lambda: self.source.id if self.source is not None else None, deleter)
        # Config servers unreachable or a step-down: the next round tries again.
        self._recovery_job = Periodic("migration-recovery", self.recovery.check, interval_s,
                                      log, allowed=is_primary, expected=(Exception,))

    def start(self) -> None:
        self.deleter.start()
        self._recovery_job.start()

    def close(self) -> None:
        self._recovery_job.stop()
        self.deleter.stop()
        self.state.close()

    def status_section(self) -> dict[str, Any]:
        """serverStatus ``sharding`` on a shard member."""
        out: dict[str, Any] = {"clusterRole": "shardsvr", "shardName": self.state.shard_name,
                               "rangeDeleterDocsDeleted": self.deleter.deleted}
        source = self.source
        if source is not None:
            out["migration"] = {"id": source.id, "ns": source.ns, "to": source.to_shard,
                                **source.progress}
        with contextlib.suppress(Exception):
            out["rangeDeletionsPending"] = len(self.deleter.pending())
        return out

    def metrics(self) -> Any:
        """Gauges for the metrics endpoint: migration running, range deletions queued."""
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily("helogale_migrations_running",
                                "chunk migrations this shard is donating now",
                                value=1 if self.source is not None else 0)
        yield GaugeMetricFamily("helogale_range_deletions_pending",
                                "ranges queued for deletion", value=len(self.deleter.pending()))


# --- config servers ----------------------------------------------------------------------------


def configsvr_add_shard(node: NodeServices, db: str, cmd: Mapping[str, Any],
                        ctx: RequestContext) -> dict[str, Any]:
    cfg = _config(node, "_configsvrAddShard")
    conn = get_str(cmd, "_configsvrAddShard", "_configsvrAddShard")
    return cfg.add_shard(conn, cmd.get("name"))


def configsvr_remove_shard(node: NodeServices, db: str, cmd: Mapping[str, Any],
                           ctx: RequestContext) -> dict[str, Any]:
    cfg = _config(node, "_configsvrRemoveShard")
    return cfg.remove_shard(get_str(cmd, "_configsvrRemoveShard", "_configsvrRemoveShard"))


def configsvr_create_database(node: NodeServices, db: str, cmd: Mapping[str, Any],
                              ctx: RequestContext) -> dict[str, Any]:
    cfg = _config(node, "_configsvrCreateDatabase")
    name = get_str(cmd, "_configsvrCreateDatabase", "_configsvrCreateDatabase")
    doc = cfg.database(name, create=True, partitioned=get_bool(cmd, "_configsvrCreateDatabase", "partitioned"))
    return {"database": doc}


def configsvr_shard_collection(node: NodeServices, db: str, cmd: Mapping[str, Any],
                               ctx: RequestContext) -> dict[str, Any]:
    cfg = _config(node, "_configsvrShardCollection")
    ns = _ns(cmd, "_configsvrShardCollection")
    key = cmd.get("key")
    if not isinstance(key, Mapping):
        raise MongoError(BAD_VALUE, "shardCollection needs a 'key' document")
    name = "_configsvrShardCollection"
    return cfg.shard_collection(ns, key, get_bool(cmd, name, "unique"),
                                int(cmd.get("numInitialChunks") or 1),
                                float(cmd.get("presplitWindowSecs") or PRESPLIT_WINDOW_S))


def configsvr_split_chunk(node: NodeServices, db: str, cmd: Mapping[str, Any],
                          ctx: RequestContext) -> dict[str, Any]:
    cfg = _config(node, "_configsvrSplitChunk")
    ns = _ns(cmd, "_configsvrSplitChunk")
    points = cmd.get("splitPoints")
    if not isinstance(points, list):
        raise MongoError(BAD_VALUE, "splitPoints must be an array")
    return cfg.split_chunk(ns, _bound(cmd, "min"), _bound(cmd, "max"), points)


def configsvr_commit_migration(node: NodeServices, db: str, cmd: Mapping[str, Any],
                               ctx: RequestContext) -> dict[str, Any]:
    name = "_configsvrCommitChunkMigration"
    cfg = _config(node, name)
    ns = _ns(cmd, name)
    return cfg.commit_migration(ns, _bound(cmd, "min"), _bound(cmd, "max"),
                                get_str(cmd, name, "fromShard"), get_str(cmd, name, "toShard"),
                                cmd.get("migrationId"))


def configsvr_register_migration(node: NodeServices, db: str, cmd: Mapping[str, Any],
                                 ctx: RequestContext) -> dict[str, Any]:
    name = "_configsvrRegisterMigration"
    cfg = _config(node, name)
    ns = _ns(cmd, name)
    return cfg.register_migration(_bound(cmd, "migrationId"), ns, _bound(cmd, "min"),
                                  _bound(cmd, "max"), get_str(cmd, name, "fromShard"),
                                  get_str(cmd, name, "toShard"))


def configsvr_migration_outcome(node: NodeServices, db: str, cmd: Mapping[str, Any],
                                ctx: RequestContext) -> dict[str, Any]:
    name = "_configsvrMigrationOutcome"
    cfg = _config(node, name)
    return {"state": cfg.migration_outcome(cmd.get(name), get_bool(cmd, name, "abort"))}


def configsvr_move_chunk(node: NodeServices, db: str, cmd: Mapping[str, Any],
                         ctx: RequestContext) -> dict[str, Any]:
    cfg = _config(node, "_configsvrMoveChunk")
    ns = _ns(cmd, "_configsvrMoveChunk")
    return cfg.move_chunk(ns, _bound(cmd, "min"), _bound(cmd, "max"),
                          get_str(cmd, "_configsvrMoveChunk", "toShard"), get_bool(cmd, "_configsvrMoveChunk", "waitForDelete"))


def configsvr_drop_collection(node: NodeServices, db: str, cmd: Mapping[str, Any],
                              ctx: RequestContext) -> dict[str, Any]:
    cfg = _config(node, "_configsvrDropCollection")
    return cfg.drop_collection(_ns(cmd, "_configsvrDropCollection"))


def configsvr_drop_database(node: NodeServices, db: str, cmd: Mapping[str, Any],
                            ctx: RequestContext) -> dict[str, Any]:
    cfg = _config(node, "_configsvrDropDatabase")
    return cfg.drop_database(get_str(cmd, "_configsvrDropDatabase", "_configsvrDropDatabase"))


def configsvr_balancer_start(node: NodeServices, db: str, cmd: Mapping[str, Any],
                             ctx: RequestContext) -> dict[str, Any]:
    return _config(node, "_configsvrBalancerStart").set_balancer(stopped=False)


def configsvr_balancer_stop(node: NodeServices, db: str, cmd: Mapping[str, Any],
                            ctx: RequestContext) -> dict[str, Any]:
    return _config(node, "_configsvrBalancerStop").set_balancer(stopped=True)


def configsvr_balancer_status(node: NodeServices, db: str, cmd: Mapping[str, Any],
                              ctx: RequestContext) -> dict[str, Any]:
    cfg = _config(node, "_configsvrBalancerStatus")
    if cfg.balancer is None:
        raise MongoError(ILLEGAL_OPERATION, "no balancer on this member",
                         code_name="IllegalOperation")
    return cfg.balancer.status()


def configsvr_merge_chunks(node: NodeServices, db: str, cmd: Mapping[str, Any],
                           ctx: RequestContext) -> dict[str, Any]:
    cfg = _config(node, "_configsvrMergeChunks")
    return cfg.merge_chunks(_ns(cmd, "_configsvrMergeChunks"), _bound(cmd, "min"),
                            _bound(cmd, "max"))


def configsvr_move_primary(node: NodeServices, db: str, cmd: Mapping[str, Any],
                           ctx: RequestContext) -> dict[str, Any]:
    name = "_configsvrMovePrimary"
    cfg = _config(node, name)
    return cfg.move_primary(get_str(cmd, name, name), get_str(cmd, name, "to"))


# --- shards ------------------------------------------------------------------------------------


def shardsvr_set_identity(node: NodeServices, db: str, cmd: Mapping[str, Any],
                          ctx: RequestContext) -> dict[str, Any]:
    role = _shard(node, "_shardsvrSetShardIdentity")
    node.member.require_writable()
    identity = {"shardName": get_str(cmd, "_shardsvrSetShardIdentity", "shardName"),
                "configsvrConnectionString": get_str(cmd, "_shardsvrSetShardIdentity", "configsvrConnectionString"),
                "clusterId": cmd.get("clusterId")}
    role.state.propose({"op": "shardIdentity", "identity": identity})
    return {}


def shardsvr_refresh(node: NodeServices, db: str, cmd: Mapping[str, Any],
                     ctx: RequestContext) -> dict[str, Any]:
    role = _shard(node, "_shardsvrRefresh")
    node.member.require_writable()
    role.state.refresh(_ns(cmd, "_shardsvrRefresh"))
    return {}


def get_shard_version(node: NodeServices, db: str, cmd: Mapping[str, Any],
                      ctx: RequestContext) -> dict[str, Any]:
    role = _shard(node, "getShardVersion")
    ns = _ns(cmd, "getShardVersion")
    current = role.state.ownership(ns)
    if current is None:
        return {"version": {"e": None, "v": None}, "sharded": False}
    out: dict[str, Any] = {"version": current.version.timestamp(),
                           "versionEpoch": current.epoch, "sharded": True,
                           "inCriticalSection": bool(current.critical)}
    if get_bool(cmd, "getShardVersion", "fullMetadata"):
        out["chunks"] = [[lo, hi] for lo, hi in current.chunks]
    return out


def shardsvr_chunk_sizes(node: NodeServices, db: str, cmd: Mapping[str, Any],
                        ctx: RequestContext) -> dict[str, Any]:
    """Documents and bytes of each chunk this shard owns of a collection (the balancer's)."""
    role = _shard(node, "_shardsvrChunkSizes")
    ns = _ns(cmd, "_shardsvrChunkSizes")
    with role.state.store.read() as txn:
        current = role.state.cache.get(txn, ns)
        return {"chunks": chunk_stats.chunk_sizes(txn, current) if current else []}


def shardsvr_split_vector(node: NodeServices, db: str, cmd: Mapping[str, Any],
                          ctx: RequestContext) -> dict[str, Any]:
    """``splitKeys`` cutting a chunk into halves of ``maxChunkBytes`` (or ``maxChunkDocs``);
    with ``top: true``, the chunk's highest ``_id`` (to split off an empty top chunk)."""
    name = "_shardsvrSplitVector"
    role = _shard(node, name)
    ns = _ns(cmd, name)
    lo, hi = _bound(cmd, "min"), _bound(cmd, "max")
    with role.state.store.read() as txn:
        if get_bool(cmd, name, "top"):
            found, top = chunk_stats.max_id(txn, ns, lo, hi)
            return {"splitKeys": [top] if found and compare(top, lo) > 0 else []}
        max_bytes = int(cmd.get("maxChunkBytes") or 0)
        if max_bytes <= 0:
            raise MongoError(BAD_VALUE, "maxChunkBytes must be positive")
        return {"splitKeys": chunk_stats.split_points(txn, ns, lo, hi, max_bytes,
                                                      int(cmd.get("maxChunkDocs") or 0))}


def shardsvr_move_range(node: NodeServices, db: str, cmd: Mapping[str, Any],
                        ctx: RequestContext) -> dict[str, Any]:
    role = _shard(node, "_shardsvrMoveRange")
    node.member.require_writable()
    source = MigrationSource(role.state, _ns(cmd, "_shardsvrMoveRange"), _bound(cmd, "min"),
                             _bound(cmd, "max"), get_str(cmd, "_shardsvrMoveRange", "toShard"),
                             get_str(cmd, "_shardsvrMoveRange", "toShardHost"),
                             wait_for_delete=get_bool(cmd, "_shardsvrMoveRange", "waitForDelete"),
                             deleter=role.deleter)
    role.source = source
    try:
        return source.run()
    finally:
        role.source = None


def recv_chunk_start(node: NodeServices, db: str, cmd: Mapping[str, Any],
                     ctx: RequestContext) -> dict[str, Any]:
    role = _shard(node, "_recvChunkStart")
    node.member.require_writable()
    return role.destination.start(cmd)


def recv_chunk_batch(node: NodeServices, db: str, cmd: Mapping[str, Any],
                     ctx: RequestContext) -> dict[str, Any]:
    role = _shard(node, "_recvChunkBatch")
    node.member.require_writable()
    return role.destination.batch(cmd)


def recv_chunk_commit(node: NodeServices, db: str, cmd: Mapping[str, Any],
                      ctx: RequestContext) -> dict[str, Any]:
    role = _shard(node, "_recvChunkCommit")
    node.member.require_writable()
    return role.destination.commit(cmd)


def recv_chunk_abort(node: NodeServices, db: str, cmd: Mapping[str, Any],
                     ctx: RequestContext) -> dict[str, Any]:
    role = _shard(node, "_recvChunkAbort")
    node.member.require_writable()
    return role.destination.abort(cmd)


def migration_status(node: NodeServices, db: str, cmd: Mapping[str, Any],
                     ctx: RequestContext) -> dict[str, Any]:
    """The migration this shard leads now, with its phase and counters, and queued range
    deletions (``_shardsvrMigrationStatus``)."""
    role = _shard(node, "_shardsvrMigrationStatus")
    source = role.source
    with role.state.store.read() as txn:
        record = read_migration(txn)
    out: dict[str, Any] = {"active": source is not None, "recorded": record is not None,
                           "rangeDeletions": Int64(len(role.deleter.pending()))}
    if record is not None:
        out["record"] = {k: record.get(k) for k in ("id", "ns", "role", "peer", "phase")}
    if source is not None:
        out.update({"ns": source.ns, "min": source.lo, "max": source.hi,
                    "toShard": source.to_shard, **source.progress})
    return out

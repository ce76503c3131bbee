"""A node's handler table: every command a replica-set member serves, one row each.

Adding a command means writing its handler in the family module and one row here. The router
has a table of its own (``router/commands/table.py``) served by the same
:class:`~node.commands.dispatcher.Dispatcher`.
"""

from __future__ import annotations

from node.commands import (
    admin,
    apply_ops,
    bulk_write,
    catalog,
    crud,
    explain,
    indexes,
    query,
    rename,
    sessions,
)
from node.commands.dispatcher import Command
from node.sharding import commands as sharding

_CRUD = {"write": True, "retryable_write": True}

NODE_COMMANDS: dict[str, Command] = {
    # crud
    "insert": Command(crud.insert, help="insert documents", **_CRUD),
    "update": Command(crud.update, help="update documents", **_CRUD),
    "delete": Command(crud.delete, help="delete documents", **_CRUD),
    "findAndModify": Command(crud.find_and_modify, help="modify one document, return it",
                             **_CRUD),
    "findandmodify": Command(crud.find_and_modify, help="modify one document, return it",
                             **_CRUD),
    "bulkWrite": Command(bulk_write.bulk_write, admin_only=True, retryable_write=True,
                         help="writes to several collections in one command (MongoDB 8)"),
    # query
    "find": Command(query.find, help="query a collection"),
    "getMore": Command(query.get_more, help="next batch of a cursor"),
    "killCursors": Command(query.kill_cursors, help="close cursors"),
    "count": Command(query.count, help="count matching documents"),
    "distinct": Command(query.distinct, help="distinct values of a field"),
    "aggregate": Command(query.aggregate, help="a small aggregation pipeline subset"),
    "explain": Command(explain.explain, help="how a find/count/distinct would run"),
    # indexes
    "createIndexes": Command(indexes.create_indexes, help="build indexes"),
    "dropIndexes": Command(indexes.drop_indexes, help="drop indexes"),
    "listIndexes": Command(indexes.list_indexes, help="list a collection's indexes"),
    # catalog
    "listCollections": Command(catalog.list_collections, help="list collections"),
    "listDatabases": Command(catalog.list_databases, admin_only=True, help="list databases"),
    "create": Command(catalog.create, help="create a collection"),
    "convertToCapped": Command(catalog.convert_to_capped, help="make a collection capped"),
    "drop": Command(catalog.drop, help="drop a collection"),
    "dropDatabase": Command(catalog.drop_database, help="drop the current database"),
    "collStats": Command(catalog.coll_stats, help="collection statistics"),
    "dbStats": Command(catalog.db_stats, help="database statistics"),
    "renameCollection": Command(rename.rename_collection_command, admin_only=True,
                                help="rename a collection"),
    # admin
    "hello": Command(admin.hello, help="topology handshake"),
    "isMaster": Command(admin.hello, help="legacy topology handshake"),
    "ismaster": Command(admin.hello, help="legacy topology handshake"),
    "ping": Command(admin.ping, help="liveness"),
    "buildInfo": Command(admin.build_info, help="server version"),
    "buildinfo": Command(admin.build_info, help="server version"),
    "getParameter": Command(admin.get_parameter, admin_only=True, help="server parameters"),
    "serverStatus": Command(admin.server_status, help="server status"),
    "endSessions": Command(sessions.end_sessions, help="end logical sessions"),
    "killSessions": Command(sessions.end_sessions, help="end logical sessions"),
    "getLastError": Command(admin.get_last_error, help="classic write acknowledgement"),
    "connectionStatus": Command(admin.connection_status, help="authentication info"),
    "listCommands": Command(admin.list_commands, help="the command table"),
    "replSetGetStatus": Command(admin.repl_set_get_status, admin_only=True,
                                help="replica set member states"),
    "replSetGetConfig": Command(admin.repl_set_get_config, admin_only=True,
                                help="replica set configuration"),
    "replSetStepDown": Command(admin.repl_set_step_down, admin_only=True,
                               help="primary steps down"),
    "replSetReconfig": Command(admin.repl_set_reconfig, admin_only=True,
                               help="change the replica set's members"),
    "configureFailPoint": Command(admin.configure_fail_point, admin_only=True,
                                  help="tests: stop a process at a named point"),
    "applyOps": Command(apply_ops.apply_ops, admin_only=True,
                        help="document writes as one entry, under preconditions"),
    # config servers (internal: routers and donors call them)
    "_configsvrAddShard": Command(sharding.configsvr_add_shard, admin_only=True),
    "_configsvrRemoveShard": Command(sharding.configsvr_remove_shard, admin_only=True),
    "_configsvrCreateDatabase": Command(sharding.configsvr_create_database, admin_only=True),
    "_configsvrShardCollection": Command(sharding.configsvr_shard_collection,
                                         admin_only=True),
    "_configsvrSplitChunk": Command(sharding.configsvr_split_chunk, admin_only=True),
    "_configsvrMoveChunk": Command(sharding.configsvr_move_chunk, admin_only=True),
    "_configsvrCommitChunkMigration": Command(sharding.configsvr_commit_migration,
                                              admin_only=True),
    "_configsvrRegisterMigration": Command(sharding.configsvr_register_migration,
                                           admin_only=True),
    "_configsvrMigrationOutcome": Command(sharding.configsvr_migration_outcome,
                                          admin_only=True),
    "_configsvrDropCollection": Command(sharding.configsvr_drop_collection, admin_only=True),
    "_configsvrBalancerStart": Command(sharding.configsvr_balancer_start, admin_only=True),
    "_configsvrBalancerStop": Command(sharding.configsvr_balancer_stop, admin_only=True),
    "_configsvrBalancerStatus": Command(sharding.configsvr_balancer_status, admin_only=True),
    "_configsvrMergeChunks": Command(sharding.configsvr_merge_chunks, admin_only=True),
    "_configsvrMovePrimary": Command(sharding.configsvr_move_primary, admin_only=True),
    "_configsvrDropDatabase": Command(sharding.configsvr_drop_database, admin_only=True),
    # shards (internal: config servers and donor shards call them)
    "_shardsvrSetShardIdentity": Command(sharding.shardsvr_set_identity, admin_only=True),
    "_shardsvrRefresh": Command(sharding.shardsvr_refresh, admin_only=True),
    "_shardsvrMoveRange": Command(sharding.shardsvr_move_range, admin_only=True),
    "_shardsvrChunkSizes": Command(sharding.shardsvr_chunk_sizes, admin_only=True),
    "_shardsvrSplitVector": Command(sharding.shardsvr_split_vector, admin_only=True),
    "_shardsvrMigrationStatus": Command(sharding.migration_status, admin_only=True),
    "_recvChunkStart": Command(sharding.recv_chunk_start, admin_only=True),
    "_recvChunkBatch": Command(sharding.recv_chunk_batch, admin_only=True),
    "_recvChunkCommit": Command(sharding.recv_chunk_commit, admin_only=True),
    "_recvChunkAbort": Command(sharding.recv_chunk_abort, admin_only=True),
    "getShardVersion": Command(sharding.get_shard_version, admin_only=True,
                               help="what this shard owns of a collection"),
}

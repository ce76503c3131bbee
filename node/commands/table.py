"""A node's handler table: every command a replica-set member serves, one row each.

Adding a command means writing its handler in the family module and one row here. The router
has a table of its own (``router/commands/table.py``) served by the same
:class:`~node.commands.dispatcher.Dispatcher`.
"""

from __future__ import annotations

from node.commands import (
    admin,
    apply_ops,
    catalog,
    crud,
    explain,
    indexes,
    query,
    rename,
    sessions,
)
from node.commands.dispatcher import Command
from node.security import users
from node.security.roles import AUTHENTICATED, INTERNAL, OPEN
from node.sharding import commands as sharding

_CRUD = {"write": True, "retryable_write": True}
_INTERNAL = {"admin_only": True, "action": INTERNAL}

NODE_COMMANDS: dict[str, Command] = {
    # crud
    "insert": Command(crud.insert, help="insert documents", **_CRUD, action="insert"),
    "update": Command(crud.update, help="update documents", **_CRUD, action="update"),
    "delete": Command(crud.delete, help="delete documents", **_CRUD, action="remove"),
    "findAndModify": Command(crud.find_and_modify, help="modify one document, return it",
                             **_CRUD, action=("find", "update")),
    "findandmodify": Command(crud.find_and_modify, help="modify one document, return it",
                             **_CRUD, action=("find", "update")),
    # query
    "find": Command(query.find, help="query a collection", action="find"),
    "getMore": Command(query.get_more, help="next batch of a cursor", action="find"),
    "killCursors": Command(query.kill_cursors, help="close cursors", action="killCursors"),
    "count": Command(query.count, help="count matching documents", action="find"),
    "distinct": Command(query.distinct, help="distinct values of a field", action="find"),
    "aggregate": Command(query.aggregate, help="a small aggregation pipeline subset",
                         action="find"),
    "explain": Command(explain.explain, help="how a find/count/distinct would run", action="find"),
    # indexes
    "createIndexes": Command(indexes.create_indexes, help="build indexes", action="createIndex"),
    "dropIndexes": Command(indexes.drop_indexes, help="drop indexes", action="dropIndex"),
    "listIndexes": Command(indexes.list_indexes, help="list a collection's indexes",
                           action="listIndexes"),
    # catalog
    "listCollections": Command(catalog.list_collections, help="list collections",
                               action="listCollections"),
    "listDatabases": Command(catalog.list_databases, admin_only=True, help="list databases",
                             action="listDatabases"),
    "create": Command(catalog.create, help="create a collection", action="createCollection"),
    "drop": Command(catalog.drop, help="drop a collection", action="dropCollection"),
    "dropDatabase": Command(catalog.drop_database, help="drop the current database",
                            action="dropDatabase"),
    "collStats": Command(catalog.coll_stats, help="collection statistics", action="collStats"),
    "dbStats": Command(catalog.db_stats, help="database statistics", action="dbStats"),
    "renameCollection": Command(rename.rename_collection_command, admin_only=True,
                                help="rename a collection", action="renameCollectionSameDB"),
    # admin
    "hello": Command(admin.hello, help="topology handshake", action=OPEN),
    "isMaster": Command(admin.hello, help="legacy topology handshake", action=OPEN),
    "ismaster": Command(admin.hello, help="legacy topology handshake", action=OPEN),
    "ping": Command(admin.ping, help="liveness", action=AUTHENTICATED),
    "buildInfo": Command(admin.build_info, help="server version", action=OPEN),
    "buildinfo": Command(admin.build_info, help="server version", action=OPEN),
    "getParameter": Command(admin.get_parameter, admin_only=True, help="server parameters",
                            action="getParameter"),
    "serverStatus": Command(admin.server_status, help="server status", action="serverStatus"),
    "endSessions": Command(sessions.end_sessions, help="end logical sessions",
                           action=AUTHENTICATED),
    "killSessions": Command(sessions.end_sessions, help="end logical sessions",
                            action=AUTHENTICATED),
    "getLastError": Command(admin.get_last_error, help="classic write acknowledgement",
                            action=AUTHENTICATED),
    "connectionStatus": Command(users.connection_status, help="authentication info", action=OPEN),
    "listCommands": Command(admin.list_commands, help="the command table", action=AUTHENTICATED),
    "replSetGetStatus": Command(admin.repl_set_get_status, admin_only=True,
                                help="replica set member states", action="replSetGetStatus"),
    "replSetGetConfig": Command(admin.repl_set_get_config, admin_only=True,
                                help="replica set configuration", action="replSetGetConfig"),
    "replSetStepDown": Command(admin.repl_set_step_down, admin_only=True,
                               help="primary steps down", action="replSetStateChange"),
    "replSetReconfig": Command(admin.repl_set_reconfig, admin_only=True,
                               help="change the replica set's members", action="replSetConfigure"),
    "configureFailPoint": Command(admin.configure_fail_point, admin_only=True,
                                  help="tests: stop a process at a named point",
                                  action="configureFailPoint"),
    "applyOps": Command(apply_ops.apply_ops, admin_only=True,
                        help="document writes as one entry, under preconditions",
                        action="applyOps"),
    # config servers (internal: routers and donors call them)
    "_configsvrAddShard": Command(sharding.configsvr_add_shard, **_INTERNAL),
    "_configsvrRemoveShard": Command(sharding.configsvr_remove_shard, **_INTERNAL),
    "_configsvrCreateDatabase": Command(sharding.configsvr_create_database, **_INTERNAL),
    "_configsvrShardCollection": Command(sharding.configsvr_shard_collection,
                                         **_INTERNAL),
    "_configsvrSplitChunk": Command(sharding.configsvr_split_chunk, **_INTERNAL),
    "_configsvrMoveChunk": Command(sharding.configsvr_move_chunk, **_INTERNAL),
    "_configsvrCommitChunkMigration": Command(sharding.configsvr_commit_migration,
                                              **_INTERNAL),
    "_configsvrRegisterMigration": Command(sharding.configsvr_register_migration,
                                           **_INTERNAL),
    "_configsvrMigrationOutcome": Command(sharding.configsvr_migration_outcome,
                                          **_INTERNAL),
    "_configsvrDropCollection": Command(sharding.configsvr_drop_collection, **_INTERNAL),
    "_configsvrBalancerStart": Command(sharding.configsvr_balancer_start, **_INTERNAL),
    "_configsvrBalancerStop": Command(sharding.configsvr_balancer_stop, **_INTERNAL),
    "_configsvrBalancerStatus": Command(sharding.configsvr_balancer_status, **_INTERNAL),
    "_configsvrMergeChunks": Command(sharding.configsvr_merge_chunks, **_INTERNAL),
    "_configsvrMovePrimary": Command(sharding.configsvr_move_primary, **_INTERNAL),
    "_configsvrDropDatabase": Command(sharding.configsvr_drop_database, **_INTERNAL),
    # shards (internal: config servers and donor shards call them)
    "_shardsvrSetShardIdentity": Command(sharding.shardsvr_set_identity, **_INTERNAL),
    "_shardsvrRefresh": Command(sharding.shardsvr_refresh, **_INTERNAL),
    "_shardsvrMoveRange": Command(sharding.shardsvr_move_range, **_INTERNAL),
    "_shardsvrChunkSizes": Command(sharding.shardsvr_chunk_sizes, **_INTERNAL),
    "_shardsvrSplitVector": Command(sharding.shardsvr_split_vector, **_INTERNAL),
    "_shardsvrMigrationStatus": Command(sharding.migration_status, **_INTERNAL),
    "_recvChunkStart": Command(sharding.recv_chunk_start, **_INTERNAL),
    "_recvChunkBatch": Command(sharding.recv_chunk_batch, **_INTERNAL),
    "_recvChunkCommit": Command(sharding.recv_chunk_commit, **_INTERNAL),
    "_recvChunkAbort": Command(sharding.recv_chunk_abort, **_INTERNAL),
    # users and authentication (node.security)
    "createUser": Command(users.create_user, help="add a user", action="createUser"),
    "updateUser": Command(users.update_user, help="change a user's password, roles or data",
                          action="updateUser"),
    "dropUser": Command(users.drop_user, help="remove a user", action="dropUser"),
    "usersInfo": Command(users.users_info, help="describe users", action="viewUser"),
    "grantRolesToUser": Command(users.grant_roles, help="give a user roles",
                                action="grantRole"),
    "revokeRolesFromUser": Command(users.revoke_roles, help="take roles from a user",
                                   action="revokeRole"),
    "saslStart": Command(users.sasl_start, help="begin a SCRAM-SHA-256 exchange", action=OPEN),
    "saslContinue": Command(users.sasl_continue, help="continue a SCRAM exchange",
                            action=OPEN),
    "logout": Command(users.logout, help="forget the connection's users", action=OPEN),
    "getShardVersion": Command(sharding.get_shard_version, admin_only=True,
                               help="what this shard owns of a collection",
                               action="getShardVersion"),
}

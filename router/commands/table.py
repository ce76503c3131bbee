"""The router's handler table: ``Dispatcher(RouterServices, ROUTER_COMMANDS)``.

Generic handlers that need nothing of a replica-set member (``ping``, ``buildInfo``,
``listCommands``, ``getMore`` and ``killCursors`` on the router's own cursors ...) are the
node's own; the rest target shards. Router writes block a worker thread while shards answer,
so none is marked ``write`` (a stream's reader must not run them); the CRUD writes are
``retryable_write`` (RetryableWriteError labels over the wire).
"""

from __future__ import annotations

from node.commands import admin as node_admin
from node.commands import bulk_write, operations
from node.commands import query as node_query
from node.commands.dispatcher import Command
from node.security import users
from node.security.roles import AUTHENTICATED, OPEN
from router.commands import admin, catalog, query, writes
from router.commands import users as users_cmd

_RETRYABLE = {"retryable_write": True}

ROUTER_COMMANDS: dict[str, Command] = {
    # crud
    "insert": Command(writes.insert, help="insert documents", **_RETRYABLE, action="insert"),
    "update": Command(writes.update, help="update documents", **_RETRYABLE, action="update"),
    "delete": Command(writes.delete, help="delete documents", **_RETRYABLE, action="remove"),
    "findAndModify": Command(writes.find_and_modify, help="modify one document, return it",
                             **_RETRYABLE, action=("find", "update")),
    "findandmodify": Command(writes.find_and_modify, help="modify one document, return it",
                             **_RETRYABLE, action=("find", "update")),
    "bulkWrite": Command(bulk_write.bulk_write, admin_only=True, retryable_write=True,
                         help="writes to several collections, each routed to its shards",
                         action=("insert", "update", "remove")),
    # query
    "find": Command(query.find, help="query a collection", action="find"),
    "getMore": Command(node_query.get_more, help="next batch of a cursor", action="find"),
    "killCursors": Command(node_query.kill_cursors, help="close cursors", action="killCursors"),
    "count": Command(query.count, help="count matching documents", action="find"),
    "distinct": Command(query.distinct, help="distinct values of a field", action="find"),
    "mapReduce": Command(node_query.map_reduce,
                         help="refused: use aggregate or the client's map_reduce",
                         action="find"),
    "aggregate": Command(query.aggregate, help="an aggregation pipeline over the shards",
                         action="find"),
    "explain": Command(query.explain, help="each shard's plan", action="find"),
    # catalog
    "create": Command(catalog.create, help="create a collection", action="createCollection"),
    "collMod": Command(catalog.coll_mod, help="change validation options on every shard",
                       action="collMod"),
    "convertToCapped": Command(catalog.convert_to_capped, help="make a collection capped",
                               action="convertToCapped"),
    "drop": Command(catalog.drop, help="drop a collection", action="dropCollection"),
    "dropDatabase": Command(catalog.drop_database, help="drop the current database",
                            action="dropDatabase"),
    "listCollections": Command(catalog.list_collections, help="list collections",
                               action="listCollections"),
    "listDatabases": Command(catalog.list_databases, admin_only=True, help="list databases",
                             action="listDatabases"),
    "createIndexes": Command(catalog.create_indexes, help="build indexes on every shard",
                             action="createIndex"),
    "dropIndexes": Command(catalog.drop_indexes, help="drop indexes on every shard",
                           action="dropIndex"),
    "listIndexes": Command(catalog.list_indexes, help="list a collection's indexes",
                           action="listIndexes"),
    "collStats": Command(catalog.coll_stats, help="collection statistics per shard",
                         action="collStats"),
    "dbStats": Command(catalog.db_stats, help="database statistics", action="dbStats"),
    "renameCollection": Command(catalog.rename_collection, admin_only=True,
                                help="rename an unsharded collection",
                                action="renameCollectionSameDB"),
    # handshake and server
    "hello": Command(admin.hello, help="topology handshake (isdbgrid)", action=OPEN),
    "isMaster": Command(admin.hello, help="legacy topology handshake", action=OPEN),
    "ismaster": Command(admin.hello, help="legacy topology handshake", action=OPEN),
    "ping": Command(node_admin.ping, help="liveness", action=AUTHENTICATED),
    "buildInfo": Command(node_admin.build_info, help="server version", action=OPEN),
    "buildinfo": Command(node_admin.build_info, help="server version", action=OPEN),
    "serverStatus": Command(admin.server_status, help="router status", action="serverStatus"),
    "currentOp": Command(admin.current_op, admin_only=True,
                         help="operations running on the router and the shard primaries",
                         action="inprog"),
    "killOp": Command(admin.kill_op, admin_only=True,
                      help="interrupt an operation (\"<shard>:<opid>\": on that shard)",
                      action="killop"),
    "top": Command(operations.top, admin_only=True, help="time spent per namespace",
                   action="top"),
    "getLastError": Command(node_admin.get_last_error, help="classic write acknowledgement",
                            action=AUTHENTICATED),
    "connectionStatus": Command(users.connection_status, help="authentication info", action=OPEN),
    "listCommands": Command(node_admin.list_commands, help="the command table",
                            action=AUTHENTICATED),
    "endSessions": Command(node_admin.ping, help="end logical sessions", action=AUTHENTICATED),
    "killSessions": Command(node_admin.ping, help="end logical sessions", action=AUTHENTICATED),
    # sharding administration
    "addShard": Command(admin.add_shard, admin_only=True, help="add a replica set as a shard",
                        action="shardingAdmin"),
    "removeShard": Command(admin.remove_shard, admin_only=True,
                           help="remove a shard that owns nothing", action="shardingAdmin"),
    "listShards": Command(admin.list_shards, admin_only=True, help="the cluster's shards",
                          action="shardingAdmin"),
    "enableSharding": Command(admin.enable_sharding, admin_only=True,
                              help="create a database for sharded collections",
                              action="shardingAdmin"),
    "shardCollection": Command(admin.shard_collection, admin_only=True,
                               help="shard a collection by _id", action="shardingAdmin"),
    "split": Command(admin.split, admin_only=True, help="split a chunk", action="shardingAdmin"),
    "moveChunk": Command(admin.move_chunk, admin_only=True, help="move a chunk to a shard",
                         action="shardingAdmin"),
    "flushRouterConfig": Command(admin.flush_router_config, admin_only=True,
                                 help="forget cached routing", action="shardingAdmin"),
    "balancerStart": Command(admin.balancer_start, admin_only=True, help="start balancing",
                             action="shardingAdmin"),
    "balancerStop": Command(admin.balancer_stop, admin_only=True, help="stop balancing",
                            action="shardingAdmin"),
    "balancerStatus": Command(admin.balancer_status, admin_only=True,
                              help="the balancer's mode, rounds and running migration",
                              action="shardingAdmin"),
    "mergeChunks": Command(admin.merge_chunks, admin_only=True,
                           help="merge adjacent chunks of one shard", action="shardingAdmin"),
    # users (kept on the config servers) and authentication (node.security)
    "createUser": Command(users_cmd.to_config, help="add a user", action="createUser"),
    "updateUser": Command(users_cmd.to_config, help="change a user", action="updateUser"),
    "dropUser": Command(users_cmd.to_config, help="remove a user", action="dropUser"),
    "usersInfo": Command(users_cmd.to_config, help="describe users", action="viewUser"),
    "grantRolesToUser": Command(users_cmd.to_config, help="give a user roles",
                                action="grantRole"),
    "revokeRolesFromUser": Command(users_cmd.to_config, help="take roles from a user",
                                   action="revokeRole"),
    "saslStart": Command(users.sasl_start, help="begin a SCRAM-SHA-256 exchange", action=OPEN),
    "saslContinue": Command(users.sasl_continue, help="continue a SCRAM exchange",
                            action=OPEN),
    "logout": Command(users.logout, help="forget the connection's users", action=OPEN),
    "movePrimary": Command(admin.move_primary, admin_only=True,
                           help="move a database's primary shard (no unsharded data)",
                           action="shardingAdmin"),
}

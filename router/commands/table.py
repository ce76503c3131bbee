"""The router's handler table: ``Dispatcher(RouterServices, ROUTER_COMMANDS)``.

Generic handlers that need nothing of a replica-set member (``ping``, ``buildInfo``,
``listCommands``, ``getMore`` and ``killCursors`` on the router's own cursors ...) are the
node's own; the rest target shards. Router writes block a worker thread while shards answer,
so none is marked ``write`` (a stream's reader must not run them); the CRUD writes are
``retryable_write`` (RetryableWriteError labels over the wire).
"""

from __future__ import annotations

from node.commands import admin as node_admin
from node.commands import bulk_write
from node.commands import query as node_query
from node.commands.dispatcher import Command
from router.commands import admin, catalog, query, writes

_RETRYABLE = {"retryable_write": True}

ROUTER_COMMANDS: dict[str, Command] = {
    # crud
    "insert": Command(writes.insert, help="insert documents", **_RETRYABLE),
    "update": Command(writes.update, help="update documents", **_RETRYABLE),
    "delete": Command(writes.delete, help="delete documents", **_RETRYABLE),
    "findAndModify": Command(writes.find_and_modify, help="modify one document, return it",
                             **_RETRYABLE),
    "findandmodify": Command(writes.find_and_modify, help="modify one document, return it",
                             **_RETRYABLE),
    "bulkWrite": Command(bulk_write.bulk_write, admin_only=True, retryable_write=True,
                         help="writes to several collections, each routed to its shards"),
    # query
    "find": Command(query.find, help="query a collection"),
    "getMore": Command(node_query.get_more, help="next batch of a cursor"),
    "killCursors": Command(node_query.kill_cursors, help="close cursors"),
    "count": Command(query.count, help="count matching documents"),
    "distinct": Command(query.distinct, help="distinct values of a field"),
    "aggregate": Command(query.aggregate, help="an aggregation pipeline over the shards"),
    "explain": Command(query.explain, help="each shard's plan"),
    # catalog
    "create": Command(catalog.create, help="create a collection"),
    "convertToCapped": Command(catalog.convert_to_capped, help="make a collection capped"),
    "drop": Command(catalog.drop, help="drop a collection"),
    "dropDatabase": Command(catalog.drop_database, help="drop the current database"),
    "listCollections": Command(catalog.list_collections, help="list collections"),
    "listDatabases": Command(catalog.list_databases, admin_only=True, help="list databases"),
    "createIndexes": Command(catalog.create_indexes, help="build indexes on every shard"),
    "dropIndexes": Command(catalog.drop_indexes, help="drop indexes on every shard"),
    "listIndexes": Command(catalog.list_indexes, help="list a collection's indexes"),
    "collStats": Command(catalog.coll_stats, help="collection statistics per shard"),
    "dbStats": Command(catalog.db_stats, help="database statistics"),
    "renameCollection": Command(catalog.rename_collection, admin_only=True,
                                help="rename an unsharded collection"),
    # handshake and server
    "hello": Command(admin.hello, help="topology handshake (isdbgrid)"),
    "isMaster": Command(admin.hello, help="legacy topology handshake"),
    "ismaster": Command(admin.hello, help="legacy topology handshake"),
    "ping": Command(node_admin.ping, help="liveness"),
    "buildInfo": Command(node_admin.build_info, help="server version"),
    "buildinfo": Command(node_admin.build_info, help="server version"),
    "serverStatus": Command(admin.server_status, help="router status"),
    "getLastError": Command(node_admin.get_last_error, help="classic write acknowledgement"),
    "connectionStatus": Command(node_admin.connection_status, help="authentication info"),
    "listCommands": Command(node_admin.list_commands, help="the command table"),
    "endSessions": Command(node_admin.ping, help="end logical sessions"),
    "killSessions": Command(node_admin.ping, help="end logical sessions"),
    # sharding administration
    "addShard": Command(admin.add_shard, admin_only=True, help="add a replica set as a shard"),
    "removeShard": Command(admin.remove_shard, admin_only=True,
                           help="remove a shard that owns nothing"),
    "listShards": Command(admin.list_shards, admin_only=True, help="the cluster's shards"),
    "enableSharding": Command(admin.enable_sharding, admin_only=True,
                              help="create a database for sharded collections"),
    "shardCollection": Command(admin.shard_collection, admin_only=True,
                               help="shard a collection by _id"),
    "split": Command(admin.split, admin_only=True, help="split a chunk"),
    "moveChunk": Command(admin.move_chunk, admin_only=True, help="move a chunk to a shard"),
    "flushRouterConfig": Command(admin.flush_router_config, admin_only=True,
                                 help="forget cached routing"),
    "balancerStart": Command(admin.balancer_start, admin_only=True, help="start balancing"),
    "balancerStop": Command(admin.balancer_stop, admin_only=True, help="stop balancing"),
    "balancerStatus": Command(admin.balancer_status, admin_only=True,
                              help="the balancer's mode, rounds and running migration"),
    "mergeChunks": Command(admin.merge_chunks, admin_only=True,
                           help="merge adjacent chunks of one shard"),
    "movePrimary": Command(admin.move_primary, admin_only=True,
                           help="move a database's primary shard (no unsharded data)"),
}

"""The router (``helogale-router``): a stateless mongos-like process in front of a sharded
cluster. It reads the metadata from the config servers, sends each operation where the data
lives, and merges the answers.

* :mod:`routing_table`: a collection's chunks and their owners, immutable, with a version;
* :mod:`targeting`: which ``_id`` ranges a filter can touch (pure);
* :mod:`catalog`: the targeter's cache of databases, collections and routing tables, and the
  ONLY code that refreshes them from the config servers;
* :mod:`shards`: running commands on shards with the version routed by, retrying by itself
  after StaleConfig (refresh) and shard failovers;
* :mod:`merge`: k-way merge of shard results in MongoDB's order; :mod:`cursors`: router
  cursors over shard cursors;
* :mod:`commands`: the router's handlers, served by the node's
  :class:`~node.commands.dispatcher.Dispatcher` (same error model, BSON entry point, cursors);
* :mod:`app`: the process (gRPC command service and MongoDB wire protocol).
"""

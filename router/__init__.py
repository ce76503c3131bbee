"""Helogale router (mongos-like): will route commands over replica-set shards.

Collections will be sharded by ``_id`` ObjectId ranges (chunks); a config replica set will
hold the chunk map, and the router will split and migrate chunks. Nothing lives here yet.
"""

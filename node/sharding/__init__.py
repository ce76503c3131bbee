"""Sharding on the storage node: the config-server and shard roles of a replica set.

A config server (``helogale-node --configsvr``) keeps the cluster's metadata as ordinary
documents in its ``config`` database and changes them only through ``applyOps`` entries with
preconditions (one entry per metadata change, checked where it applies). A shard
(``--shardsvr``) keeps what it owns of each sharded collection (:mod:`ownership`) as
replicated data, checks the routing version a router sends on arrival and again where the
entry applies, filters documents it holds but does not own out of every read and multi-write,
and moves chunks with its peers (:mod:`migration`). The router (``router/``) reads the same
metadata from the config servers and sends each operation where the data lives.

Shared, pure pieces: :mod:`chunks` (ranges of ``_id`` in record-key space, versions).
"""

"""Helogale storage node.

``node.engine`` is the document engine: BSON values and their order, the query matcher, the
update language, projection and sort, and the collections that apply them over a storage
backend. The replica-set server (Raft-replicated command dispatcher, gRPC and MongoDB
wire-protocol transports) lives beside it in this package.
"""

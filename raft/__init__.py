"""Raft consensus library (elections, log replication, snapshots, membership).

Nothing lives here yet; the pure state machine, durable log and gRPC transport arrive with the
raft issue.
"""

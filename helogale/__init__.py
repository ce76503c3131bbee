"""Helogale client library: a pymongo-style API over gRPC (``helogale://`` URIs).

It will discover the primary or routers, reconnect and retry on failover without applying a
write twice. Nothing lives here yet but the command-line entry point.
"""

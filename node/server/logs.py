"""Structured logging for member processes: one JSON object per line on stderr.

Each line carries MongoDB's log fields beside our own: ``s`` the severity (F, E, W, I, D1),
``c`` the component (COMMAND, REPL, ELECTION, SHARDING, STORAGE, NETWORK, ...; from the
logger's name unless the record's fields name one), ``ctx`` the thread, and the ids a record
gives in its fields (``term``, ``migrationId``, ``opid``, ``lsid``, ...)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

SEVERITY = {logging.CRITICAL: "F", logging.ERROR: "E", logging.WARNING: "W",
            logging.INFO: "I", logging.DEBUG: "D1"}
COMPONENTS = (
    ("helogale.command", "COMMAND"), ("helogale.cursors", "QUERY"),
    ("helogale.sessions", "CONTROL"), ("helogale.node", "CONTROL"), ("helogale.ttl", "INDEX"),
    ("helogale.replica", "REPL"), ("helogale.statemachine", "REPL"),
    ("raft.node", "ELECTION"), ("raft", "REPL"),
    ("helogale.migration", "SHARDING"), ("helogale.sharding", "SHARDING"),
    ("helogale.balancer", "SHARDING"), ("helogale.router", "SHARDING"),
    ("helogale.store", "STORAGE"), ("helogale.wire", "NETWORK"), ("helogale.grpc", "NETWORK"),
    ("grpc", "NETWORK"), ("helogale.metrics", "FTDC"), ("helogale.progress", "PROGRESS"),
)
"""Logger name prefix -> MongoDB log component (first match wins)."""


def component(logger: str) -> str:
    for prefix, name in COMPONENTS:
        if logger == prefix or logger.startswith(prefix + "."):
            return name
    return "-"


class JsonFormatter(logging.Formatter):
    """``{"ts", "s", "c", "ctx", "level", "logger", "msg", "member", ...extra}`` per record."""

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "s": SEVERITY.get(record.levelno, "I"),
            "c": component(record.name),
            "ctx": record.threadName,
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(self.static)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(level: str, **static: Any) -> None:
    """Route every logger to stderr as JSON lines at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(static))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    logging.getLogger("grpc").setLevel(logging.WARNING)

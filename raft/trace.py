"""Opt-in timestamps of one write's hops across threads and processes (the Raft driver and
transport only; the core stays pure).

With ``HELOGALE_RAFT_TRACE=DIR`` in the environment, :func:`mark` appends one line
``<monotonic ns> <member id> <event> <log index>`` to ``DIR/trace-<pid>.txt`` (line-buffered,
so a SIGKILLed process keeps what it marked). ``CLOCK_MONOTONIC`` is system-wide on Linux, so
the lines of every process on one machine share one time line; ``python -m bench trace``
lines them up by log index and prints, hop by hop, where a write's time goes. Without the
variable :data:`ENABLED` is False and every call site skips the work behind one module-level
bool check.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import IO

from raft.types import Message, MessageType

__all__ = ["ENABLED", "mark", "mark_messages", "message_index"]

_DIR = os.environ.get("HELOGALE_RAFT_TRACE", "")
ENABLED = bool(_DIR)
_lock = threading.Lock()
_out: IO[str] | None = None


def mark(node: int, event: str, index: int, at: int | None = None) -> None:
    """Record that ``event`` happened now (or at monotonic ns ``at``) on member ``node`` for
    the entry at ``index``."""
    global _out
    now = time.monotonic_ns() if at is None else at
    with _lock:
        if _out is None:
            os.makedirs(_DIR, exist_ok=True)
            _out = open(os.path.join(_DIR, f"trace-{os.getpid()}.txt"), "a",  # noqa: SIM115
                        buffering=1)
        _out.write(f"{now} {node} {event} {index}\n")


def message_index(m: Message) -> int | None:
    """The log index a message carries for the trace: an append's last entry, an accepted
    append's acknowledged index; None for every other message."""
    if m.type == MessageType.APPEND and m.entries:
        return m.entries[-1].index
    if m.type == MessageType.APPEND_RESP and not m.reject:
        return m.index
    return None


def mark_messages(node: int, event: str, msgs: Iterable[Message]) -> None:
    """``mark`` every append (``event>to``) or acknowledgement among ``msgs``; ``event`` ends
    with the peer: ``>`` + receiver when ``node`` sends, ``<`` + sender when it receives."""
    for m in msgs:
        index = message_index(m)
        if index is not None:
            peer = m.to if m.frm == node else m.frm
            kind = "app" if m.type == MessageType.APPEND else "ack"
            mark(node, f"{event}.{kind}:{peer}", index)

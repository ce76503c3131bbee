"""``errorLabels`` on wire-protocol replies, as MongoDB 4.4+ servers add them.

Drivers that see ``maxWireVersion >= 9`` no longer decide themselves which server errors make a
write safe to retry: they retry a retryable write (one carrying ``lsid`` and ``txnNumber``) once
when the reply carries the ``RetryableWriteError`` label. The server adds it when the command
was such a write and it failed with a "the primary changed or went away" code, at the top level
or in ``writeConcernError``. Retrying is then safe because the state machine deduplicates on
(``lsid``, ``txnNumber``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RETRYABLE_WRITE_ERROR = "RetryableWriteError"

RETRYABLE_CODES: frozenset[int] = frozenset({
    6,      # HostUnreachable
    7,      # HostNotFound
    89,     # NetworkTimeout
    91,     # ShutdownInProgress
    189,    # PrimarySteppedDown
    262,    # ExceededTimeLimit
    9001,   # SocketException
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13435,  # NotPrimaryNoSecondaryOk
    13436,  # NotPrimaryOrSecondary
})

def _code(doc: Any) -> int | None:
    if not isinstance(doc, Mapping):
        return None
    code = doc.get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def add_error_labels(retryable_write: bool, reply: dict[str, Any]) -> dict[str, Any]:
    """``reply`` with ``RetryableWriteError`` in ``errorLabels`` where a retry is safe:
    ``retryable_write`` says the command was such a write (the dispatcher's
    :meth:`~node.commands.dispatcher.Dispatcher.is_retryable_write`, from its table)."""
    if not retryable_write:
        return reply
    failed = reply.get("ok") != 1.0 and _code(reply) in RETRYABLE_CODES
    wce = _code(reply.get("writeConcernError")) in RETRYABLE_CODES
    if failed or wce:
        labels = list(reply.get("errorLabels") or [])
        if RETRYABLE_WRITE_ERROR not in labels:
            labels.append(RETRYABLE_WRITE_ERROR)
        reply["errorLabels"] = labels
    return reply

"""The client's exception hierarchy (pymongo's names) and the mapping from server replies to it.

Every failure the client reports is a :class:`PyMongoError`. Server replies with ``ok: 0`` become
:class:`OperationFailure` (or a subclass chosen by ``code``); write replies carrying
``writeErrors`` / ``writeConcernError`` become :class:`WriteError` / :class:`WriteConcernError`;
transport failures become :class:`AutoReconnect`. :func:`is_retryable` is the one place that says
which errors the retry policy may retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# "not primary / shutting down / interrupted by step-down": retry on the (new) primary.
NOT_PRIMARY_CODES: frozenset[int] = frozenset({10107, 13435, 13436, 11600, 11602, 189, 91})
# Other codes MongoDB's retryable-writes/reads specifications retry.
RETRYABLE_CODES: frozenset[int] = NOT_PRIMARY_CODES | frozenset({6, 7, 89, 262, 9001})
DUPLICATE_KEY_CODES: frozenset[int] = frozenset({11000, 11001, 12582})
CURSOR_NOT_FOUND = 43
EXCEEDED_TIME_LIMIT = 50
DOCUMENT_TOO_LARGE = 10334


class PyMongoError(Exception):
    """Base of every error the client raises."""

    def __init__(self, message: str = "", error_labels: list[str] | None = None) -> None:
        super().__init__(message)
        self._message = message
        self._error_labels = set(error_labels or ())

    def has_error_label(self, label: str) -> bool:
        return label in self._error_labels

    @property
    def code(self) -> int | None:
        return None

    @property
    def details(self) -> Mapping[str, Any] | None:
        return None


class ProtocolError(PyMongoError):
    """The server sent something the client cannot understand."""


class ConfigurationError(PyMongoError):
    """A bad option, URI or argument given to the client."""


class InvalidURI(ConfigurationError):
    """A URI that cannot be parsed (or a ``mongodb://`` URI given to Helogale's client)."""


class ConnectionFailure(PyMongoError):
    """The client could not reach a server."""


class AutoReconnect(ConnectionFailure):
    """A server was lost (network error or it stopped being primary); the operation may be retried."""

    def __init__(
        self,
        message: str = "",
        errors: Mapping[str, Any] | None = None,
        address: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.errors = dict(errors) if errors else {}
        self.address = address

    @property
    def details(self) -> Mapping[str, Any] | None:
        return self.errors or None


class NetworkTimeout(AutoReconnect):
    """A request to a server timed out."""


class NotPrimaryError(AutoReconnect):
    """The server answered NotWritablePrimary (or is shutting down / stepping down)."""

    def __init__(self, message: str, details: Mapping[str, Any], address: tuple[str, int] | None = None):
        super().__init__(message, details, address)

    @property
    def code(self) -> int | None:
        value = self.errors.get("code")
        return int(value) if value is not None else None


class ServerSelectionTimeoutError(AutoReconnect):
    """No server matching the read preference (e.g. no primary) appeared in time."""


class InvalidOperation(PyMongoError):
    """An operation the client cannot perform in the current state (e.g. a closed client)."""


class InvalidName(PyMongoError):
    """A bad database or collection name."""


class DocumentTooLarge(PyMongoError):
    """A document (or command) exceeds the maximum BSON size."""


class InvalidDocument(PyMongoError):
    """A document the client cannot encode as BSON (nested too deeply for the encoder)."""


class OperationFailure(PyMongoError):
    """The server answered ``ok: 0`` (or a write reported an error)."""

    def __init__(
        self,
        error: str,
        code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        labels = list(details.get("errorLabels", ())) if details else []
        super().__init__(error, labels)
        self._code = code
        self._details = dict(details) if details is not None else None

    @property
    def code(self) -> int | None:
        return self._code

    @property
    def details(self) -> Mapping[str, Any] | None:
        return self._details

    def __str__(self) -> str:
        text = super().__str__()
        if self._details is not None:
            return f"{text}, full error: {self._details}"
        return text


class CursorNotFound(OperationFailure):
    """The server no longer knows the cursor (it was killed or timed out)."""


class ExecutionTimeout(OperationFailure):
    """The operation exceeded its ``maxTimeMS``."""


class WriteError(OperationFailure):
    """A write was rejected (one entry of ``writeErrors``)."""


class DuplicateKeyError(WriteError):
    """A write would have violated a unique index."""


class WriteConcernError(OperationFailure):
    """The write happened on the primary but its write concern was not satisfied."""


class BulkWriteError(OperationFailure):
    """A bulk write (or ``insert_many``) had write errors; ``details`` is the bulk result."""

    def __init__(self, results: Mapping[str, Any]) -> None:
        super().__init__("batch op errors occurred", 65, results)


def _message(reply: Mapping[str, Any]) -> str:
    return str(reply.get("errmsg") or reply.get("$err") or "command failed")


def error_for_reply(
    reply: Mapping[str, Any], address: tuple[str, int] | None = None
) -> PyMongoError:
    """The exception for an ``ok: 0`` command reply, chosen by its ``code``."""
    code = reply.get("code")
    code = int(code) if code is not None else None
    message = _message(reply)
    if code in NOT_PRIMARY_CODES:
        return NotPrimaryError(message, reply, address)
    if code in DUPLICATE_KEY_CODES:
        return DuplicateKeyError(message, code, reply)
    if code == CURSOR_NOT_FOUND:
        return CursorNotFound(message, code, reply)
    if code == EXCEEDED_TIME_LIMIT:
        return ExecutionTimeout(message, code, reply)
    if code == DOCUMENT_TOO_LARGE:
        return DocumentTooLarge(message)
    return OperationFailure(message, code, reply)


def check_reply(
    reply: Mapping[str, Any],
    address: tuple[str, int] | None = None,
    allowable_errors: tuple[str | int, ...] = (),
) -> None:
    """Raise the mapped error when ``reply`` says ``ok: 0``, unless its code/message is allowed."""
    if reply.get("ok", 0):
        return
    if reply.get("code") in allowable_errors or reply.get("errmsg") in allowable_errors:
        return
    raise error_for_reply(reply, address)


def write_error_for(error: Mapping[str, Any]) -> WriteError:
    """The exception for one ``writeErrors`` entry of a single-statement write."""
    code = error.get("code")
    code = int(code) if code is not None else None
    message = _message(error)
    if code in DUPLICATE_KEY_CODES:
        return DuplicateKeyError(message, code, error)
    return WriteError(message, code, error)


def write_concern_error_for(wce: Mapping[str, Any]) -> PyMongoError:
    """The exception for a ``writeConcernError`` (not-primary codes become :class:`NotPrimaryError`)."""
    code = wce.get("code")
    code = int(code) if code is not None else None
    message = _message(wce)
    if code in NOT_PRIMARY_CODES:
        return NotPrimaryError(message, wce)
    return WriteConcernError(message, code, wce)


def check_write_reply(reply: Mapping[str, Any], address: tuple[str, int] | None = None) -> None:
    """Raise for a single-statement write reply: ``ok: 0``, a write error or a write concern error."""
    check_reply(reply, address)
    errors = reply.get("writeErrors")
    if errors:
        raise write_error_for(errors[-1])
    wce = reply.get("writeConcernError")
    if wce:
        raise write_concern_error_for(wce)


def is_retryable(error: BaseException) -> bool:
    """Whether the retry policy may run the operation again on a freshly selected server.

    Not after a request timed out (``socketTimeoutMS``): the server may still be running it,
    and the caller's bound on the wait would be exceeded."""
    if isinstance(error, NetworkTimeout):
        return False
    if isinstance(error, AutoReconnect):
        return True
    if isinstance(error, WriteConcernError) and error.code in RETRYABLE_CODES:
        return True
    return bool(
        isinstance(error, OperationFailure)
        and not isinstance(error, WriteError)
        and error.code in RETRYABLE_CODES
    )


def is_not_primary(error: BaseException) -> bool:
    """Whether ``error`` means the server we used is no longer (or not) the primary."""
    return isinstance(error, NotPrimaryError) or (
        isinstance(error, OperationFailure) and error.code in NOT_PRIMARY_CODES
    )

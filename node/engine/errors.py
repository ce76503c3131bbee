"""MongoDB-style errors: :class:`MongoError` and one constructor per error code the engine uses.

Every error a user can cause (a malformed query, a bad update, a duplicate key, ...) is raised as
a :class:`MongoError` carrying MongoDB's numeric ``code``, its ``codeName`` and MongoDB's message,
so that the command layer can turn it into the reply MongoDB would send (:meth:`to_reply`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# --- numeric codes (MongoDB's src/mongo/base/error_codes.yml) ---------------------------------
INTERNAL_ERROR = 1
BAD_VALUE = 2
NO_SUCH_KEY = 4
HOST_UNREACHABLE = 6
UNKNOWN_ERROR = 8
FAILED_TO_PARSE = 9
USER_NOT_FOUND = 11
UNAUTHORIZED = 13
TYPE_MISMATCH = 14
AUTHENTICATION_FAILED = 18
ILLEGAL_OPERATION = 20
NAMESPACE_NOT_FOUND = 26
INDEX_NOT_FOUND = 27
PATH_NOT_VIABLE = 28
ROLE_NOT_FOUND = 31
CONFLICTING_UPDATE_OPERATORS = 40
CURSOR_NOT_FOUND = 43
NAMESPACE_EXISTS = 48
DOLLAR_PREFIXED_FIELD_NAME = 52
INVALID_ID_FIELD = 53
NOT_SINGLE_VALUE_FIELD = 54
EMPTY_FIELD_NAME = 56
DOTTED_FIELD_NAME = 57
COMMAND_NOT_FOUND = 59
IMMUTABLE_FIELD = 66
CANNOT_CREATE_INDEX = 67
INVALID_OPTIONS = 72
INVALID_NAMESPACE = 73
INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86
OPERATION_FAILED = 96
NOT_EXACT_VALUE_FIELD = 111
WRITE_CONFLICT = 112
DOCUMENT_VALIDATION_FAILURE = 121
COMMAND_NOT_SUPPORTED = 115
INVALID_PIPELINE_OPERATOR = 168
SNAPSHOT_TOO_OLD = 239
CONVERSION_FAILURE = 241
QUERY_EXCEEDED_MEMORY_LIMIT_NO_DISK_USE_ALLOWED = 292
MERGE_STAGE_NO_MATCHING_DOCUMENT = 13113
CAPPED_POSITION_LOST = 136
QUERY_PLAN_KILLED = 175
INVALID_INDEX_SPECIFICATION_OPTION = 197
MECHANISM_UNAVAILABLE = 334
USER_ALREADY_EXISTS = 51003
NOT_WRITABLE_PRIMARY = 10107
BSON_OBJECT_TOO_LARGE = 10334
DUPLICATE_KEY = 11000
NOT_PRIMARY_NO_SECONDARY_OK = 13435

CODE_NAMES: dict[int, str] = {
    INTERNAL_ERROR: "InternalError",
    BAD_VALUE: "BadValue",
    NO_SUCH_KEY: "NoSuchKey",
    HOST_UNREACHABLE: "HostUnreachable",
    UNKNOWN_ERROR: "UnknownError",
    FAILED_TO_PARSE: "FailedToParse",
    USER_NOT_FOUND: "UserNotFound",
    UNAUTHORIZED: "Unauthorized",
    TYPE_MISMATCH: "TypeMismatch",
    AUTHENTICATION_FAILED: "AuthenticationFailed",
    ILLEGAL_OPERATION: "IllegalOperation",
    NAMESPACE_NOT_FOUND: "NamespaceNotFound",
    INDEX_NOT_FOUND: "IndexNotFound",
    PATH_NOT_VIABLE: "PathNotViable",
    ROLE_NOT_FOUND: "RoleNotFound",
    CONFLICTING_UPDATE_OPERATORS: "ConflictingUpdateOperators",
    CURSOR_NOT_FOUND: "CursorNotFound",
    CAPPED_POSITION_LOST: "CappedPositionLost",
    QUERY_PLAN_KILLED: "QueryPlanKilled",
    INVALID_INDEX_SPECIFICATION_OPTION: "InvalidIndexSpecificationOption",
    NAMESPACE_EXISTS: "NamespaceExists",
    DOLLAR_PREFIXED_FIELD_NAME: "DollarPrefixedFieldName",
    INVALID_ID_FIELD: "InvalidIdField",
    NOT_SINGLE_VALUE_FIELD: "NotSingleValueField",
    EMPTY_FIELD_NAME: "EmptyFieldName",
    DOTTED_FIELD_NAME: "DottedFieldName",
    COMMAND_NOT_FOUND: "CommandNotFound",
    IMMUTABLE_FIELD: "ImmutableField",
    CANNOT_CREATE_INDEX: "CannotCreateIndex",
    INVALID_OPTIONS: "InvalidOptions",
    INVALID_NAMESPACE: "InvalidNamespace",
    INDEX_OPTIONS_CONFLICT: "IndexOptionsConflict",
    INDEX_KEY_SPECS_CONFLICT: "IndexKeySpecsConflict",
    OPERATION_FAILED: "OperationFailed",
    NOT_EXACT_VALUE_FIELD: "NotExactValueField",
    WRITE_CONFLICT: "WriteConflict",
    DOCUMENT_VALIDATION_FAILURE: "DocumentValidationFailure",
    MECHANISM_UNAVAILABLE: "MechanismUnavailable",
    COMMAND_NOT_SUPPORTED: "CommandNotSupported",
    INVALID_PIPELINE_OPERATOR: "InvalidPipelineOperator",
    SNAPSHOT_TOO_OLD: "SnapshotTooOld",
    CONVERSION_FAILURE: "ConversionFailure",
    QUERY_EXCEEDED_MEMORY_LIMIT_NO_DISK_USE_ALLOWED: "QueryExceededMemoryLimitNoDiskUseAllowed",
    MERGE_STAGE_NO_MATCHING_DOCUMENT: "MergeStageNoMatchingDocument",
    NOT_WRITABLE_PRIMARY: "NotWritablePrimary",
    BSON_OBJECT_TOO_LARGE: "BSONObjectTooLarge",
    DUPLICATE_KEY: "DuplicateKey",
    NOT_PRIMARY_NO_SECONDARY_OK: "NotPrimaryNoSecondaryOk",
}


def code_name_for(code: int) -> str:
    """MongoDB's ``codeName`` for ``code``; ``Location<code>`` for codes without a name."""
    return CODE_NAMES.get(code, f"Location{code}")


class MongoError(Exception):
    """An error with MongoDB's numeric code, code name and message."""

    def __init__(
        self,
        code: int,
        errmsg: str,
        *,
        code_name: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(errmsg)
        self.code: int = code
        self.code_name: str = code_name if code_name is not None else code_name_for(code)
        self.errmsg: str = errmsg
        self.details: dict[str, Any] | None = dict(details) if details is not None else None

    def to_reply(self) -> dict[str, Any]:
        """The command reply MongoDB sends for this error (extra ``details`` merged in)."""
        reply: dict[str, Any] = {
            "ok": 0.0,
            "errmsg": self.errmsg,
            "code": self.code,
            "codeName": self.code_name,
        }
        if self.details:
            for key, value in self.details.items():
                reply.setdefault(key, value)
        return reply

    def __repr__(self) -> str:
        return f"MongoError({self.code}, {self.errmsg!r}, code_name={self.code_name!r})"

    def __str__(self) -> str:
        return f"{self.errmsg} (code {self.code} {self.code_name})"


# --- one constructor per code -------------------------------------------------------------------


def bad_value(errmsg: str) -> MongoError:
    """Code 2 BadValue: a malformed query, projection, sort or option value."""
    return MongoError(BAD_VALUE, errmsg)


def failed_to_parse(errmsg: str) -> MongoError:
    """Code 9 FailedToParse: a document or command that cannot be parsed."""
    return MongoError(FAILED_TO_PARSE, errmsg)


def type_mismatch(errmsg: str) -> MongoError:
    """Code 14 TypeMismatch: an operation on a value of the wrong type (``$inc`` on a string)."""
    return MongoError(TYPE_MISMATCH, errmsg)


def illegal_operation(errmsg: str) -> MongoError:
    """Code 20 IllegalOperation."""
    return MongoError(ILLEGAL_OPERATION, errmsg)


def namespace_not_found(errmsg: str = "ns not found") -> MongoError:
    """Code 26 NamespaceNotFound."""
    return MongoError(NAMESPACE_NOT_FOUND, errmsg)


def index_not_found(errmsg: str) -> MongoError:
    """Code 27 IndexNotFound."""
    return MongoError(INDEX_NOT_FOUND, errmsg)


def path_not_viable(errmsg: str) -> MongoError:
    """Code 28 PathNotViable: an update path runs through a non-document value."""
    return MongoError(PATH_NOT_VIABLE, errmsg)


def conflicting_update_operators(errmsg: str) -> MongoError:
    """Code 40 ConflictingUpdateOperators: two update paths overlap."""
    return MongoError(CONFLICTING_UPDATE_OPERATORS, errmsg)


def namespace_exists(errmsg: str) -> MongoError:
    """Code 48 NamespaceExists."""
    return MongoError(NAMESPACE_EXISTS, errmsg)


def dollar_prefixed_field_name(errmsg: str) -> MongoError:
    """Code 52 DollarPrefixedFieldName."""
    return MongoError(DOLLAR_PREFIXED_FIELD_NAME, errmsg)


def invalid_id_field(errmsg: str) -> MongoError:
    """Code 53 InvalidIdField."""
    return MongoError(INVALID_ID_FIELD, errmsg)


def empty_field_name(errmsg: str) -> MongoError:
    """Code 56 EmptyFieldName."""
    return MongoError(EMPTY_FIELD_NAME, errmsg)


def dotted_field_name(errmsg: str) -> MongoError:
    """Code 57 DottedFieldName."""
    return MongoError(DOTTED_FIELD_NAME, errmsg)


def command_not_found(name: str) -> MongoError:
    """Code 59 CommandNotFound, with MongoDB's message."""
    return MongoError(COMMAND_NOT_FOUND, f"no such command: '{name}'")


def immutable_field(errmsg: str) -> MongoError:
    """Code 66 ImmutableField: an update would change ``_id``."""
    return MongoError(IMMUTABLE_FIELD, errmsg)


def cannot_create_index(errmsg: str) -> MongoError:
    """Code 67 CannotCreateIndex."""
    return MongoError(CANNOT_CREATE_INDEX, errmsg)


def invalid_options(errmsg: str) -> MongoError:
    """Code 72 InvalidOptions."""
    return MongoError(INVALID_OPTIONS, errmsg)


def invalid_namespace(errmsg: str) -> MongoError:
    """Code 73 InvalidNamespace."""
    return MongoError(INVALID_NAMESPACE, errmsg)


def operation_failed(errmsg: str) -> MongoError:
    """Code 96 OperationFailed."""
    return MongoError(OPERATION_FAILED, errmsg)


def not_writable_primary(errmsg: str = "not primary") -> MongoError:
    """Code 10107 NotWritablePrimary: a write reached a node that is not the primary."""
    return MongoError(NOT_WRITABLE_PRIMARY, errmsg)


def bson_object_too_large(errmsg: str) -> MongoError:
    """Code 10334 BSONObjectTooLarge: a document over the 16 MiB limit."""
    return MongoError(BSON_OBJECT_TOO_LARGE, errmsg)


def duplicate_key(
    errmsg: str,
    *,
    key_pattern: Mapping[str, Any] | None = None,
    key_value: Mapping[str, Any] | None = None,
) -> MongoError:
    """Code 11000 DuplicateKey; ``keyPattern``/``keyValue`` go in the reply like MongoDB's."""
    details: dict[str, Any] = {}
    if key_pattern is not None:
        details["keyPattern"] = dict(key_pattern)
    if key_value is not None:
        details["keyValue"] = dict(key_value)
    return MongoError(DUPLICATE_KEY, errmsg, details=details or None)


def location(code: int, errmsg: str) -> MongoError:
    """A numbered assertion (MongoDB's ``Location<code>`` errors, e.g. 16837, 31253)."""
    return MongoError(code, errmsg)

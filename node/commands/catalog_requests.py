"""Field tables of the catalog and admin commands (MongoDB 8's IDL), and the index specs of
``createIndexes``.

:data:`COMMAND_FIELDS` holds one table per strict command: the dispatcher checks a command of
the table with :func:`~node.commands.requests.check_typed_fields` before its handler runs, on a
node and on a router alike (unknown fields Location40415, wrong types TypeMismatch 14, generic
arguments and ``$``-prefixed fields accepted), as the CRUD commands' parsers do with theirs.
Every field MongoDB 8 accepts is in its table; what Helogale does not implement is either
accepted and ignored (where ignoring it cannot change a result: ``collation``,
``storageEngine``, ``changeStreamPreAndPostImages``, a hidden index ...) or refused by the
handler with CommandNotSupported (115) where ignoring it would (views, time series, clustered
collections, a unique partial index ...).

:func:`parse_index_specs` checks ``createIndexes``' ``indexes`` as MongoDB's
``validateIndexSpec`` does (an unknown option InvalidIndexSpecificationOption 197, wrong types
14, ``key``/``name`` missing 9) and returns the specs as the engine builds them, the ignored
options removed. The router's sharding commands are not strict in MongoDB:
:data:`TYPED_ONLY_FIELDS` checks the types of ``shardCollection``'s known fields only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.commands.args import bson_type_name, get_bool, get_list, is_number
from node.commands.requests import (
    ANY,
    ARRAY,
    BOOL,
    OBJECT,
    SAFE_BOOL,
    SAFE_INT,
    STRING,
    UUID_TYPE,
    FieldTable,
    FieldType,
    check_typed_fields,
    either,
)
from node.engine.errors import (
    BAD_VALUE,
    CANNOT_CREATE_INDEX,
    COMMAND_NOT_SUPPORTED,
    FAILED_TO_PARSE,
    INVALID_INDEX_SPECIFICATION_OPTION,
    MongoError,
    type_mismatch,
)
from node.engine.path_update import format_value

CREATE_FIELDS: FieldTable = {
    "create": ANY, "capped": SAFE_BOOL, "autoIndexId": SAFE_BOOL, "idIndex": OBJECT,
    "size": SAFE_INT, "max": SAFE_INT, "storageEngine": OBJECT, "validator": OBJECT,
    "validationLevel": STRING, "validationAction": STRING, "indexOptionDefaults": OBJECT,
    "viewOn": STRING, "pipeline": ARRAY, "collation": OBJECT, "recordPreImages": SAFE_BOOL,
    "changeStreamPreAndPostImages": OBJECT, "timeseries": OBJECT,
    "clusteredIndex": either(SAFE_BOOL, OBJECT), "expireAfterSeconds": SAFE_INT,
    "encryptedFields": OBJECT, "temp": SAFE_BOOL, "flags": SAFE_INT,
    "recordIdsReplicated": SAFE_BOOL,
}
COLL_MOD_FIELDS: FieldTable = {
    "collMod": ANY, "index": OBJECT, "validator": OBJECT, "validationLevel": STRING,
    "validationAction": STRING, "viewOn": STRING, "pipeline": ARRAY,
    "recordPreImages": SAFE_BOOL, "changeStreamPreAndPostImages": OBJECT,
    "expireAfterSeconds": either(STRING, SAFE_INT), "timeseries": OBJECT,
    "timeseriesBucketsMayHaveMixedSchemaData": SAFE_BOOL, "dryRun": SAFE_BOOL,
    "collectionUUID": UUID_TYPE, "cappedSize": SAFE_INT, "cappedMax": SAFE_INT,
    "isTimeseriesNamespace": BOOL,
}
CREATE_INDEXES_FIELDS: FieldTable = {
    "createIndexes": ANY, "v": SAFE_INT, "indexes": ARRAY, "ignoreUnknownIndexOptions": SAFE_BOOL,
    "commitQuorum": either(SAFE_INT, STRING), "returnOnStart": BOOL,
    "isTimeseriesNamespace": BOOL, "collectionUUID": UUID_TYPE,
}
STRING_ARRAY_OR_OBJECT = either(STRING, ARRAY, OBJECT)
COMMAND_FIELDS: dict[str, FieldTable] = {
    "create": CREATE_FIELDS,
    "collMod": COLL_MOD_FIELDS,
    "createIndexes": CREATE_INDEXES_FIELDS,
    "dropIndexes": {"dropIndexes": ANY, "index": STRING_ARRAY_OR_OBJECT,
                    "isTimeseriesNamespace": BOOL, "collectionUUID": UUID_TYPE},
    "listIndexes": {"listIndexes": ANY, "cursor": OBJECT, "includeBuildUUIDs": SAFE_BOOL,
                    "includeIndexBuildInfo": SAFE_BOOL, "isTimeseriesNamespace": BOOL,
                    "rawData": SAFE_BOOL},
    "listCollections": {"listCollections": ANY, "cursor": OBJECT, "filter": OBJECT,
                        "nameOnly": BOOL, "authorizedCollections": BOOL,
                        "includePendingDrops": SAFE_BOOL},
    "listDatabases": {"listDatabases": ANY, "nameOnly": SAFE_BOOL, "authorizedDatabases": BOOL,
                      "filter": OBJECT},
    "drop": {"drop": ANY, "collectionUUID": UUID_TYPE},
    "convertToCapped": {"convertToCapped": ANY, "size": SAFE_INT, "max": SAFE_INT},  # max: ours
    "dropDatabase": {"dropDatabase": SAFE_INT},
    "renameCollection": {"renameCollection": STRING, "to": STRING,
                         "dropTarget": either(BOOL, UUID_TYPE), "stayTemp": BOOL,
                         "collectionUUID": UUID_TYPE},
}
_USER_FIELDS: FieldTable = {
    "pwd": ANY, "customData": OBJECT, "roles": ARRAY, "digestPassword": BOOL,
    "authenticationRestrictions": ARRAY, "mechanisms": ARRAY,
}
_ROLE_FIELDS: FieldTable = {"privileges": ARRAY, "roles": ARRAY,
                            "authenticationRestrictions": ARRAY}
COMMAND_FIELDS.update({
    "createUser": {"createUser": ANY, **_USER_FIELDS},
    "updateUser": {"updateUser": ANY, **_USER_FIELDS},
    "dropUser": {"dropUser": ANY},
    "grantRolesToUser": {"grantRolesToUser": ANY, "roles": ARRAY},
    "revokeRolesFromUser": {"revokeRolesFromUser": ANY, "roles": ARRAY},
    "usersInfo": {"usersInfo": ANY, "showCredentials": SAFE_BOOL, "showCustomData": SAFE_BOOL,
                  "showPrivileges": SAFE_BOOL, "showAuthenticationRestrictions": SAFE_BOOL,
                  "filter": OBJECT},
    "createRole": {"createRole": ANY, **_ROLE_FIELDS},
    "updateRole": {"updateRole": ANY, **_ROLE_FIELDS},
    "dropRole": {"dropRole": ANY},
    "dropAllRolesFromDatabase": {"dropAllRolesFromDatabase": ANY},
    "grantRolesToRole": {"grantRolesToRole": ANY, "roles": ARRAY},
    "revokeRolesFromRole": {"revokeRolesFromRole": ANY, "roles": ARRAY},
    "grantPrivilegesToRole": {"grantPrivilegesToRole": ANY, "privileges": ARRAY},
    "revokePrivilegesFromRole": {"revokePrivilegesFromRole": ANY, "privileges": ARRAY},
    "rolesInfo": {"rolesInfo": ANY, "showPrivileges": either(SAFE_BOOL, STRING),
                  "showBuiltinRoles": SAFE_BOOL, "showAuthenticationRestrictions": SAFE_BOOL},
})
"""MongoDB 8's fields of each strict catalog, user and role command (src/mongo/db/*.idl)."""
TYPED_ONLY_FIELDS: dict[str, FieldTable] = {
    "shardCollection": {"shardCollection": STRING, "key": OBJECT, "unique": BOOL,
                        "numInitialChunks": SAFE_INT, "presplitHashedZones": BOOL,
                        "collation": OBJECT, "timeseries": OBJECT,
                        "implicitlyCreateIndex": BOOL, "enforceUniquenessCheck": BOOL},
}
"""Commands MongoDB parses with ``strict: false`` (mongos' ``ShardCollection``): their known
fields' types are checked, unknown fields ignored."""


def check_command_fields(name: str, cmd: Mapping[str, Any]) -> None:
    """Refuse a catalog command's unknown fields (40415) and wrongly typed ones (14); other
    commands pass (the CRUD commands' parsers check theirs)."""
    table = COMMAND_FIELDS.get(name)
    if table is not None:
        check_typed_fields(cmd, name, table)
    elif name in TYPED_ONLY_FIELDS:
        check_typed_fields(cmd, name, TYPED_ONLY_FIELDS[name], strict=False)


def refuse_unsupported(cmd: Mapping[str, Any], name: str, fields: tuple[str, ...]) -> None:
    """CommandNotSupported (115) for an option MongoDB accepts that Helogale does not
    implement and cannot ignore (a false or null value is no option)."""
    for option in fields:
        if cmd.get(option) not in (None, False):
            raise MongoError(COMMAND_NOT_SUPPORTED, f"{name} option '{option}' is not "
                             "supported", code_name="CommandNotSupported")


# --- index specs (MongoDB's index_key_validate::validateIndexSpec) -----------------------------

NUMBER = FieldType(is_number, "", "a number")
BOOL_LIKE = FieldType(lambda v: isinstance(v, bool) or is_number(v), "", "bool")
INDEX_SPEC_FIELDS: dict[str, FieldType | None] = {
    "key": OBJECT, "name": STRING, "v": NUMBER, "ns": ANY, "hidden": BOOL, "originalSpec": OBJECT,
    "collation": OBJECT, "partialFilterExpression": OBJECT, "wildcardProjection": ANY,
    "columnstoreProjection": ANY, "columnstoreCompressor": ANY, "weights": either(OBJECT, STRING),
    "background": BOOL_LIKE, "unique": BOOL_LIKE, "sparse": BOOL_LIKE, "dropDups": BOOL_LIKE,
    "prepareUnique": BOOL_LIKE, "clustered": BOOL_LIKE, "default_language": STRING,
    "language_override": STRING, "2dsphereIndexVersion": NUMBER, "textIndexVersion": NUMBER,
    "bits": NUMBER, "min": NUMBER, "max": NUMBER, "coarsestIndexedLevel": NUMBER,
    "finestIndexedLevel": NUMBER, "expireAfterSeconds": ANY, "storageEngine": ANY,
    "bucketSize": ANY,
}
"""Every field MongoDB 8 allows in an index spec, with the type ``validateIndexSpec`` checks
(``expireAfterSeconds`` is checked by the engine, CannotCreateIndex 67)."""
BUILT_OPTIONS = frozenset({"key", "name", "unique", "sparse", "background", "min", "max",
                           "bits", "expireAfterSeconds"})
"""What the engine builds; the other accepted options are dropped (``dropDups`` too: MongoDB
ignores it since 3.0)."""
UNSUPPORTED_INDEX_OPTIONS = ("clustered",)


def parse_index_specs(cmd: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``createIndexes``' ``indexes``, checked, as the engine builds them."""
    specs = get_list(cmd, "createIndexes", "indexes")
    if not specs:
        raise MongoError(BAD_VALUE, "Must specify at least one index to create")
    ignore_unknown = get_bool(cmd, "createIndexes", "ignoreUnknownIndexOptions")
    out = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping):
            raise type_mismatch(f"BSON field 'createIndexes.indexes.{i}' is the wrong type "
                                f"'{bson_type_name(spec)}', expected type 'object'")
        out.append(_index_spec(spec, ignore_unknown))
    return out


def _index_spec(spec: Mapping[str, Any], ignore_unknown: bool) -> dict[str, Any]:
    if ignore_unknown:
        spec = {k: v for k, v in spec.items() if k in INDEX_SPEC_FIELDS}
    for key in spec:
        if key not in INDEX_SPEC_FIELDS:
            raise MongoError(INVALID_INDEX_SPECIFICATION_OPTION,
                             f"The field '{key}' is not valid for an index specification. "
                             f"Specification: {format_value(dict(spec))}",
                             code_name="InvalidIndexSpecificationOption")
    for key, value in spec.items():
        _check_index_field(key, value)
    for required in ("key", "name"):
        if required not in spec:
            raise MongoError(FAILED_TO_PARSE, f"The '{required}' field is a required property "
                             "of an index specification")
    _check_index_options(spec)
    return {k: v for k, v in spec.items() if k in BUILT_OPTIONS}


def _check_index_field(key: str, value: Any) -> None:
    ftype = INDEX_SPEC_FIELDS[key]
    if ftype is None or ftype.accepts(value):
        return
    if ftype is BOOL_LIKE:
        raise type_mismatch(f"The field '{key} has value {key}: {format_value(value)}, which "
                            "is not convertible to bool")
    raise type_mismatch(f"The field '{key}' must be {ftype.noun}, but got "
                        f"{bson_type_name(value)}")


def _check_index_options(spec: Mapping[str, Any]) -> None:
    """The rules between options MongoDB checks, and the options Helogale cannot ignore."""
    if not spec["key"]:
        raise MongoError(CANNOT_CREATE_INDEX, "Index keys cannot be empty.",
                         code_name="CannotCreateIndex")
    version = spec.get("v")
    if version is not None and version not in (1, 2):
        raise MongoError(CANNOT_CREATE_INDEX, f"Invalid index specification "
                         f"{format_value(dict(spec))}; cannot create an index with v={version}")
    if spec.get("collation") == {}:
        raise MongoError(BAD_VALUE, "The field 'collation' cannot be an empty object.")
    if "weights" in spec and "text" not in spec["key"].values():
        raise MongoError(CANNOT_CREATE_INDEX, "Invalid index specification; the field 'weights' "
                         "can only be specified with text indexes")
    if spec.get("unique") and spec.get("prepareUnique"):
        raise MongoError(CANNOT_CREATE_INDEX, "Invalid index specification; cannot create an "
                         "index with the 'unique' option and the 'prepareUnique' option")
    for projection in ("wildcardProjection", "columnstoreProjection"):
        if projection in spec and "$**" not in spec["key"]:
            raise MongoError(BAD_VALUE, f"The field '{projection}' is only allowed in "
                             "'wildcard' indexes")
    refuse_unsupported(spec, "createIndexes", UNSUPPORTED_INDEX_OPTIONS)
    if spec.get("unique") and spec.get("partialFilterExpression") is not None:
        raise MongoError(COMMAND_NOT_SUPPORTED, "createIndexes option "
                         "'partialFilterExpression' is not supported on a unique index",
                         code_name="CommandNotSupported")

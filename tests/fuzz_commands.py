"""Hostile command documents for every command a node serves (``NODE_COMMANDS``).

Each command has a schema (:data:`SCHEMAS`): the kind of its first field's value and of each
field its handler or ``node/commands/requests.py`` reads. :func:`commands` draws a command
that is valid or nearly so, then spoils it: fields swapped for values of the wrong type,
NaN/infinite/huge/negative numbers, nesting around the limits (100/180/200), ``$in`` arrays
of up to 20,000 values, pathological regular expressions, fields dropped, unknown fields.
Used by the in-process fuzzer (tests/test_commands_fuzz.py) and over gRPC
(tests/test_grpc_fuzz.py). A command added to the table without a schema here fails
``test_every_command_has_a_schema``.
"""

from __future__ import annotations

from typing import Any

from bson import Binary, Int64, Regex
from hypothesis import strategies as st

from tests.fuzzing import (
    HOSTILE_NUMBERS,
    HOSTILE_SCALARS,
    NESTING_DEPTHS,
    PATHOLOGICAL_REGEXES,
    keys,
    nested,
    values,
)

FUZZ_DB = "fz"
COLL = "c"
OTHER = "d"
FIELDS = ["a", "b", "s", "arr", "n", "_id", "a.b", "arr.0", "loc"]

# --- the valid-ish value of each kind ----------------------------------------------------------

numbers = st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.integers(-5, 30))
small_ints = st.one_of(st.integers(0, 20), st.sampled_from(HOSTILE_NUMBERS))
field_names = st.one_of(st.sampled_from(FIELDS), keys)
regexes = st.one_of(st.sampled_from(PATHOLOGICAL_REGEXES), st.text(max_size=8))


def _nested_and(depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"a": 1}
    for _ in range(depth):
        out = {"$and": [out]}
    return out


@st.composite
def big_in(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.sampled_from([0, 1, 100, 2_000, 20_000]))
    kind = draw(st.sampled_from(["int", "str", "mixed"]))
    if kind == "int":
        vals: list[Any] = list(range(n))
    elif kind == "str":
        vals = [f"s{i}" for i in range(n)]
    else:
        vals = [i if i % 3 else f"s{i}" for i in range(n)] + [None, [], {"x": 1}]
    return {draw(st.sampled_from(["a", "_id", "s", "arr"])): {"$in": vals}}


def _query_ops(v: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        v,
        st.builds(lambda o, x: {o: x}, st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$ne",
                                                         "$eq", "$exists", "$type", "$size",
                                                         "$mod", "$all", "$nin", "$in",
                                                         "$elemMatch", "$not", "$near",
                                                         "$within", "$geoWithin"]), v),
        st.builds(lambda r, o: {"$regex": r, "$options": o}, regexes,
                  st.sampled_from(["", "i", "imsx", "q", "u"])),
        regexes.map(lambda r: Regex(r)),
    )


filters = st.one_of(
    st.just({}),
    st.dictionaries(field_names, _query_ops(values(6)), max_size=3),
    st.builds(lambda op, subs: {op: subs}, st.sampled_from(["$and", "$or", "$nor", "$where",
                                                            "$expr", "$text", "$comment"]),
              st.lists(st.dictionaries(field_names, _query_ops(values(4)), max_size=2),
                       max_size=3)),
    big_in(),
    st.sampled_from(NESTING_DEPTHS).map(lambda d: nested(d, 1)),
    st.sampled_from(NESTING_DEPTHS).map(lambda d: _nested_and(d)),
    st.sampled_from(NESTING_DEPTHS).map(lambda d: nested(d, {"a": 1}, key="$not")),
    st.sampled_from(NESTING_DEPTHS).map(lambda d: {"a": {"$elemMatch": nested(d, {"$gt": 1},
                                                                               key="$elemMatch")}}),
)
documents = st.one_of(
    st.dictionaries(field_names, values(8), max_size=5),
    st.builds(lambda i, d: {"_id": i, **d}, values(3), st.dictionaries(field_names, values(4),
                                                                       max_size=3)),
    st.sampled_from(NESTING_DEPTHS).map(lambda d: {"deep": nested(d)}),
    st.sampled_from(NESTING_DEPTHS).map(lambda d: {"deep": nested(d, arrays=True)}),
    st.just({"big": "x" * 200_000}),
)
update_specs = st.one_of(
    st.dictionaries(st.sampled_from(["$set", "$unset", "$inc", "$mul", "$push", "$pull",
                                     "$addToSet", "$pop", "$rename", "$min", "$max",
                                     "$currentDate", "$setOnInsert", "$bit", "$pullAll",
                                     "$frob"]),
                    st.dictionaries(field_names, values(4), max_size=3), max_size=3),
    documents,
    st.lists(st.dictionaries(st.sampled_from(["$set", "$project"]), values(3), max_size=1),
             max_size=2),
)
sorts = st.one_of(st.dictionaries(field_names, st.one_of(st.sampled_from([1, -1]), numbers,
                                                        st.just({"$meta": "textScore"})),
                                  max_size=3), values(3))
projections = st.one_of(st.dictionaries(field_names, st.one_of(st.sampled_from([0, 1, True]),
                                                              values(3)), max_size=3),
                        values(3))
stages = st.one_of(
    st.builds(lambda f: {"$match": f}, filters),
    st.builds(lambda s: {"$sort": s}, sorts),
    st.builds(lambda n: {"$skip": n}, numbers),
    st.builds(lambda n: {"$limit": n}, numbers),
    st.builds(lambda p: {"$project": p}, projections),
    st.builds(lambda s: {"$count": s}, st.one_of(st.sampled_from(["n", "", "$x", "a.b"]),
                                                 values(2))),
    st.builds(lambda g: {"$group": g}, st.one_of(
        st.builds(lambda k, acc, e: {"_id": k, "out": {acc: e}},
                  st.sampled_from([None, "$a", "$s", {"x": "$a"}, "$arr.0"]),
                  st.sampled_from(["$sum", "$avg", "$min", "$max", "$push", "$addToSet",
                                   "$first", "$last", "$frob"]),
                  st.one_of(st.sampled_from(["$a", "$n", 1, "$$ROOT"]), values(2))),
        values(3))),
    st.builds(lambda p: {"$unwind": p}, st.one_of(st.sampled_from(["$arr", "$a", "arr", "$"]),
                                                  values(2))),
    st.dictionaries(st.sampled_from(["$lookup", "$out", "$merge", "$facet", "$frob"]),
                    values(2), min_size=1, max_size=1),
)
pipelines = st.one_of(st.lists(stages, max_size=4), values(3))
write_concerns = st.one_of(
    st.fixed_dictionaries({}, optional={"w": st.one_of(st.sampled_from(["majority", "x", 0, 1,
                                                                        2]), numbers),
                                        "wtimeout": numbers, "j": st.one_of(st.booleans(),
                                                                            numbers),
                                        "fsync": values(1)}),
    values(2),
)
lsids = st.one_of(st.just({"id": Binary(b"\x07" * 16, 4)}),
                  st.builds(lambda b: {"id": Binary(b, 4)}, st.binary(min_size=16, max_size=16)),
                  values(2))
index_keys = st.one_of(
    st.dictionaries(field_names, st.one_of(st.sampled_from([1, -1, "2d", "text", "hashed",
                                                            "2dsphere", 0, "x"]), numbers),
                    max_size=3),
    values(2))
index_specs = st.one_of(
    st.builds(lambda k, n, o: {"key": k, "name": n, **o}, index_keys,
              st.one_of(st.sampled_from(["a_1", "x", "", "_id_", "$x"]), values(1)),
              st.fixed_dictionaries({}, optional={
                  "unique": values(1), "sparse": values(1), "expireAfterSeconds": numbers,
                  "min": numbers, "max": numbers, "bits": numbers,
                  "partialFilterExpression": filters})),
    values(3))

KINDS: dict[str, st.SearchStrategy[Any]] = {
    "coll": st.one_of(st.sampled_from([COLL, COLL, OTHER, "new", "", "a$b", ".x", "x.", "\x00",
                                       "system.x", "c" * 300]), values(1)),
    "coll_or_1": st.one_of(st.sampled_from([COLL, 1, OTHER]), values(1)),
    "ns": st.one_of(st.sampled_from([f"{FUZZ_DB}.{COLL}", f"{FUZZ_DB}.{OTHER}", "fz.new",
                                     "admin.x", "nodot", "", f"{FUZZ_DB}.", ".c"]), values(1)),
    "filter": filters,
    "doc": documents,
    "docs": st.one_of(st.lists(documents, min_size=1, max_size=5), st.just([]), values(2)),
    "updates": st.one_of(
        st.lists(st.fixed_dictionaries({"q": filters, "u": update_specs}, optional={
            "upsert": values(1), "multi": values(1), "arrayFilters": st.lists(filters,
                                                                              max_size=2),
            "hint": values(1), "frob": values(1)}), min_size=1, max_size=3),
        values(2)),
    "deletes": st.one_of(
        st.lists(st.fixed_dictionaries({"q": filters, "limit": st.one_of(
            st.sampled_from([0, 1]), numbers)}), min_size=1, max_size=3),
        values(2)),
    "update": update_specs,
    "pipeline": pipelines,
    "sort": sorts,
    "proj": projections,
    "int": numbers,
    "small": small_ints,
    "bool": st.one_of(st.booleans(), values(1)),
    "str": st.one_of(st.sampled_from(["a", "s", "arr", "a.b", "", "$a", "shard1", "x:1"]),
                     values(1)),
    "field": field_names,
    "cursor_id": st.one_of(st.sampled_from([Int64(0), Int64(1), Int64(2**63 - 1)]), numbers,
                           values(1)),
    "cursor_ids": st.one_of(st.lists(st.one_of(numbers, st.just(Int64(1))), max_size=4),
                            values(2)),
    "cursor_opts": st.one_of(st.fixed_dictionaries({}, optional={"batchSize": small_ints}),
                             values(2)),
    "indexes": st.one_of(st.lists(index_specs, max_size=3), values(2)),
    "index_name": st.one_of(st.sampled_from(["*", "a_1", "_id_", "nope"]), index_keys,
                            st.lists(st.sampled_from(["a_1", "_id_", "x"]), max_size=2)),
    "wc": write_concerns,
    "lsid": lsids,
    "txn": st.one_of(st.integers(0, 5).map(Int64), numbers),
    "stmt_ids": st.one_of(st.lists(numbers, max_size=3), values(2)),
    "max_time": st.one_of(st.sampled_from([0, 1, 1000, 2**31 - 1, 2**31]), numbers),
    "sessions": st.one_of(st.lists(lsids, max_size=3), values(2)),
    "apply_ops": st.one_of(
        st.lists(st.fixed_dictionaries({"op": st.sampled_from(["i", "u", "d", "c", "n", "x"]),
                                        "ns": st.sampled_from([f"{FUZZ_DB}.{COLL}", "x",
                                                               "admin.y"]),
                                        "o": documents}, optional={"o2": filters}),
                 max_size=3),
        values(2)),
    "command": st.one_of(st.builds(lambda f: {"find": COLL, "filter": f}, filters),
                         st.builds(lambda f: {"count": COLL, "query": f}, filters),
                         st.builds(lambda k: {"distinct": COLL, "key": k}, field_names),
                         values(2)),
    "replset_config": st.one_of(
        st.fixed_dictionaries({"_id": values(1), "version": numbers,
                               "members": st.lists(st.fixed_dictionaries(
                                   {"_id": numbers, "host": st.sampled_from(
                                       ["127.0.0.1:1", "x", "h:99999", ""])},
                                   optional={"priority": numbers, "raftHost": values(1)}),
                                   max_size=3)}),
        values(3)),
    "bulk_ops": st.one_of(
        st.lists(st.one_of(
            st.fixed_dictionaries({"insert": st.one_of(st.sampled_from([0, 1, -1, 5]), numbers),
                                   "document": documents}),
            st.fixed_dictionaries({"update": st.sampled_from([0, 1]), "filter": filters,
                                   "updateMods": update_specs},
                                  optional={"multi": values(1), "upsert": values(1),
                                            "arrayFilters": values(2), "frob": values(1)}),
            st.fixed_dictionaries({"delete": st.sampled_from([0, 1]), "filter": filters},
                                  optional={"multi": values(1)}),
            values(2)), min_size=1, max_size=4),
        values(2)),
    "ns_info": st.one_of(st.lists(st.fixed_dictionaries({"ns": st.one_of(st.sampled_from(
        [f"{FUZZ_DB}.{COLL}", f"{FUZZ_DB}.{OTHER}", "nodot", ".x", "admin.y"]), values(1))}),
        min_size=1, max_size=2), values(2)),
    "any": values(4),
    "bound": st.one_of(st.dictionaries(st.just("_id"), values(1), max_size=1), values(2)),
}

# --- one schema per command: (kind of the first field's value, {field: kind}) -------------------

_READ_COMMON = {"maxTimeMS": "max_time", "comment": "any", "lsid": "lsid",
                "$readPreference": "any", "readConcern": "any"}
_WRITE_COMMON = {"ordered": "bool", "writeConcern": "wc", "lsid": "lsid", "txnNumber": "txn",
                 "stmtIds": "stmt_ids", "stmtId": "int", "maxTimeMS": "max_time",
                 "bypassDocumentValidation": "bool", "shardVersion": "any",
                 "startTransaction": "bool", "autocommit": "bool"}
_FAM = {"query": "filter", "sort": "sort", "fields": "proj", "remove": "bool", "new": "bool",
        "upsert": "bool", "update": "update", "arrayFilters": "any", **_WRITE_COMMON}

SCHEMAS: dict[str, tuple[str, dict[str, str]]] = {
    "insert": ("coll", {"documents": "docs", **_WRITE_COMMON}),
    "update": ("coll", {"updates": "updates", **_WRITE_COMMON}),
    "delete": ("coll", {"deletes": "deletes", **_WRITE_COMMON}),
    "findAndModify": ("coll", _FAM),
    "findandmodify": ("coll", _FAM),
    "find": ("coll", {"filter": "filter", "sort": "sort", "projection": "proj", "skip": "int",
                      "limit": "int", "batchSize": "small", "singleBatch": "bool",
                      "hint": "index_name", "$_requestSortKey": "bool", "tailable": "bool",
                      "awaitData": "bool", **_READ_COMMON}),
    "getMore": ("cursor_id", {"collection": "coll", "batchSize": "small",
                              "maxTimeMS": "max_time"}),
    "killCursors": ("coll", {"cursors": "cursor_ids"}),
    "count": ("coll", {"query": "filter", "skip": "int", "limit": "int", "hint": "index_name",
                       **_READ_COMMON}),
    "distinct": ("coll", {"key": "field", "query": "filter", **_READ_COMMON}),
    "aggregate": ("coll_or_1", {"pipeline": "pipeline", "cursor": "cursor_opts",
                                "explain": "bool", "allowDiskUse": "bool", **_READ_COMMON}),
    "explain": ("command", {"verbosity": "str"}),
    "createIndexes": ("coll", {"indexes": "indexes", "writeConcern": "wc"}),
    "dropIndexes": ("coll", {"index": "index_name", "writeConcern": "wc"}),
    "listIndexes": ("coll", {"cursor": "cursor_opts"}),
    "listCollections": ("int", {"filter": "filter", "nameOnly": "bool", "cursor": "cursor_opts"}),
    "listDatabases": ("int", {"filter": "filter", "nameOnly": "bool"}),
    "create": ("coll", {"capped": "bool", "size": "int", "max": "int", "writeConcern": "wc"}),
    "convertToCapped": ("coll", {"size": "int", "writeConcern": "wc"}),
    "drop": ("coll", {"writeConcern": "wc"}),
    "dropDatabase": ("int", {"writeConcern": "wc"}),
    "collStats": ("coll", {"scale": "int"}),
    "dbStats": ("int", {"scale": "int"}),
    "renameCollection": ("ns", {"to": "ns", "dropTarget": "bool", "writeConcern": "wc"}),
    "hello": ("int", {"helloOk": "bool", "client": "any", "topologyVersion": "any",
                      "maxAwaitTimeMS": "int"}),
    "isMaster": ("int", {"helloOk": "bool", "client": "any"}),
    "ismaster": ("int", {"helloOk": "bool", "client": "any"}),
    "ping": ("int", {}),
    "buildInfo": ("int", {}),
    "buildinfo": ("int", {}),
    "getParameter": ("any", {"featureCompatibilityVersion": "any", "*": "any"}),
    "serverStatus": ("int", {"repl": "any"}),
    "endSessions": ("sessions", {}),
    "killSessions": ("sessions", {}),
    "getLastError": ("int", {"w": "any", "wtimeout": "int", "j": "bool"}),
    "connectionStatus": ("int", {"showPrivileges": "bool"}),
    "listCommands": ("int", {}),
    "replSetGetStatus": ("int", {}),
    "replSetGetConfig": ("int", {}),
    "replSetStepDown": ("int", {"secondaryCatchUpPeriodSecs": "int", "force": "bool"}),
    "replSetReconfig": ("replset_config", {"force": "bool"}),
    "configureFailPoint": ("str", {"mode": "any", "data": "any"}),
    "bulkWrite": ("int", {"ops": "bulk_ops", "nsInfo": "ns_info", "errorsOnly": "bool",
                          **_WRITE_COMMON}),
    "collMod": ("coll", {"validator": "filter", "validationLevel": "str",
                         "validationAction": "str", "index": "any", "writeConcern": "wc"}),
    "mapReduce": ("coll", {"map": "any", "reduce": "any", "out": "any", "query": "filter",
                           "sort": "sort", "limit": "int", "finalize": "any", "scope": "any"}),
    "currentOp": ("int", {"$all": "bool", "active": "bool"}),
    "killOp": ("int", {"op": "int"}),
    "top": ("int", {}),
    "createUser": ("str", {"pwd": "str", "roles": "any", "customData": "any",
                           "mechanisms": "any"}),
    "updateUser": ("str", {"pwd": "str", "roles": "any", "customData": "any"}),
    "dropUser": ("str", {}),
    "grantRolesToUser": ("str", {"roles": "any"}),
    "revokeRolesFromUser": ("str", {"roles": "any"}),
    "usersInfo": ("any", {"showCredentials": "bool"}),
    "createRole": ("str", {"privileges": "any", "roles": "any", "writeConcern": "wc"}),
    "updateRole": ("str", {"privileges": "any", "roles": "any", "writeConcern": "wc"}),
    "dropRole": ("str", {"writeConcern": "wc"}),
    "dropAllRolesFromDatabase": ("int", {"writeConcern": "wc"}),
    "grantRolesToRole": ("str", {"roles": "any"}),
    "revokeRolesFromRole": ("str", {"roles": "any"}),
    "grantPrivilegesToRole": ("str", {"privileges": "any"}),
    "revokePrivilegesFromRole": ("str", {"privileges": "any"}),
    "rolesInfo": ("any", {"showPrivileges": "bool", "showBuiltinRoles": "bool"}),
    "saslStart": ("int", {"mechanism": "str", "payload": "any", "autoAuthorize": "int"}),
    "saslContinue": ("int", {"conversationId": "int", "payload": "any"}),
    "logout": ("int", {}),
    "applyOps": ("apply_ops", {"preCondition": "any", "writeConcern": "wc"}),
    "_configsvrAddShard": ("str", {"name": "str"}),
    "_configsvrRemoveShard": ("str", {}),
    "_configsvrCreateDatabase": ("str", {"partitioned": "bool"}),
    "_configsvrShardCollection": ("ns", {"key": "any", "numInitialChunks": "int",
                                         "presplitWindowSecs": "int"}),
    "_configsvrSplitChunk": ("ns", {"splitPoints": "any", "min": "bound", "max": "bound"}),
    "_configsvrMoveChunk": ("ns", {"toShard": "str", "min": "bound", "max": "bound",
                                   "waitForDelete": "bool"}),
    "_configsvrCommitChunkMigration": ("ns", {"migrationId": "any", "min": "bound",
                                              "max": "bound", "fromShard": "str",
                                              "toShard": "str"}),
    "_configsvrRegisterMigration": ("ns", {"migrationId": "any", "min": "bound",
                                           "max": "bound"}),
    "_configsvrMigrationOutcome": ("any", {"migrationId": "any"}),
    "_configsvrDropCollection": ("ns", {}),
    "_configsvrBalancerStart": ("int", {"maxChunkBytes": "int", "maxChunkDocs": "int"}),
    "_configsvrBalancerStop": ("int", {}),
    "_configsvrBalancerStatus": ("int", {}),
    "_configsvrMergeChunks": ("ns", {"min": "bound", "max": "bound"}),
    "_configsvrMovePrimary": ("str", {"to": "str"}),
    "_configsvrDropDatabase": ("str", {}),
    "_shardsvrSetShardIdentity": ("int", {"shardName": "str",
                                          "configsvrConnectionString": "str",
                                          "clusterId": "any"}),
    "_shardsvrRefresh": ("ns", {}),
    "_shardsvrMoveRange": ("ns", {"toShard": "str", "toShardHost": "str", "min": "bound",
                                  "max": "bound", "waitForDelete": "bool",
                                  "migrationId": "any"}),
    "_shardsvrChunkSizes": ("ns", {}),
    "_shardsvrSplitVector": ("ns", {"min": "bound", "max": "bound", "maxChunkBytes": "int",
                                    "maxChunkDocs": "int"}),
    "_shardsvrMigrationStatus": ("any", {}),
    "_recvChunkStart": ("ns", {"migrationId": "any", "min": "bound", "max": "bound",
                               "fromShard": "str", "indexes": "indexes"}),
    "_recvChunkBatch": ("ns", {"migrationId": "any", "docs": "docs", "deletes": "any",
                               "sessions": "any"}),
    "_recvChunkCommit": ("ns", {"migrationId": "any"}),
    "_recvChunkAbort": ("ns", {"migrationId": "any"}),
    "getShardVersion": ("ns", {"fullMetadata": "bool"}),
}

READ_ONLY = frozenset({
    "find", "getMore", "killCursors", "count", "distinct", "aggregate", "explain",
    "listIndexes", "listCollections", "listDatabases", "collStats", "dbStats", "hello",
    "isMaster", "ismaster", "ping", "buildInfo", "buildinfo", "getParameter", "serverStatus",
    "getLastError", "connectionStatus", "listCommands", "replSetGetStatus", "replSetGetConfig",
    "replSetStepDown", "configureFailPoint", "_configsvrBalancerStatus", "_shardsvrChunkSizes",
    "_shardsvrSplitVector", "_shardsvrMigrationStatus", "getShardVersion",
})
"""Commands that must never change what is stored, whatever their arguments."""


@st.composite
def commands(draw: st.DrawFn, name: str | None = None) -> dict[str, Any]:
    """One command document (without ``$db``) for ``name`` (any command when None)."""
    if name is None:
        name = draw(st.sampled_from(sorted(SCHEMAS)))
    target_kind, fields = SCHEMAS[name]
    cmd: dict[str, Any] = {name: draw(KINDS[target_kind])}
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True,
                           max_size=len(fields))) if fields else []
    for f in chosen:
        cmd[f] = draw(KINDS[fields[f]])
    spoil = draw(st.sampled_from(["none", "none", "wrong_type", "number", "unknown"]))
    if spoil == "wrong_type":
        f = draw(st.sampled_from(sorted(cmd)))
        cmd[f] = draw(st.sampled_from(HOSTILE_SCALARS))
    elif spoil == "number" and len(cmd) > 1:
        f = draw(st.sampled_from(sorted(cmd)[1:] if len(cmd) > 1 else sorted(cmd)))
        if f != name:
            cmd[f] = draw(st.sampled_from(HOSTILE_NUMBERS))
    elif spoil == "unknown":
        cmd[draw(st.sampled_from(["frob", "$frob", "a.b", ""]))] = draw(values(3))
    return cmd

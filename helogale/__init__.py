"""Helogale client library: a pymongo-style API over gRPC (``helogale://`` URIs).

``MongoClient`` (and the classic ``Connection``) discovers the replica set's members (or the
routers) with background ``hello`` monitors, selects servers by read preference and latency,
and, on a network error or NotWritablePrimary, rediscovers and runs reads and retryable writes
again on the new primary (writes carry a session id and transaction number, so the server
applies them at most once). Layers: ``client`` -> ``topology`` (monitors, selection) ->
``retry`` (the one retry policy) -> ``channel`` (one gRPC channel per server) -> commands built
by ``database`` / ``collection`` / ``cursor`` / ``bulk``. Errors live in ``helogale.errors``.
"""

from bson.objectid import ObjectId
from bson.son import SON

from helogale import errors
from helogale.bulk import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from helogale.client import Connection, MongoClient
from helogale.collection import (
    ASCENDING,
    DESCENDING,
    GEO2D,
    GEOSPHERE,
    HASHED,
    TEXT,
    Collection,
    IndexModel,
    ReturnDocument,
)
from helogale.cursor import CommandCursor, Cursor, CursorType
from helogale.database import Database
from helogale.read_concern import ReadConcern
from helogale.read_preferences import ReadPreference
from helogale.results import (
    BulkWriteResult,
    DeleteResult,
    InsertManyResult,
    InsertOneResult,
    UpdateResult,
)
from helogale.write_concern import WriteConcern

__all__ = [
    "ASCENDING",
    "DESCENDING",
    "GEO2D",
    "GEOSPHERE",
    "HASHED",
    "SON",
    "TEXT",
    "BulkWriteResult",
    "Collection",
    "CommandCursor",
    "Connection",
    "Cursor",
    "CursorType",
    "Database",
    "DeleteMany",
    "DeleteOne",
    "DeleteResult",
    "IndexModel",
    "InsertManyResult",
    "InsertOne",
    "InsertOneResult",
    "MongoClient",
    "ObjectId",
    "ReadConcern",
    "ReadPreference",
    "ReplaceOne",
    "ReturnDocument",
    "UpdateMany",
    "UpdateOne",
    "UpdateResult",
    "WriteConcern",
    "errors",
]

"""The asyncio face of the client: ``from helogale.asyncio import AsyncMongoClient``.

Built on grpc.aio (tasks and futures on the caller's event loop, no threads); shares every
piece that is not I/O with the threaded client. See ``docs/client.md``, "The asyncio client".
"""

from helogale.asyncio.client import AsyncMongoClient
from helogale.asyncio.collection import AsyncCollection
from helogale.asyncio.cursor import AsyncCommandCursor, AsyncCursor
from helogale.asyncio.database import AsyncDatabase

__all__ = ["AsyncCollection", "AsyncCommandCursor", "AsyncCursor", "AsyncDatabase",
           "AsyncMongoClient"]

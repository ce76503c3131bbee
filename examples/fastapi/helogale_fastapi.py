"""The seed book's web demos (its last chapter wires MongoDB into Pylons, Pyramid and Django)
on FastAPI and Helogale's asyncio client:

* one :class:`~helogale.asyncio.AsyncMongoClient` per process, made at startup and closed at
  shutdown (the app's lifespan), shared by every request;
* the database on the request: the ``get_db`` dependency (``db: Db`` in a handler);
* the atomic page-view counter (the book's Pylons controller: an upserting
  ``find_and_modify`` with ``$inc``, here ``find_one_and_update``): ``GET /counter``;
* a per-request hit log (the book's Pyramid view inserting into ``page_hits``): every
  request, through the ``log_hit`` dependency; ``GET /hits`` shows the latest;
* an upload page storing images in GridFS (the book's Django sample): ``GET /``, ``POST
  /images``, ``GET /images/{id}``, through :class:`~helogale.asyncio.gridfs.AsyncGridFSBucket`.

Writes use ``w="majority"``; the client retries reads and single-document writes across a
primary failover (each write at most once), so a failover is a pause, not an error page.
"""

from __future__ import annotations

import datetime
import html
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from bson.errors import InvalidId
from bson.objectid import ObjectId
from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from helogale import ReturnDocument
from helogale.asyncio import AsyncDatabase, AsyncMongoClient
from helogale.asyncio.gridfs import AsyncGridFSBucket
from helogale.gridfs import NoFile

DEFAULT_URI = "helogale://127.0.0.1:27027,127.0.0.1:27028/"  # what `helogale up` prints
DB_NAME = "fastapi_demo"
MAX_IMAGE_BYTES = 16 * 1024 * 1024


def get_db(request: Request) -> AsyncDatabase:
    """The database of the process's client, for a handler (``db: Db``)."""
    return request.app.state.db  # type: ignore[no-any-return]


Db = Annotated[AsyncDatabase, Depends(get_db)]


async def log_hit(request: Request, db: Db) -> None:
    """The per-request hit log: one ``page_hits`` document per request."""
    await db.page_hits.insert_one({"timestamp": datetime.datetime.now(datetime.UTC),
                                   "url": str(request.url), "method": request.method})


async def next_count(db: AsyncDatabase) -> int:
    """The page-view counter, incremented atomically (created by the first increment)."""
    doc = await db.counters.find_one_and_update(
        {"counter_name": "test_counter"}, {"$inc": {"counter_value": 1}}, upsert=True,
        return_document=ReturnDocument.AFTER)
    return int(doc["counter_value"])


def create_app(uri: str | None = None, db_name: str = DB_NAME) -> FastAPI:
    """The app; it connects to ``uri`` (else ``$HELOGALE_URI``, else ``DEFAULT_URI``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = AsyncMongoClient(uri or os.environ.get("HELOGALE_URI") or DEFAULT_URI,
                                  w="majority")
        app.state.db = client[db_name]
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(title="Helogale + FastAPI", lifespan=lifespan,
                  dependencies=[Depends(log_hit)])

    @app.get("/counter")
    async def counter(db: Db) -> dict[str, int]:
        return {"counter_value": await next_count(db)}

    @app.get("/hits")
    async def hits(db: Db, limit: int = 10) -> dict[str, Any]:
        recent = await db.page_hits.find({}, {"_id": 0}).sort("timestamp", -1) \
            .limit(limit).to_list()
        return {"count": await db.page_hits.count_documents({}), "recent": recent}

    @app.post("/images")
    async def upload(db: Db, image: Annotated[UploadFile, File()]) -> RedirectResponse:
        content_type = image.content_type or ""
        if not content_type.startswith("image/"):
            raise HTTPException(415, f"not an image: {content_type or 'no content type'}")
        data = await image.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            raise HTTPException(413, "images up to 16 MiB")
        file_id = await AsyncGridFSBucket(db, "images").upload_from_stream(
            image.filename or "image", data, metadata={"contentType": content_type})
        return RedirectResponse(f"/images/{file_id}", status_code=303)

    @app.get("/images/{file_id}")
    async def image(db: Db, file_id: str) -> Response:
        try:
            out = await AsyncGridFSBucket(db, "images").open_download_stream(ObjectId(file_id))
        except (InvalidId, NoFile):
            raise HTTPException(404, "no such image") from None
        return Response(await out.read(), media_type=(out.metadata or {}).get("contentType"))

    @app.get("/", response_class=HTMLResponse)
    async def home(db: Db) -> str:
        views = await next_count(db)
        images = await AsyncGridFSBucket(db, "images").find({}).sort("uploadDate", -1) \
            .limit(12).to_list()
        items = "".join(
            f'<li><a href="/images/{f["_id"]}"><img src="/images/{f["_id"]}" height="80" '
            f'alt="{html.escape(f["filename"])}"></a></li>' for f in images)
        return (
            "<!doctype html><title>Helogale + FastAPI</title>"
            f"<h1>Helogale + FastAPI</h1><p>This page has been viewed {views} times.</p>"
            '<form action="/images" method="post" enctype="multipart/form-data">'
            '<input type="file" name="image" accept="image/*"> <button>Upload</button></form>'
            f"<ul>{items}</ul>"
            '<p><a href="/counter">/counter</a> · <a href="/hits">/hits</a></p>')

    return app

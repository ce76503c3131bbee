"""The FastAPI example: the seed book's web demos (:mod:`examples.webdemo`: a page-view
counter, a per-request hit log, images in GridFS, the page) on Helogale's asyncio client.

* **One client per process**: an :class:`~helogale.asyncio.AsyncMongoClient` made in the app's
  lifespan (at startup, on the server's event loop, so after any fork of a worker) and closed
  at shutdown.
* **The database on the request**: the ``get_db`` dependency (``db: Db`` in a handler).
* The demos are :mod:`examples.webdemo`'s, awaited: the counter is one upserting
  ``find_one_and_update`` keyed by ``_id`` (the page's path), the hit log one ``insert_one`` per
  request, images go to GridFS bucket ``images`` through
  :class:`~helogale.asyncio.gridfs.AsyncGridFSBucket`; the page and the image-type check are
  webdemo's own.

``create_app(uri, db_name)`` is the app factory (``uvicorn --factory
examples.fastapi.app:create_app`` reads ``$HELOGALE_URI``).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from bson.errors import InvalidId
from bson.objectid import ObjectId
from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from examples import webdemo
from helogale import ReturnDocument
from helogale.asyncio import AsyncDatabase, AsyncMongoClient
from helogale.asyncio.gridfs import AsyncGridFSBucket
from helogale.gridfs import NoFile

MAX_IMAGE_BYTES = 16 * 1024 * 1024


def get_db(request: Request) -> AsyncDatabase:
    """The process's database, for a handler (``db: Db``)."""
    return request.app.state.db  # type: ignore[no-any-return]


Db = Annotated[AsyncDatabase, Depends(get_db)]


async def count_view(db: AsyncDatabase, page: str) -> int:
    """:func:`examples.webdemo.count_view`, awaited."""
    doc = await db.counters.find_one_and_update(
        {"_id": page}, {"$inc": {"views": 1}}, upsert=True,
        return_document=ReturnDocument.AFTER)
    return int(doc["views"])


async def log_hit(request: Request, db: Db) -> None:
    """The hit log (:func:`examples.webdemo.log_hit`): one document per request of the page
    it is a dependency of."""
    await db.page_hits.insert_one({"timestamp": datetime.datetime.now(datetime.UTC),
                                   "url": str(request.url), "path": request.url.path,
                                   "framework": "fastapi"})


def create_app(uri: str | None = None, db_name: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = AsyncMongoClient(uri or os.environ["HELOGALE_URI"], **webdemo.CLIENT_OPTIONS)
        app.state.db = client.get_database(db_name) if db_name else \
            client.get_default_database(webdemo.DEFAULT_DB)
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(title="helogale + FastAPI", lifespan=lifespan)

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(log_hit)])
    async def home(request: Request, db: Db) -> str:
        count = await count_view(db, request.url.path)
        images: list[dict[str, Any]] = await db["images.files"].find({}, {"filename": 1}) \
            .sort("uploadDate", -1).limit(12).to_list()
        return webdemo.home_page("FastAPI", count, images)

    @app.post("/upload")
    async def upload(db: Db, image: Annotated[UploadFile | None, File()] = None
                     ) -> RedirectResponse:
        if image is None or not image.filename or not webdemo.is_image(image.content_type):
            raise HTTPException(400, "choose a PNG, JPEG, GIF or WebP image to upload")
        data = await image.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            raise HTTPException(413, "images up to 16 MiB")
        await AsyncGridFSBucket(db, "images").upload_from_stream(
            image.filename, data, content_type=image.content_type)
        return RedirectResponse("/", status_code=303)

    @app.get("/images/{image_id}")
    async def image(db: Db, image_id: str) -> Response:
        try:
            found = await AsyncGridFSBucket(db, "images").open_download_stream(
                ObjectId(image_id))
        except (InvalidId, TypeError, NoFile):
            raise HTTPException(404) from None
        return Response(await found.read(), media_type=found.content_type)

    return app

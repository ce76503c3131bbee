"""What the Django, Pyramid and Flask examples share: one helogale client per process (made
lazily, after any fork), the seed book's demos (an atomic page-view counter, a per-request hit
log, images in GridFS), the page they render, and ``serve``, which runs an app against
``$HELOGALE_URI`` or, if it is unset, a local sharded cluster it starts and stops.

The frameworks only glue these to their request objects (``request.db``, ``g.db``); the data
logic is written once, here.
"""

from __future__ import annotations

import argparse
import datetime
import html
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import IO, Any
from wsgiref.simple_server import WSGIServer, make_server

from bson.errors import InvalidId
from bson.objectid import ObjectId

import helogale
from helogale.database import Database
from helogale.gridfs import GridFS, GridOut, NoFile

DEFAULT_DB = "webdemo"
CLIENT_OPTIONS: dict[str, Any] = {"w": "majority"}
"""Every example's client writes with ``w: majority``, said out loud: an acknowledged page view
survives the loss of any minority of a shard's members. (Helogale acknowledges every write only
once a majority has it, whatever ``w`` says; on MongoDB a ``w: 1`` write acknowledged just
before the primary dies can be rolled back.)"""

WSGIApp = Callable[..., Any]


# --- one client per process ------------------------------------------------------------------
class SharedClient:
    """A :class:`helogale.MongoClient` made on first use and shared by every thread of the
    process. A process forked after it was made (a gunicorn or uwsgi worker of a preloaded app)
    gets a client of its own on its first use: the parent's cannot be used there (it raises
    ``InvalidOperation``), and is left alone for the parent."""

    def __init__(self, uri: str, **options: Any) -> None:
        self.uri = uri
        self.options = {**CLIENT_OPTIONS, **options}
        self._client: helogale.MongoClient | None = None
        self._pid = 0
        self._lock = threading.Lock()
        _ALL.add(self)

    def get(self) -> helogale.MongoClient:
        client = self._client
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = helogale.MongoClient(self.uri, **self.options)
                self._pid = os.getpid()
            return self._client

    def database(self, name: str | None = None) -> Database:
        """The database ``name``, or the URI's default one, or :data:`DEFAULT_DB`."""
        client = self.get()
        return client.get_database(name) if name else client.get_default_database(DEFAULT_DB)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


_SHARED: dict[str, SharedClient] = {}
_SHARED_LOCK = threading.Lock()
_ALL: weakref.WeakSet[SharedClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """New locks in a forked child: a lock another thread of the parent held at the fork
    would stay held forever there."""
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    for shared in list(_ALL):
        shared._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def shared_client(uri: str) -> SharedClient:
    """The process's one :class:`SharedClient` for ``uri`` (every app of the process that
    names the same URI shares it)."""
    with _SHARED_LOCK:
        shared = _SHARED.get(uri)
        if shared is None:
            shared = _SHARED[uri] = SharedClient(uri)
        return shared


# --- the book's demos ------------------------------------------------------------------------
def count_view(db: Database, page: str) -> int:
    """Count one view of ``page`` and return the new count: one upserting
    ``find_one_and_update`` (the book's ``find_and_modify(..., new=True, upsert=True)``). The
    counter's key is its ``_id``, so concurrent first views cannot upsert two counters; the
    write is retryable (session id + transaction number), so a retry after a failover is
    applied at most once."""
    doc = db.counters.find_one_and_update(
        {"_id": page}, {"$inc": {"views": 1}}, upsert=True,
        return_document=helogale.ReturnDocument.AFTER)
    return int(doc["views"])


def views(db: Database, page: str) -> int:
    doc = db.counters.find_one({"_id": page})
    return int(doc["views"]) if doc else 0


def log_hit(db: Database, url: str, path: str, framework: str) -> None:
    """One document in ``page_hits`` per request (the book's Pyramid demo)."""
    db.page_hits.insert_one({"timestamp": datetime.datetime.now(datetime.UTC), "url": url,
                             "path": path, "framework": framework})


def hits(db: Database, path: str) -> int:
    """How many requests for ``path`` the hit log holds."""
    return db.page_hits.count_documents({"path": path})


IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""What the upload page takes (served back with that type; never HTML or SVG, which a browser
would run as part of the site)."""


def is_image(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in IMAGE_TYPES


def store_image(db: Database, data: bytes | IO[bytes], filename: str,
                content_type: str) -> ObjectId:
    """Store an uploaded image (one of :data:`IMAGE_TYPES`: check with :func:`is_image`) in
    GridFS (bucket ``images``); returns its id."""
    if not is_image(content_type):
        raise ValueError(f"not an image type this demo stores: {content_type!r}")
    return GridFS(db, "images").put(data, filename=filename, contentType=content_type)


def open_image(db: Database, image_id: str) -> GridOut | None:
    """The stored image ``image_id`` (an ObjectId's hex), or None (no such image)."""
    try:
        return GridFS(db, "images").get(ObjectId(image_id))
    except (InvalidId, TypeError, NoFile):
        return None


def recent_images(db: Database, limit: int = 12) -> list[dict[str, Any]]:
    return list(db["images.files"].find({}, {"filename": 1}).sort("uploadDate", -1)
                .limit(limit))


def home_page(framework: str, count: int, images: list[dict[str, Any]]) -> str:
    """The page every example serves at ``/``: the view count, an upload form, the images."""
    items = "".join(
        f'<li><a href="/images/{d["_id"]}"><img src="/images/{d["_id"]}" height="64" '
        f'alt="{html.escape(str(d.get("filename")))}"></a></li>' for d in images)
    return (f"<!doctype html><title>helogale + {framework}</title>"
            f"<h1>helogale + {framework}</h1>"
            f"<p>This page has been viewed <b id=\"views\">{count}</b> times.</p>"
            '<form method="post" action="/upload" enctype="multipart/form-data">'
            '<input type="file" name="image" accept="image/*"> <button>Upload</button></form>'
            f"<ul>{items}</ul>")


# --- running an example ----------------------------------------------------------------------
def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def helogale_uri() -> Iterator[str]:
    """``$HELOGALE_URI``, or the URI of a local sharded cluster (a config set, two shards of
    three members, two routers, on free ports) started as ``helogale up`` starts one and
    stopped when the block ends."""
    uri = os.environ.get("HELOGALE_URI")
    if uri:
        yield uri
        return
    from node.sharded_cluster import ShardedCluster

    cluster = ShardedCluster(shards=2, members=3, routers=2, wire=False,
                             own_process_group=True)
    _say("HELOGALE_URI is not set: starting a local sharded cluster (2 shards, 2 routers)...")
    cluster.start(progress=_say)  # (stops whatever started if it fails)
    try:
        yield cluster.uri
    finally:
        _say("stopping the cluster...")
        cluster.stop()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(make_app: Callable[[str], WSGIApp], framework: str,
          argv: list[str] | None = None) -> int:
    """``python examples/<framework>/serve.py [--host H] [--port P]``: build the app for the
    URI (see :func:`helogale_uri`) and serve it until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description=f"the helogale + {framework} example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell may start us ignoring it
        signal.signal(signum, interrupt)
    try:
        with helogale_uri() as uri:
            app = make_app(uri)
            with make_server(args.host, args.port, app,
                             server_class=_ThreadingWSGIServer) as httpd:
                _say(f"helogale + {framework} on http://{args.host}:{args.port}/ "
                     f"(database at {uri}); Ctrl-C stops")
                httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0

"""The Flask example: a ``Helogale`` app extension holding the process's one client, the
database on ``g.db`` for each request, and the demos of :mod:`examples.webdemo` (a page-view
counter, a hit log, images in GridFS).

``create_app(uri, db_name)`` is the app factory (``gunicorn 'examples.flask.app:create_app()'``
reads ``$HELOGALE_URI``); the client is made on the first request, so after any fork.
"""

from __future__ import annotations

import os

from flask import Flask, Response, abort, current_app, g, redirect, request

from examples import webdemo
from helogale.database import Database


class Helogale:
    """The Flask extension: ``Helogale(app, uri)`` or ``ext.init_app(app, uri)``; then
    ``get_db()`` (or ``g.db`` after it ran) in a request gives the database."""

    def __init__(self, app: Flask | None = None, uri: str | None = None,
                 db_name: str | None = None) -> None:
        if app is not None:
            self.init_app(app, uri, db_name)

    def init_app(self, app: Flask, uri: str | None = None, db_name: str | None = None) -> None:
        uri = uri or app.config.get("HELOGALE_URI") or os.environ["HELOGALE_URI"]
        app.config["HELOGALE_DB"] = db_name or app.config.get("HELOGALE_DB")
        app.extensions["helogale"] = webdemo.shared_client(uri)
        app.before_request(self._attach)

    @staticmethod
    def _attach() -> None:
        g.db = current_app.extensions["helogale"].database(current_app.config["HELOGALE_DB"])


def get_db() -> Database:
    return g.db  # set by Helogale._attach before every request


def create_app(uri: str | None = None, db_name: str | None = None) -> Flask:
    app = Flask(__name__)
    Helogale(app, uri, db_name)

    @app.get("/")
    def home() -> str:
        db = get_db()
        webdemo.log_hit(db, request.url, request.path, "flask")
        count = webdemo.count_view(db, request.path)
        return webdemo.home_page("Flask", count, webdemo.recent_images(db))

    @app.post("/upload")
    def upload() -> Response:
        image = request.files.get("image")
        if image is None or not image.filename or not webdemo.is_image(image.mimetype):
            abort(400, "choose a PNG, JPEG, GIF or WebP image to upload")
        webdemo.store_image(get_db(), image.stream, image.filename, image.mimetype)
        return redirect("/", 303)

    @app.get("/images/<image_id>")
    def image(image_id: str) -> Response:
        found = webdemo.open_image(get_db(), image_id)
        if found is None:
            abort(404)
        return Response(found.read(), mimetype=found.content_type)

    return app

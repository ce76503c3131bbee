"""The Pyramid example: the process's one client in the registry, the database on each request
as ``request.db`` (``config.add_request_method(..., reify=True)``: made once per request, on
first use), and the demos of :mod:`examples.webdemo` (a page-view counter, a hit log, images in
GridFS).

``make_app(uri, db_name)`` returns the WSGI app; the client is made on the first request that
uses ``request.db``, so after any fork.
"""

from __future__ import annotations

import os
from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound, HTTPSeeOther
from pyramid.request import Request
from pyramid.response import Response

from examples import webdemo
from helogale.database import Database


def _db(request: Request) -> Database:
    settings = request.registry.settings
    return webdemo.shared_client(settings["helogale.uri"]).database(settings["helogale.db"])


def home(request: Request) -> Response:
    webdemo.log_hit(request.db, request.url, request.path, "pyramid")
    count = webdemo.count_view(request.db, request.path)
    return Response(webdemo.home_page("Pyramid", count, webdemo.recent_images(request.db)))


def upload(request: Request) -> Any:
    image = request.POST.get("image")
    if (image is None or not getattr(image, "filename", None)
            or not webdemo.is_image(image.type)):
        return HTTPBadRequest("choose a PNG, JPEG, GIF or WebP image to upload")
    webdemo.store_image(request.db, image.file, image.filename, image.type)
    return HTTPSeeOther("/")


def image(request: Request) -> Any:
    found = webdemo.open_image(request.db, request.matchdict["image_id"])
    if found is None:
        return HTTPNotFound()
    return Response(body=found.read(), content_type=found.content_type)


def make_app(uri: str | None = None, db_name: str | None = None) -> Any:
    settings = {"helogale.uri": uri or os.environ["HELOGALE_URI"], "helogale.db": db_name}
    with Configurator(settings=settings) as config:
        config.add_request_method(_db, "db", reify=True)
        config.add_route("home", "/", request_method="GET")
        config.add_route("upload", "/upload", request_method="POST")
        config.add_route("image", "/images/{image_id}", request_method="GET")
        config.add_view(home, route_name="home")
        config.add_view(upload, route_name="upload")
        config.add_view(image, route_name="image")
        return config.make_wsgi_app()

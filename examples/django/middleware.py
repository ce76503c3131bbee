"""``HelogaleMiddleware``: ``request.db``, the database of the process's one helogale client
(made on the first request, so after any fork of a gunicorn/uwsgi worker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from examples import webdemo


class HelogaleMiddleware:
    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        shared = webdemo.shared_client(settings.HELOGALE_URI)  # connects on first use only
        request.db = shared.database(settings.HELOGALE_DB)
        return self.get_response(request)

"""The Django example's views: the demos of :mod:`examples.webdemo` (a page-view counter, a hit
log, images in GridFS) on ``request.db``. CSRF protection is left out to keep the example
small (a real form would use ``CsrfViewMiddleware`` and ``{% csrf_token %}``)."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.views.decorators.http import require_GET, require_POST

from examples import webdemo


@require_GET
def home(request: Any) -> HttpResponse:
    webdemo.log_hit(request.db, request.build_absolute_uri(), request.path, "django")
    count = webdemo.count_view(request.db, request.path)
    return HttpResponse(webdemo.home_page("Django", count, webdemo.recent_images(request.db)))


@require_POST
def upload(request: Any) -> HttpResponse:
    image = request.FILES.get("image")
    if image is None or not webdemo.is_image(image.content_type):
        return HttpResponseBadRequest("choose a PNG, JPEG, GIF or WebP image to upload")
    webdemo.store_image(request.db, image, image.name, image.content_type)
    response = HttpResponseRedirect("/")
    response.status_code = 303  # See Other: the browser GETs the page again
    return response


@require_GET
def image(request: Any, image_id: str) -> HttpResponse:
    found = webdemo.open_image(request.db, image_id)
    if found is None:
        raise Http404("no such image")
    return HttpResponse(found.read(), content_type=found.content_type)

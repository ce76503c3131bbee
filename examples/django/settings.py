"""Settings of the Django example: no SQL database, no ORM apps; ``HELOGALE_URI`` (from the
environment) and ``HELOGALE_DB`` (None: the URI's database, else ``webdemo``) say where the
data lives, and :class:`examples.django.middleware.HelogaleMiddleware` puts that database on
every request as ``request.db``."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "helogale-example-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
ROOT_URLCONF = "examples.django.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "examples.django.middleware.HelogaleMiddleware",
]
USE_TZ = True
TIME_ZONE = "UTC"
HELOGALE_URI = os.environ.get("HELOGALE_URI", "")
HELOGALE_DB: str | None = None

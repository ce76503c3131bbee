"""The Django, Pyramid and Flask examples (``examples/``) driven through each framework's own
test client against the shared sharded cluster (``sharded`` fixture): the page-view counter,
the hit log, an image uploaded to GridFS and served back, and a burst of requests during which
the primary of the shard holding the example's database is SIGKILLed: no request fails, and
every hit is counted exactly once (counter == successful requests == hit-log entries)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import helogale
from examples import webdemo
from node.local_cluster import free_ports, wait_until
from node.sharded_cluster import ShardedCluster
from tests.web_helpers import failover_burst, tiny_png

pytestmark = pytest.mark.cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = tiny_png()
VIEWS = re.compile(r'id="views">(\d+)<')


class Driver:
    """One framework's test client seen the same way: ``get(path) -> (status, body bytes,
    content type)`` and ``upload(name, data, content_type) -> status``."""

    def __init__(self, get: Callable[[str], tuple[int, bytes, str]],
                 upload: Callable[[str, bytes, str], int]) -> None:
        self.get = get
        self.upload = upload

    def view(self) -> int | None:
        """GET / and return the count it shows (None if it failed)."""
        status, body, _ = self.get("/")
        found = VIEWS.search(body.decode())
        return int(found.group(1)) if status == 200 and found else None


def exercise(cluster: ShardedCluster, db_name: str, framework: str,
             make_driver: Callable[[], Driver]) -> None:
    """The demos through ``make_driver()``, then the failover burst, then the exact count."""
    with helogale.MongoClient(cluster.uri) as client:
        client.drop_database(db_name)
        driver = make_driver()
        assert [driver.view(), driver.view()] == [1, 2]
        assert driver.upload("dot.png", PNG, "image/png") == 303
        assert driver.upload("page.html", b"<script>alert(1)</script>", "text/html") == 400
        status, body, _ = driver.get("/")
        assert status == 200
        ids = re.findall(r'/images/([0-9a-f]{24})"', body.decode())
        assert len(set(ids)) == 1, body
        status, data, content_type = driver.get(f"/images/{ids[0]}")
        assert (status, data, content_type.split(";")[0]) == (200, PNG, "image/png")
        assert driver.get("/images/000000000000000000000000")[0] == 404
        assert driver.get("/images/not-an-id")[0] == 404
        served = 3  # GETs of / so far, each counted and logged once

        shared = webdemo.shared_client(cluster.uri).get()  # the app's one client
        retried = shared.executor.retries
        burst = failover_burst(cluster, db_name, lambda: make_driver().view)
        print(burst.summary(framework),
              f"({shared.executor.retries - retried} operations retried by the client)")
        assert burst.failures == []
        # each request was shown a count of its own: none counted twice, none lost
        assert sorted(burst.results) == list(range(served + 1, served + burst.ok + 1))
        served += burst.ok
        db = client[db_name]
        assert webdemo.views(db, "/") == served
        assert webdemo.hits(db, "/") == served
        assert db.page_hits.count_documents({"framework": framework}) == served


def test_flask_example(sharded: ShardedCluster) -> None:
    from examples.flask.app import create_app

    app = create_app(sharded.uri, "web_flask")
    app.testing = True  # an exception in a view reaches the test, not a 500 page

    def make_driver() -> Driver:
        client = app.test_client()

        def get(path: str) -> tuple[int, bytes, str]:
            r = client.get(path)
            return r.status_code, r.data, r.content_type or ""

        def upload(name: str, data: bytes, content_type: str) -> int:
            import io

            r = client.post("/upload", data={"image": (io.BytesIO(data), name, content_type)},
                            content_type="multipart/form-data")
            return r.status_code

        return Driver(get, upload)

    exercise(sharded, "web_flask", "flask", make_driver)


def test_pyramid_example(sharded: ShardedCluster) -> None:
    from webtest import TestApp

    from examples.pyramid.app import make_app

    wsgi = make_app(sharded.uri, "web_pyramid")

    def make_driver() -> Driver:
        app = TestApp(wsgi)

        def get(path: str) -> tuple[int, bytes, str]:
            r = app.get(path, expect_errors=True)
            return r.status_int, r.body, r.content_type or ""

        def upload(name: str, data: bytes, content_type: str) -> int:
            r = app.post("/upload", upload_files=[("image", name, data, content_type)],
                         expect_errors=True)
            return r.status_int

        return Driver(get, upload)

    exercise(sharded, "web_pyramid", "pyramid", make_driver)


@contextmanager
def django_settings(**overrides: Any) -> Iterator[None]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django.settings")
    import django
    from django.test.utils import override_settings

    django.setup()
    with override_settings(**overrides):
        yield


def test_django_example(sharded: ShardedCluster) -> None:
    with django_settings(HELOGALE_URI=sharded.uri, HELOGALE_DB="web_django"):
        from django.core.files.uploadedfile import SimpleUploadedFile
        from django.test import Client

        def make_driver() -> Driver:
            client = Client()

            def get(path: str) -> tuple[int, bytes, str]:
                r = client.get(path)
                return r.status_code, r.content, r.get("Content-Type", "")

            def upload(name: str, data: bytes, content_type: str) -> int:
                r = client.post("/upload", {"image": SimpleUploadedFile(name, data,
                                                                       content_type)})
                return r.status_code

            return Driver(get, upload)

        exercise(sharded, "web_django", "django", make_driver)


@pytest.mark.parametrize("framework", ["flask", "pyramid", "django"])
def test_each_example_runs_with_the_one_command_of_its_readme(
        sharded: ShardedCluster, framework: str) -> None:
    """``python examples/<framework>/serve.py`` with ``$HELOGALE_URI`` set (the shared cluster):
    it serves the page, counts each view, and exits 0 on Ctrl-C (SIGINT)."""
    with open(os.path.join(ROOT, "examples", framework, "README.md")) as f:
        readme = f.read()
    assert f"python examples/{framework}/serve.py\n" in readme
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        [sys.executable, f"examples/{framework}/serve.py", "--port", str(port)], cwd=ROOT,
        env={**os.environ, "HELOGALE_URI": sharded.uri}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def page() -> int | None:
        try:
            with opener.open(f"http://127.0.0.1:{port}/", timeout=30) as reply:
                found = VIEWS.search(reply.read().decode())
        except OSError:
            return None
        return int(found.group(1)) if found else None

    try:
        first = wait_until(page, 60, f"the {framework} example to serve its page")
        assert page() == first + 1
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output.decode()
        assert f"on http://127.0.0.1:{port}/" in output.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

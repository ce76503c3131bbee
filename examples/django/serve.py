"""``python examples/django/serve.py``: the Django example against ``$HELOGALE_URI``, or a local
sharded cluster started (and stopped on exit) for it."""

import os
import sys
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parents[2])  # the repository root, not this folder

from examples.webdemo import serve  # noqa: E402


def make_app(uri: str) -> Any:
    os.environ["HELOGALE_URI"] = uri  # read by the settings, which load with the app
    from examples.django.wsgi import application

    return application


if __name__ == "__main__":
    sys.exit(serve(make_app, "Django", sys.argv[1:]))

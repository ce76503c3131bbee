"""``python examples/pyramid/serve.py``: the Pyramid example against ``$HELOGALE_URI``, or a local
sharded cluster started (and stopped on exit) for it."""

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[2])  # the repository root, not this folder

from examples.pyramid.app import make_app  # noqa: E402
from examples.webdemo import serve  # noqa: E402

if __name__ == "__main__":
    sys.exit(serve(make_app, "Pyramid", sys.argv[1:]))

"""``python examples/flask/serve.py``: the Flask example against ``$HELOGALE_URI``, or a local
sharded cluster started (and stopped on exit) for it."""

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[2])  # the repository root, not this folder

from examples.flask.app import create_app  # noqa: E402
from examples.webdemo import serve  # noqa: E402

if __name__ == "__main__":
    sys.exit(serve(create_app, "Flask", sys.argv[1:]))

"""``python examples/fastapi/serve.py [--host H] [--port P]``: the FastAPI example (on uvicorn)
against ``$HELOGALE_URI``, or a local sharded cluster started (and stopped on exit) for it."""

import argparse
import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[2])  # the repository root, not this folder

import uvicorn  # noqa: E402

from examples.fastapi.app import create_app  # noqa: E402
from examples.webdemo import helogale_uri  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="the helogale + FastAPI example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        with helogale_uri() as uri:
            print(f"helogale + FastAPI on http://{args.host}:{args.port}/ (database at {uri}); "
                  "Ctrl-C stops", file=sys.stderr, flush=True)
            uvicorn.run(create_app(uri), host=args.host, port=args.port, log_level="warning")
    except KeyboardInterrupt:  # uvicorn raises the signal again once it has shut down
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

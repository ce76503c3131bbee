"""Run the FastAPI example: ``python examples/fastapi/serve.py [--host H] [--port 8000]``.

It connects to ``$HELOGALE_URI``; when that is not set it first starts a local sharded
cluster (config servers, two shards of three members, two routers, as ``helogale up`` does)
and stops it again when the server exits (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # this example, and the repository


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()

    import uvicorn
    from helogale_fastapi import create_app

    uri = os.environ.get("HELOGALE_URI")
    cluster = None
    if not uri:
        from node.sharded_cluster import ShardedCluster

        print("HELOGALE_URI is not set: starting a local sharded cluster (11 processes)...",
              file=sys.stderr, flush=True)
        cluster = ShardedCluster(2, members=3, routers=2, wire=False, own_process_group=True)
        cluster.start(timeout=120, progress=lambda text: print(text, file=sys.stderr,
                                                               flush=True))
        uri = cluster.uri
    try:
        print(f"connecting to {uri}; open http://{args.host}:{args.port}/", file=sys.stderr,
              flush=True)
        uvicorn.run(create_app(uri), host=args.host, port=args.port)
    finally:
        if cluster is not None:
            print("stopping the cluster...", file=sys.stderr, flush=True)
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``helogale`` command line: ``helogale demo`` (engine tour) and ``helogale up`` (a local
replica set of member processes; see :func:`node.local_cluster.run_up`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="helogale", description="Helogale document database")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run a short tour of the document engine, in memory")
    up = sub.add_parser("up", help="start a local replica set and print its URI; Ctrl-C stops")
    up.add_argument("--data", help="data directory (default: a temporary one)")
    up.add_argument("--port", type=int, default=27027,
                    help="first port: gRPC ports, then Raft ports, then wire ports (27027)")
    up.add_argument("--members", type=int, default=3, help="number of members (default 3)")
    up.add_argument("--wire", dest="wire", action="store_true", default=True,
                    help="serve the MongoDB wire protocol too and print a mongodb:// URI (default)")
    up.add_argument("--no-wire", dest="wire", action="store_false",
                    help="serve gRPC only (the helogale:// URI)")
    up.add_argument("--no-demo", dest="demo", action="store_false",
                    help="skip the few demo writes and reads run after start-up")
    args = parser.parse_args(argv)
    if args.command == "up":
        from node.local_cluster import run_up

        return run_up(args.data, args.port, args.members, args.wire, args.demo)
    if args.command == "demo":
        from node.engine.demo import run_demo

        run_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``helogale`` command line: ``helogale demo`` (engine tour) and ``helogale up`` (a local
sharded cluster, or a replica set, of real processes; see :mod:`node.up`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="helogale", description="Helogale document database")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run a short tour of the document engine, in memory")
    up = sub.add_parser("up", help="start a local sharded cluster (or, with --shards 0, a "
                        "replica set) and print its URIs; Ctrl-C stops")
    up.add_argument("--data", help="data directory, kept for the next `up` (default: a "
                    "temporary one, removed on exit)")
    up.add_argument("--port", type=int, default=27027,
                    help="routers' first gRPC port (27027); their wire ports start 10 below "
                    "(27017), the sets' ports 100 above; with --shards 0: the members' gRPC "
                    "ports, then Raft ports, then wire ports")
    up.add_argument("--shards", type=int, default=2,
                    help="number of shards, each a replica set (default 2); 0: one replica set")
    up.add_argument("--routers", type=int, default=2, help="number of routers (default 2)")
    up.add_argument("--members", type=int, default=3,
                    help="members of each replica set (default 3)")
    up.add_argument("--wire", dest="wire", action="store_true", default=True,
                    help="serve the MongoDB wire protocol too and print a mongodb:// URI (default)")
    up.add_argument("--no-wire", dest="wire", action="store_false",
                    help="serve gRPC only (the helogale:// URI)")
    up.add_argument("--no-demo", dest="demo", action="store_false",
                    help="skip the demo run after start-up")
    up.add_argument("--auth", action="store_true",
                    help="users and roles: a first root user; the URIs carry its password")
    up.add_argument("--tls", action="store_true",
                    help="TLS on every port, with a throwaway CA (the URIs name its file)")
    args = parser.parse_args(argv)
    if args.command == "up":
        if args.shards < 0 or args.members < 1 or not 1 <= args.routers <= 10:
            parser.error("--shards must be 0 or more, --members 1 or more, --routers 1 to 10")
        from node.up import run_up

        return run_up(args.data, args.port, args.members, args.wire, args.demo,
                      shards=args.shards, routers=args.routers, auth=args.auth, tls=args.tls)
    if args.command == "demo":
        from node.engine.demo import run_demo

        run_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``helogale`` command line: ``helogale demo`` (engine tour) and ``helogale up`` (a local
sharded cluster, or a replica set, of real processes; see :mod:`node.up`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


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
    up.add_argument("--chunk-size-mb", type=int,
                    help="sharded: the chunk size in MiB, 1 to 1024 (a new cluster gets 4, a "
                    "restarted one keeps its own)")
    up.add_argument("--no-demo", dest="demo", action="store_false",
                    help="skip the demo run after start-up")
    up.add_argument("--no-restart", dest="restart", action="store_false",
                    help="do not restart a member or router that dies (default: restart it "
                    "after a backoff and print one line)")
    from helogale import status as _status

    _status.add_arguments(sub.add_parser(
        "status", help="a cluster on one screen: routers, sets, members, lag, chunks, "
        "balancer, migrations"))
    up.add_argument("--no-metrics", dest="metrics", action="store_false",
                    help="serve no Prometheus metrics (default: at each gRPC port + 1000)")
    up.add_argument("--auth", action="store_true",
                    help="users and roles: a first root user; the URIs carry its password")
    up.add_argument("--tls", action="store_true",
                    help="TLS on every port, with a throwaway CA (the URIs name its file)")
    _add_admin_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "status":
        return _status.run(args)
    if args.command == "up":
        if args.shards < 0 or args.members < 1 or not 1 <= args.routers <= 10:
            parser.error("--shards must be 0 or more, --members 1 or more, --routers 1 to 10")
        if args.chunk_size_mb is not None and not 1 <= args.chunk_size_mb <= 1024:
            parser.error("--chunk-size-mb must be 1 to 1024")
        from node.up import run_up

        return run_up(args.data, args.port, args.members, args.wire, args.demo,
                      shards=args.shards, routers=args.routers, restart=args.restart,
                      metrics=args.metrics, chunk_size_mb=args.chunk_size_mb,
                      auth=args.auth, tls=args.tls)
    if args.command in ("ping", "add-shard"):
        return _run_admin_command(args)
    if args.command == "demo":
        from node.engine.demo import run_demo

        run_demo()
    return 0


def _add_admin_commands(sub: Any) -> None:
    """``helogale ping`` and ``helogale add-shard`` (:mod:`node.cluster_admin`)."""
    ping = sub.add_parser("ping", help="exit 0 if the member or router at HOST:PORT answers "
                          "hello (healthchecks), 1 if not")
    ping.add_argument("address", metavar="HOST:PORT", help="its gRPC address")
    ping.add_argument("--timeout", type=float, default=2.0, help="seconds to wait (2)")
    ping.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    add = sub.add_parser("add-shard", help="add replica sets as shards through a router, "
                         "retrying while the cluster starts")
    add.add_argument("--router", action="append", required=True, metavar="HOST:PORT",
                     help="a router's gRPC address (repeat for more)")
    add.add_argument("--timeout", type=float, default=120.0,
                     help="seconds to keep retrying (120)")
    add.add_argument("specs", nargs="+", metavar="SET/HOST:PORT,...",
                     help="a replica set's name and its members' gRPC addresses")


def _run_admin_command(args: argparse.Namespace) -> int:
    from node import cluster_admin

    if args.command == "ping":
        ok, text = cluster_admin.ping(args.address, args.timeout)
        if not args.quiet:
            print(text, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    ok = cluster_admin.add_shards(args.router, args.specs, timeout=args.timeout, out=sys.stdout)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

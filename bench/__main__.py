"""``python -m bench <subcommand> [options]``: dispatch to one benchmark module.

Each subcommand is a module of this package with ``main(argv: list[str]) -> int``; adding a
benchmark is one line in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, str] = {
    "client": "bench.client",  # the threaded client vs the asyncio client, inserts/s
    "engine": "bench.engine",  # document engine vs montydb (LMDB) and mongomock
    "raft": "bench.raft",  # 3-member Raft over gRPC vs etcd and pysyncobj
    "replset": "bench.replset",  # 3-member replica set inserts and failover vs etcd
    "regex": "bench.regex",  # $regex on RE2 vs Python re, in the engine and pathological
    "sharded": "bench.sharded",  # the router's overhead: replica set vs router to 1 and 2 shards
    "trace": "bench.trace",  # one write's hops across threads and processes (raft/trace.py)
}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark named by the first argument with the remaining arguments."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in SUBCOMMANDS:
        names = "|".join(SUBCOMMANDS)
        print(f"usage: python -m bench {{{names}}} [options]", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    module = importlib.import_module(SUBCOMMANDS[args[0]])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())

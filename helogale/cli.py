"""The ``helogale`` command line: ``helogale demo`` (engine tour) and, later, ``helogale up``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="helogale", description="Helogale document database")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run a short tour of the document engine, in memory")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from node.engine.demo import run_demo

        run_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())

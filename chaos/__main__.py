"""``python -m chaos run --workload register --time 60 --seed 7 [--json PATH] [--png PATH]``.

Exits 1 when a checker finds an anomaly, 0 when the history is valid.
"""

from __future__ import annotations

import argparse
import json
import sys

from chaos.runner import RunConfig, run_and_report
from chaos.schedule import FAULT_GROUPS
from chaos.workloads import WORKLOADS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one workload under faults and check its history")
    r.add_argument("--workload", choices=sorted(WORKLOADS), default="register")
    r.add_argument("--time", type=float, default=60.0, help="seconds of workload")
    r.add_argument("--seed", type=int, default=7)
    r.add_argument("--faults", default="kill,pause,partition",
                   help=f"comma-separated kinds or groups: {', '.join(FAULT_GROUPS)}")
    r.add_argument("--members", type=int, default=3)
    r.add_argument("--processes", type=int, default=5, help="concurrent client processes")
    r.add_argument("--json", dest="json_path", help="write the JSON summary here")
    r.add_argument("--png", dest="png_path", help="write the timeline picture here")
    r.add_argument("--node-arg", action="append", default=[],
                   help="extra flag for every member (e.g. a test-only unsafe switch)")
    r.add_argument("--backend", choices=["local", "containers"], default="local",
                   help="local processes, or the compose cluster in Docker containers "
                   "(build the image first: bash compose/build-images.sh)")
    r.add_argument("--image", default="helogale:latest", help="image for --backend containers")
    r.add_argument("--keep", action="store_true",
                   help="--backend containers: leave the containers up afterwards")
    args = parser.parse_args(argv)
    config = RunConfig(
        workload=args.workload, time=args.time, seed=args.seed,
        faults=[f for f in args.faults.split(",") if f], members=args.members,
        processes=args.processes, node_args=args.node_arg, backend=args.backend,
        backend_options={"image": args.image, "keep": args.keep},
    )
    report = run_and_report(config, args.json_path, args.png_path)
    summary = report.summary()
    summary.pop("anomaly_details")
    summary.pop("fault_windows")
    print(json.dumps(summary, indent=2))
    if report.anomalies:
        print(f"INVALID: {len(report.anomalies)} anomalies", file=sys.stderr)
        for anomaly in report.anomalies[:5]:
            print(json.dumps(anomaly, default=str), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run reports: the JSON summary and the timeline picture.

The summary counts faults by kind and operations by outcome and carries the checker's verdict
(acknowledged, lost, duplicated, anomalies with their history slices, recovery times). The
timeline PNG shows throughput and latency over time with the fault windows shaded, so a person
can see at a glance what each fault did to the clients.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chaos.history import Operation


@dataclass
class FaultWindow:
    kind: str  # "kill", "pause", "partition", "restart-all", ...
    start: float
    end: float
    detail: str = ""


@dataclass
class RunReport:
    workload: str
    seed: int
    duration: float
    faults: list[FaultWindow]
    operations: list[Operation]
    acknowledged: int
    lost: int
    duplicated: int
    anomalies: list[dict[str, Any]]
    recovery_times: list[float] = field(default_factory=list)
    undecided: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    """Backend figures (the container backend: chunk moves) merged into the summary."""

    def summary(self) -> dict[str, Any]:
        ops = Counter(op.type for op in self.operations)
        return {
            "workload": self.workload,
            "seed": self.seed,
            "duration_s": round(self.duration, 3),
            "faults": dict(Counter(f.kind for f in self.faults)),
            "ops": {k: ops.get(k, 0) for k in ("ok", "fail", "info")},
            "acknowledged": self.acknowledged,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "anomalies": len(self.anomalies),
            "undecided_keys": self.undecided,
            "recovery_times_s": [round(t, 3) for t in self.recovery_times],
            "valid": not self.anomalies,
            "anomaly_details": self.anomalies[:20],
            "fault_windows": [
                {"kind": f.kind, "start": round(f.start, 3), "end": round(f.end, 3), "detail": f.detail}
                for f in self.faults
            ],
            **self.extra,
        }

    def write_json(self, path: str) -> None:
        with open(path, "w") as fh:
            json.dump(self.summary(), fh, indent=2, default=str)
            fh.write("\n")

    def write_timeline(self, path: str, bin_s: float = 1.0) -> None:
        """Throughput (per outcome) and latency over time, fault windows shaded."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        end = max(self.duration, 1.0)
        bins = max(1, math.ceil(end / bin_s))
        counts = {t: [0] * bins for t in ("ok", "fail", "info")}
        for op in self.operations:
            t = op.end if not math.isinf(op.end) else op.start
            counts[op.type][min(bins - 1, int(t / bin_s))] += 1
        xs = [i * bin_s for i in range(bins)]
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
        colours = {"ok": "tab:green", "fail": "tab:orange", "info": "tab:red"}
        for kind, ys in counts.items():
            top.step(xs, [y / bin_s for y in ys], where="post", label=kind, color=colours[kind])
        top.set_ylabel("ops/s")
        top.legend(loc="upper right")
        done = [op for op in self.operations if op.type == "ok"]
        bottom.scatter([op.end for op in done], [1000 * (op.end - op.start) for op in done], s=2,
                       color="tab:blue")
        bottom.set_yscale("log")
        bottom.set_ylabel("latency (ms)")
        bottom.set_xlabel("seconds")
        palette = {"kill": "red", "pause": "purple", "partition": "orange", "restart-all": "black"}
        label_each = len(self.faults) <= 20  # past that, a legend reads better than labels
        for fault in self.faults:
            for ax in (top, bottom):
                ax.axvspan(fault.start, fault.end, alpha=0.15, color=palette.get(fault.kind, "grey"))
            if label_each:
                top.text(fault.start, top.get_ylim()[1] * 0.95, fault.kind, fontsize=7, va="top")
        if not label_each:
            from matplotlib.patches import Patch

            kinds = sorted({f.kind for f in self.faults})
            bottom.legend(handles=[Patch(color=palette.get(k, "grey"), alpha=0.3, label=k)
                                   for k in kinds], loc="upper right", fontsize=7)
        verdict = "valid" if not self.anomalies else f"{len(self.anomalies)} anomalies"
        fig.suptitle(f"{self.workload} seed={self.seed}: {verdict}, "
                     f"{self.acknowledged} acknowledged, {self.lost} lost")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)

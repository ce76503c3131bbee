"""``helogale status`` as text: the status document of :mod:`helogale.status` drawn as the
tables an operator reads (routers, then each replica set's members, collections, balancer,
migrations). Pure: a document in, a string out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def size_text(n: int | None) -> str:
    """Bytes as people read them: ``0 B``, ``12.3 KiB``, ``4.0 MiB``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def lag_text(member: Mapping[str, Any]) -> str:
    if member.get("state") == "PRIMARY":
        return "-"
    entries = member.get("lagEntries")
    if entries is None:
        return "?"
    secs = member.get("lagSecs")
    return f"{entries} ({secs:.1f}s)" if secs is not None else f"{entries} (?s)"


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def _opt(v: Any) -> str:
    return "-" if v is None else str(v)


def render(status: Mapping[str, Any]) -> str:
    lines = [f"helogale {status['kind']} cluster at {status['time']}"]
    if status["kind"] == "sharded":
        lines.append("")
        lines.append("routers")
        if not status["routers"]:
            lines.append("  (none registered)")
        rows = [["HOST", "STATUS", "LAST PING", "UPTIME"]]
        for r in status["routers"]:
            rows.append([r["host"], "up" if r["up"] else "DOWN",
                         f"{r['pingAgeSecs']}s ago" if r.get("pingAgeSecs") is not None else "-",
                         f"{r['uptimeSecs']}s" if r.get("uptimeSecs") is not None else "-"])
        if status["routers"]:
            lines += table(rows)
    for s in status["sets"]:
        lines.append("")
        title = {"config": "config set", "shard": "shard", "replicaSet": "replica set"}[s["role"]]
        head = f"{title} {s['name']}  term {_opt(s.get('term'))}  primary {_opt(s.get('primary'))}"
        if s.get("lastElection"):
            head += f"  last election {s['lastElection']}"
        lines.append(head)
        rows = [["MEMBER", "STATE", "TERM", "HEALTH", "APPLIED", "COMMIT", "LAG"]]
        for m in s["members"]:
            rows.append([m["host"], m["state"], _opt(m.get("term")), str(m.get("health", 0)),
                         _opt(m.get("appliedIndex")), _opt(m.get("commitIndex")), lag_text(m)])
        lines += table(rows)
    if status.get("collections"):
        lines.append("")
        lines.append("sharded collections")
        rows = [["NAMESPACE", "SHARD", "CHUNKS", "DOCS", "DATA", "JUMBO"]]
        for c in status["collections"]:
            shards = sorted(set(c["chunks"]) | set(c["dataSize"]))
            for i, shard in enumerate(shards):
                jumbo = sum(1 for j in c["jumbo"] if j["shard"] == shard)
                rows.append([c["ns"] if i == 0 else "", shard, str(c["chunks"].get(shard, 0)),
                             _opt(c["count"].get(shard)), size_text(c["dataSize"].get(shard)),
                             str(jumbo)])
        lines += table(rows)
    b = status.get("balancer")
    if b is not None:
        lines.append("")
        state = "in a round" if b.get("inRound") else "idle"
        lines.append(f"balancer  mode {b.get('mode')}, {state}, {_opt(b.get('rounds'))} rounds, "
                     f"{_opt(b.get('chunksMoved'))} chunks moved")
    if status["kind"] == "sharded":
        lines.append("")
        lines.append("migrations")
        if not status["migrations"]:
            lines.append("  (none running)")
        for m in status["migrations"]:
            lines.append(f"  {m.get('ns')}  {m['from']} -> {m.get('to')}  phase {m.get('phase')}"
                         f"  docs cloned {m.get('docsCloned', 0)}  mods sent "
                         f"{m.get('modsSent', 0)}")
    return "\n".join(lines) + "\n"

"""``currentOp``, ``killOp`` and ``top``: the running operations of this process and the time
spent per namespace (the dispatcher's :class:`~node.ops.hook.OpsHook` keeps both).

``currentOp`` lists the commands running now and the long background work of the process
(:data:`node.ops.current.TASKS`: snapshot transfers, migrations, index builds...), filtered
by the query language over the fields MongoDB shows (``{op: "query", ns: "db.c"}``);
``killOp {op: opid}`` marks one killed (a read stops at its next interrupt point with
Interrupted, 11601; a write that was proposed still applies).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import Int64

from node.commands.context import RequestContext
from node.engine.errors import MongoError
from node.engine.matcher import Matcher
from node.ops.current import TASKS

_NOT_FILTER = frozenset({"currentOp", "$all", "$ownOps", "$db", "lsid", "$readPreference",
                         "$clusterTime", "comment", "shardVersion", "$local"})


def op_filter(cmd: Mapping[str, Any]) -> Matcher | None:
    """The query over op documents that a ``currentOp`` command carries (None: all)."""
    query = {k: v for k, v in cmd.items() if k not in _NOT_FILTER}
    return Matcher(query) if query else None


def local_ops(svc: Any, cmd: Mapping[str, Any], ctx: RequestContext) -> list[dict[str, Any]]:
    """This process's ops (commands and tasks) as ``currentOp`` shows them, filtered."""
    docs = [o.describe() for o in (*svc.ops.registry.ops(), *TASKS.ops())]
    if cmd.get("$ownOps"):
        docs = [d for d in docs if d.get("connectionId") == ctx.connection_id]
    matcher = op_filter(cmd)
    if matcher is not None:
        docs = [d for d in docs if matcher.matches(d)]
    return sorted(docs, key=lambda d: str(d["opid"]))


def current_op(svc: Any, db: str, cmd: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any]:
    return {"inprog": local_ops(svc, cmd, ctx)}


def opid_arg(cmd: Mapping[str, Any]) -> int | str:
    opid = cmd.get("op")
    if isinstance(opid, bool) or not isinstance(opid, int | float | str):
        raise MongoError(2, "killOp needs op: the opid of a running operation",
                         code_name="BadValue")
    if isinstance(opid, float):
        if not opid.is_integer():
            raise MongoError(2, f"invalid op: {opid}", code_name="BadValue")
        opid = int(opid)
    return opid


def kill_local(svc: Any, opid: int | str) -> bool:
    if isinstance(opid, str):
        if not opid.isdigit():
            raise MongoError(2, f"invalid op: {opid!r}", code_name="BadValue")
        opid = int(opid)
    return svc.ops.registry.kill(opid) or TASKS.kill(opid)


def kill_op(svc: Any, db: str, cmd: Mapping[str, Any], ctx: RequestContext
            ) -> dict[str, Any]:
    found = kill_local(svc, opid_arg(cmd))
    return {"info": "attempting to kill op" if found else "no such op", "found": found}


def top(svc: Any, db: str, cmd: Mapping[str, Any], ctx: RequestContext) -> dict[str, Any]:
    return {"totals": {"note": "all times in microseconds", **svc.ops.stats.top_doc()}}


def mem_section() -> dict[str, Any]:
    """``mem``: resident and virtual size in MiB (from /proc, else getrusage)."""
    bits = 64
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        resident = int(fields["VmRSS"].split()[0]) // 1024
        virtual = int(fields["VmSize"].split()[0]) // 1024
    except (OSError, KeyError, ValueError):
        import resource

        resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        virtual = resident
    return {"bits": bits, "resident": resident, "virtual": virtual, "supported": True}


def connections_section(svc: Any) -> dict[str, Any]:
    """``connections`` summed over the transports that registered a source."""
    current = total = 0
    for source in svc.ops.connection_sources:
        counts = source()
        current += int(counts.get("current", 0))
        total += int(counts.get("totalCreated", 0))
    return {"current": current, "available": max(0, 1000 - current),
            "totalCreated": Int64(total), "active": len(svc.ops.registry)}


def common_sections(svc: Any) -> dict[str, Any]:
    """What every process's ``serverStatus`` carries: connections, opcounters, opLatencies,
    mem and the command counts (``metrics.commands.<name>.{total,failed}``)."""
    outcomes, _ = svc.ops.stats.snapshot()
    commands: dict[str, dict[str, Int64]] = {}
    for (name, outcome), n in sorted(outcomes.items()):
        row = commands.setdefault(name, {"total": Int64(0), "failed": Int64(0)})
        row["total"] = Int64(row["total"] + n)
        if outcome != "ok":
            row["failed"] = Int64(row["failed"] + n)
    out: dict[str, Any] = {} if svc.ops.metrics_port is None else {
        "metricsPort": svc.ops.metrics_port}
    return {
        **out,
        "connections": connections_section(svc),
        "opcounters": svc.ops.stats.opcounters_doc(),
        "opLatencies": svc.ops.stats.op_latencies_doc(),
        "mem": mem_section(),
        "commands": commands,
        "slowOperations": Int64(svc.ops.stats.slow_ops),
    }

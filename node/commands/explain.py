"""``explain``: ``{explain: {find | count | distinct ...}, verbosity}`` answered by the planner.

A read (no log entry): the member checks the node may serve the read, then
:meth:`node.engine.planner.Planner.explain` plans (and, unless ``verbosity: "queryPlanner"``,
runs) the query in one read snapshot. The reply is shaped like MongoDB's: ``queryPlanner``
(``namespace``, ``parsedQuery``, ``winningPlan``, ``rejectedPlans``), ``executionStats`` for
``executionStats`` / ``allPlansExecution`` (the default, as in MongoDB), ``command``,
``explainVersion``, ``ok``. A missing collection explains as MongoDB's ``EOF`` stage.

* ``find``: ``filter, sort, skip, limit, projection, hint``; a projection adds a
  ``PROJECTION_SIMPLE`` / ``PROJECTION_DEFAULT`` stage on top.
* ``count``: ``query, skip, limit, hint`` under a ``COUNT`` stage (``nCounted``).
* ``distinct``: ``key, query``: the plan of the query that feeds the distinct.

``allPlansExecution`` lists the rejected plans' stage trees without per-plan counters (the
planner keeps counters for the winning plan only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from node.commands import requests
from node.commands.args import collection_name
from node.commands.context import RequestContext
from node.engine.errors import FAILED_TO_PARSE, MongoError

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices

VERBOSITIES = ("queryPlanner", "executionStats", "allPlansExecution")
EXPLAINABLE = ("find", "count", "distinct")
COMMAND_NOT_SUPPORTED = 115


def explain(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
            ) -> dict[str, Any]:
    """Handler of ``explain``."""
    inner = cmd.get("explain")
    if not isinstance(inner, Mapping) or not inner:
        raise MongoError(FAILED_TO_PARSE, "explain command requires a nested object")
    verbosity = cmd.get("verbosity", "allPlansExecution")
    if verbosity not in VERBOSITIES:
        raise MongoError(FAILED_TO_PARSE, "verbosity string must be one of "
                         "{'queryPlanner', 'executionStats', 'allPlansExecution'}")
    name = next(iter(inner))
    if name not in EXPLAINABLE:
        if name in node.commands:
            raise MongoError(COMMAND_NOT_SUPPORTED, f"Explain for the command '{name}' is "
                             "not supported", code_name="CommandNotSupported")
        raise MongoError(59, f"Explain failed due to unknown command: {name}",
                         code_name="CommandNotFound")
    coll = collection_name(inner, name)
    query = _query_of(name, db, inner)
    node.member.check_readable(cmd, ctx)
    out = _plan(node.engine, db, coll, query, verbosity)
    if name == "find" and query["projection"]:
        _add_projection(out, query["projection"])
    elif name == "count":
        _add_count(out)
    if verbosity == "allPlansExecution" and "executionStats" in out:
        out["executionStats"]["allPlansExecution"] = [
            {"executionStages": plan} for plan in out["queryPlanner"]["rejectedPlans"]]
    out["command"] = {**dict(inner), "$db": db}
    out["explainVersion"] = "1"
    out["ok"] = 1.0
    return out


def _query_of(name: str, db: str, inner: Mapping[str, Any]) -> dict[str, Any]:
    """filter/sort/skip/limit/projection/hint of the explained command, parsed as it is."""
    if name == "find":
        find = requests.parse_find(db, inner)
        return {"filter": find.filter, "sort": find.sort, "skip": find.skip,
                "limit": find.limit, "projection": find.projection, "hint": find.hint}
    if name == "count":
        count = requests.parse_count(db, inner)
        return {"filter": count.query, "sort": None, "skip": count.skip, "limit": count.limit,
                "projection": None, "hint": count.hint}
    distinct = requests.parse_distinct(db, inner)
    return {"filter": distinct.query, "sort": None, "skip": 0, "limit": 0, "projection": None,
            "hint": None}


def _plan(engine: Any, db: str, coll: str, query: Mapping[str, Any], verbosity: str
          ) -> dict[str, Any]:
    ns = f"{db}.{coll}"
    planner = engine.planner
    if planner is None or engine.catalog_entry(db, coll) is None:
        return _eof(ns, query["filter"], verbosity)
    with engine.store.read() as txn:
        owned = engine.ownership.owned(txn, ns) if engine.ownership is not None else None
        return dict(planner.explain(txn, ns, query["filter"], sort=query["sort"],
                                    skip=query["skip"], limit=query["limit"],
                                    hint=query["hint"], verbosity=verbosity,
                                    owned=owned.contains if owned is not None else None))


def _eof(ns: str, filt: Mapping[str, Any], verbosity: str) -> dict[str, Any]:
    """MongoDB's answer for a collection that does not exist: the ``EOF`` stage."""
    out: dict[str, Any] = {"queryPlanner": {
        "plannerVersion": 1, "namespace": ns, "parsedQuery": dict(filt),
        "winningPlan": {"stage": "EOF"}, "rejectedPlans": []}}
    if verbosity != "queryPlanner":
        out["executionStats"] = {
            "executionSuccess": True, "nReturned": 0, "totalKeysExamined": 0,
            "totalDocsExamined": 0, "executionStages": {"stage": "EOF", "nReturned": 0}}
    return out


def _projection_stage(projection: Mapping[str, Any]) -> str:
    simple = all(isinstance(v, bool | int | float) and "." not in k and not k.startswith("$")
                 for k, v in projection.items())
    return "PROJECTION_SIMPLE" if simple else "PROJECTION_DEFAULT"


def _add_projection(out: dict[str, Any], projection: Mapping[str, Any]) -> None:
    stage = _projection_stage(projection)
    planner = out["queryPlanner"]
    planner["winningPlan"] = {"stage": stage, "transformBy": dict(projection),
                              "inputStage": planner["winningPlan"]}
    stats = out.get("executionStats")
    if stats is not None:
        stats["executionStages"] = {"stage": stage, "nReturned": stats["nReturned"],
                                    "transformBy": dict(projection),
                                    "inputStage": stats["executionStages"]}


def _add_count(out: dict[str, Any]) -> None:
    """``COUNT`` on top; as in MongoDB the count returns no documents (``nReturned: 0``) and
    says how many it counted (``nCounted``)."""
    planner = out["queryPlanner"]
    planner["winningPlan"] = {"stage": "COUNT", "inputStage": planner["winningPlan"]}
    stats = out.get("executionStats")
    if stats is not None:
        counted = stats["nReturned"]
        stats["executionStages"] = {"stage": "COUNT", "nReturned": 0, "nCounted": counted,
                                    "inputStage": stats["executionStages"]}
        stats["nReturned"] = 0

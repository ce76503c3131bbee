"""The command conformance tables (``tests/conformance_commands.py``) against an in-process
node and, from the same table, through a router on a collection sharded over two shards."""

from __future__ import annotations

from typing import Any

import pytest

from node.commands.context import RequestContext
from node.server.standalone import standalone_dispatcher
from tests.conformance_commands import CASES, COLL, DOCS, check, run_get_more_cases
from tests.sharded_helpers import ok


def test_node_answers_as_mongodb() -> None:
    dispatcher = standalone_dispatcher()
    ctx = RequestContext()
    assert dispatcher.run("app", {"insert": COLL, "documents": DOCS}, ctx)["ok"] == 1.0
    for case in CASES:
        check(case, dispatcher.run(case.db, case.command, ctx))
    run_get_more_cases(lambda cmd: dispatcher.run("app", cmd, ctx))


@pytest.mark.cluster
def test_router_answers_as_the_node(sharded: Any) -> None:
    ns = f"app.{COLL}"
    ok(sharded.router_command(0, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(sharded.router_command(0, {"split": ns, "middle": {"_id": 3}}, db="admin"))
    chunks = sharded.router_command(0, {"find": "chunks", "filter": {"ns": ns}},
                                    db="config")["cursor"]["firstBatch"]
    if len({c["shard"] for c in chunks}) == 1:
        other = "shard2" if chunks[0]["shard"] == "shard1" else "shard1"
        ok(sharded.router_command(0, {"moveChunk": ns, "find": {"_id": 3}, "to": other},
                                  db="admin"))
    ok(sharded.router_command(0, {"insert": COLL, "documents": DOCS}, db="app"))
    for case in CASES:
        check(case, sharded.router_command(0, case.command, db=case.db))
    run_get_more_cases(lambda cmd: sharded.router_command(0, cmd, db="app"))

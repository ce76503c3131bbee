"""docs/aggregation.md's examples run: each ```python block, in order, against one node."""

from __future__ import annotations

import pathlib
import re
from typing import Any

from node.commands.context import RequestContext
from node.server.standalone import standalone_dispatcher

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "aggregation.md"


def test_aggregation_doc_examples_run() -> None:
    d = standalone_dispatcher()
    ctx = RequestContext()

    def command(cmd: dict[str, Any]) -> dict[str, Any]:
        return d.run("shop", cmd, ctx)

    def aggregate(coll: str, pipeline: list[dict[str, Any]], **options: Any) -> list[Any]:
        reply = command({"aggregate": coll, "pipeline": pipeline, "cursor": {}, **options})
        assert reply.get("ok") == 1.0, reply
        return reply["cursor"]["firstBatch"]

    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 6
    env: dict[str, Any] = {"command": command, "aggregate": aggregate}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), env)

"""Pipeline-style updates: ``update(q, [{$set: ...}, {$unset: ...}], c=constants)``.

The stages allowed are MongoDB's (``$addFields``/``$set``, ``$project``, ``$unset``,
``$replaceRoot``/``$replaceWith``); they run on the matched document with the statement's
``c`` constants as variables and ``$$NOW`` the write's time. ``_id`` may not change (66).
Same interface as :class:`node.engine.updater.Update` (``apply``, ``upsert_document``,
``is_replacement``)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from node.engine.errors import INVALID_OPTIONS, MongoError

ALLOWED = ("$addFields", "$set", "$project", "$unset", "$replaceRoot", "$replaceWith")


class PipelineUpdate:
    is_replacement = False
    replacement = None

    def __init__(self, stages: list[Any], constants: Mapping[str, Any] | None = None) -> None:
        from node.commands.pipeline import PipelineContext, compile_pipeline, parse_stages
        self.stages = parse_stages(stages)
        for name, _ in self.stages:
            if name not in ALLOWED:
                raise MongoError(INVALID_OPTIONS, f"{name} is not allowed to be used "
                                 "within an update", code_name="InvalidOptions")
        self.constants = dict(constants or {})
        compile_pipeline(self.stages, PipelineContext(variables=self.constants))

    def apply(self, doc: Mapping[str, Any], *, position: int | None = None,
              is_insert: bool = False, now: datetime.datetime | None = None
              ) -> dict[str, Any]:
        from node.commands.pipeline import PipelineContext, run_pipeline
        ctx = PipelineContext(variables=self.constants, now=now)
        out = next(run_pipeline(iter([dict(doc)]), self.stages, ctx=ctx))
        if "_id" in doc:
            if "_id" not in out:
                out = {"_id": doc["_id"], **out}
            elif out["_id"] != doc["_id"]:
                raise MongoError(66, "Performing an update on the path '_id' would modify the "
                                 "immutable field '_id'", code_name="ImmutableField")
            elif next(iter(out)) != "_id":
                out = {"_id": out["_id"], **{k: v for k, v in out.items() if k != "_id"}}
        return out

    def upsert_document(self, query: Mapping[str, Any], *,
                        now: datetime.datetime | None = None) -> dict[str, Any]:
        from node.engine.updater import upsert_seed
        return self.apply(upsert_seed(query), is_insert=True, now=now)


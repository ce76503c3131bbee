"""Result objects returned by write methods, with pymongo's attributes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from helogale.errors import InvalidOperation


class _WriteResult:
    def __init__(self, acknowledged: bool) -> None:
        self._acknowledged = acknowledged

    def _raise_if_unacknowledged(self, name: str) -> None:
        if not self._acknowledged:
            raise InvalidOperation(
                f"A value for {name} is not available when the write is unacknowledged (w=0)."
            )

    @property
    def acknowledged(self) -> bool:
        return self._acknowledged


class InsertOneResult(_WriteResult):
    def __init__(self, inserted_id: Any, acknowledged: bool) -> None:
        super().__init__(acknowledged)
        self._inserted_id = inserted_id

    @property
    def inserted_id(self) -> Any:
        return self._inserted_id

    def __repr__(self) -> str:
        return f"InsertOneResult({self._inserted_id!r}, acknowledged={self._acknowledged})"


class InsertManyResult(_WriteResult):
    def __init__(self, inserted_ids: list[Any], acknowledged: bool) -> None:
        super().__init__(acknowledged)
        self._inserted_ids = inserted_ids

    @property
    def inserted_ids(self) -> list[Any]:
        return self._inserted_ids

    def __repr__(self) -> str:
        return f"InsertManyResult({self._inserted_ids!r}, acknowledged={self._acknowledged})"


class UpdateResult(_WriteResult):
    """From an update reply ``{n, nModified, upserted: [{index, _id}]}``."""

    def __init__(self, raw_result: Mapping[str, Any] | None, acknowledged: bool) -> None:
        super().__init__(acknowledged)
        self._raw = dict(raw_result) if raw_result is not None else None

    @property
    def raw_result(self) -> dict[str, Any] | None:
        return self._raw

    @property
    def matched_count(self) -> int:
        self._raise_if_unacknowledged("matched_count")
        assert self._raw is not None
        if self.upserted_id is not None:
            return 0
        return int(self._raw.get("n", 0))

    @property
    def modified_count(self) -> int:
        self._raise_if_unacknowledged("modified_count")
        assert self._raw is not None
        return int(self._raw.get("nModified", 0))

    @property
    def upserted_id(self) -> Any:
        self._raise_if_unacknowledged("upserted_id")
        assert self._raw is not None
        return self._raw.get("upserted")

    @property
    def did_upsert(self) -> bool:
        return self.upserted_id is not None

    def __repr__(self) -> str:
        return f"UpdateResult({self._raw!r}, acknowledged={self._acknowledged})"


class DeleteResult(_WriteResult):
    def __init__(self, raw_result: Mapping[str, Any] | None, acknowledged: bool) -> None:
        super().__init__(acknowledged)
        self._raw = dict(raw_result) if raw_result is not None else None

    @property
    def raw_result(self) -> dict[str, Any] | None:
        return self._raw

    @property
    def deleted_count(self) -> int:
        self._raise_if_unacknowledged("deleted_count")
        assert self._raw is not None
        return int(self._raw.get("n", 0))

    def __repr__(self) -> str:
        return f"DeleteResult({self._raw!r}, acknowledged={self._acknowledged})"


class BulkWriteResult(_WriteResult):
    """From the merged bulk result ``{nInserted, nUpserted, nMatched, nModified, nRemoved,
    upserted: [{index, _id}], writeErrors, writeConcernErrors}``."""

    def __init__(self, bulk_api_result: Mapping[str, Any], acknowledged: bool) -> None:
        super().__init__(acknowledged)
        self._raw = dict(bulk_api_result)

    @property
    def bulk_api_result(self) -> dict[str, Any]:
        return self._raw

    def _count(self, key: str) -> int:
        self._raise_if_unacknowledged(key)
        return int(self._raw.get(key, 0))

    @property
    def inserted_count(self) -> int:
        return self._count("nInserted")

    @property
    def matched_count(self) -> int:
        return self._count("nMatched")

    @property
    def modified_count(self) -> int:
        return self._count("nModified")

    @property
    def deleted_count(self) -> int:
        return self._count("nRemoved")

    @property
    def upserted_count(self) -> int:
        return self._count("nUpserted")

    @property
    def upserted_ids(self) -> dict[int, Any]:
        self._raise_if_unacknowledged("upserted_ids")
        return {int(u["index"]): u["_id"] for u in self._raw.get("upserted", [])}

    def __repr__(self) -> str:
        return f"BulkWriteResult({self._raw!r}, acknowledged={self._acknowledged})"

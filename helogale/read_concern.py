"""Read concern: how fresh and how durable the data a read returns must be.

``ReadConcern("linearizable")`` makes the primary confirm it is still the leader (a Raft
ReadIndex round) before answering, so a deposed primary that has not noticed yet can never serve
a stale read. ``"majority"`` and ``"local"`` read the member's applied state, which on Helogale
is always majority-committed (writes are applied only once committed).
"""

from __future__ import annotations

from typing import Any

LEVELS = ("local", "available", "majority", "linearizable", "snapshot")


class ReadConcern:
    """pymongo's ``ReadConcern(level=None)``; ``None`` means the server's default."""

    __slots__ = ("_level",)

    def __init__(self, level: str | None = None) -> None:
        if level is not None and not isinstance(level, str):
            raise TypeError("level must be a string or None")
        self._level = level

    @property
    def level(self) -> str | None:
        return self._level

    @property
    def document(self) -> dict[str, Any]:
        """The ``readConcern`` field sent with a read command."""
        return {"level": self._level} if self._level is not None else {}

    @property
    def ok_for_legacy(self) -> bool:
        return self._level is None or self._level == "local"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReadConcern) and other._level == self._level

    def __hash__(self) -> int:
        return hash(self._level)

    def __repr__(self) -> str:
        return f"ReadConcern({self._level!r})" if self._level else "ReadConcern()"


DEFAULT_READ_CONCERN = ReadConcern()

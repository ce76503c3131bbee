"""Write concern: how many members must have a write (``w``), ``wtimeout``, journal, and the
classic ``safe=`` / ``w=`` keyword arguments of pymongo 2's write methods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from helogale.errors import ConfigurationError


class WriteConcern:
    """``WriteConcern(w=None, wtimeout=None, j=None, fsync=None)`` as in pymongo."""

    def __init__(
        self,
        w: int | str | None = None,
        wtimeout: int | None = None,
        j: bool | None = None,
        fsync: bool | None = None,
    ) -> None:
        document: dict[str, Any] = {}
        if w is not None:
            if isinstance(w, bool) or not isinstance(w, (int, str)):
                raise ConfigurationError("w must be an integer or a string")
            if isinstance(w, int) and w < 0:
                raise ConfigurationError("w cannot be negative")
            document["w"] = w
        if wtimeout is not None:
            if isinstance(wtimeout, bool) or not isinstance(wtimeout, int) or wtimeout < 0:
                raise ConfigurationError("wtimeout must be a non-negative integer")
            document["wtimeout"] = wtimeout
        if j is not None:
            document["j"] = bool(j)
        if fsync is not None:
            document["fsync"] = bool(fsync)
        if w == 0 and (j or fsync):
            raise ConfigurationError("Cannot set w to 0 and j or fsync to True")
        self._document = document

    @property
    def document(self) -> dict[str, Any]:
        """The ``writeConcern`` document sent with write commands (a copy)."""
        return dict(self._document)

    @property
    def acknowledged(self) -> bool:
        """False only for ``w=0`` (fire and forget)."""
        return self._document.get("w") != 0

    @property
    def is_server_default(self) -> bool:
        return not self._document

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WriteConcern):
            return self._document == other._document
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._document.items())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._document.items())
        return f"WriteConcern({inner})"


DEFAULT_WRITE_CONCERN = WriteConcern()

_LEGACY_KEYS = {"w": "w", "wtimeout": "wtimeout", "wtimeoutms": "wtimeout", "j": "j",
                "journal": "j", "fsync": "fsync"}


def from_legacy(
    default: WriteConcern, safe: bool | None, options: Mapping[str, Any]
) -> WriteConcern:
    """The write concern of a classic call: ``insert(doc, safe=True)``, ``update(..., w=2)``.

    Any of ``w``/``wtimeout``/``j``/``fsync`` implies ``safe=True``; ``safe=False`` means ``w=0``;
    with neither, the collection's write concern applies. Unknown keywords raise.
    """
    given: dict[str, Any] = {}
    for key, value in options.items():
        target = _LEGACY_KEYS.get(key.lower())
        if target is None:
            raise ConfigurationError(f"unexpected keyword argument {key!r}")
        given[target] = value
    if given:
        merged = default.document
        merged.update(given)
        return WriteConcern(**merged)
    if safe is False:
        return WriteConcern(w=0)
    return default

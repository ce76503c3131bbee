"""Read preferences: which replica-set members a read may use, and the selection among them.

Each mode is an object with ``mode``/``name``/``document`` and ``select(servers)`` which filters
the known server descriptions; the latency window is applied by the topology afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from helogale.errors import ConfigurationError

if TYPE_CHECKING:
    from helogale.topology import ServerDescription


class _ServerMode:
    mode: int = 0
    name: str = "primary"
    mongos_mode: str = "primary"

    def __init__(self, tag_sets: Sequence[dict[str, Any]] | None = None) -> None:
        self.tag_sets = [dict(t) for t in tag_sets] if tag_sets else [{}]

    @property
    def document(self) -> dict[str, Any]:
        """The ``$readPreference`` document sent with commands."""
        doc: dict[str, Any] = {"mode": self.mongos_mode}
        if self.tag_sets != [{}]:
            doc["tags"] = self.tag_sets
        return doc

    def _tagged(self, servers: list[ServerDescription]) -> list[ServerDescription]:
        for tags in self.tag_sets:
            chosen = [s for s in servers if all(s.tags.get(k) == v for k, v in tags.items())]
            if chosen:
                return chosen
        return []

    def select(self, servers: list[ServerDescription]) -> list[ServerDescription]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _ServerMode):
            return self.mode == other.mode and self.tag_sets == other.tag_sets
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.mode, repr(self.tag_sets)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tag_sets={self.tag_sets!r})"


def _primaries(servers: list[ServerDescription]) -> list[ServerDescription]:
    return [s for s in servers if s.is_writable]


def _secondaries(servers: list[ServerDescription]) -> list[ServerDescription]:
    return [s for s in servers if s.is_secondary]


class Primary(_ServerMode):
    mode, name, mongos_mode = 0, "Primary", "primary"

    def __init__(self) -> None:
        super().__init__(None)

    def select(self, servers: list[ServerDescription]) -> list[ServerDescription]:
        return _primaries(servers)


class PrimaryPreferred(_ServerMode):
    mode, name, mongos_mode = 1, "PrimaryPreferred", "primaryPreferred"

    def select(self, servers: list[ServerDescription]) -> list[ServerDescription]:
        return _primaries(servers) or self._tagged(_secondaries(servers))


class Secondary(_ServerMode):
    mode, name, mongos_mode = 2, "Secondary", "secondary"

    def select(self, servers: list[ServerDescription]) -> list[ServerDescription]:
        return self._tagged(_secondaries(servers))


class SecondaryPreferred(_ServerMode):
    mode, name, mongos_mode = 3, "SecondaryPreferred", "secondaryPreferred"

    def select(self, servers: list[ServerDescription]) -> list[ServerDescription]:
        return self._tagged(_secondaries(servers)) or _primaries(servers)


class Nearest(_ServerMode):
    mode, name, mongos_mode = 4, "Nearest", "nearest"

    def select(self, servers: list[ServerDescription]) -> list[ServerDescription]:
        return self._tagged(_primaries(servers) + _secondaries(servers))


class ReadPreference:
    """The five modes as constants: ``ReadPreference.PRIMARY`` ... ``ReadPreference.NEAREST``."""

    PRIMARY = Primary()
    PRIMARY_PREFERRED = PrimaryPreferred()
    SECONDARY = Secondary()
    SECONDARY_PREFERRED = SecondaryPreferred()
    NEAREST = Nearest()


_BY_NAME: dict[str, _ServerMode] = {
    "primary": ReadPreference.PRIMARY,
    "primarypreferred": ReadPreference.PRIMARY_PREFERRED,
    "secondary": ReadPreference.SECONDARY,
    "secondarypreferred": ReadPreference.SECONDARY_PREFERRED,
    "nearest": ReadPreference.NEAREST,
}


def read_pref_from_name(name: str) -> _ServerMode:
    """The read preference for a URI ``readPreference=`` value (case-insensitive)."""
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        raise ConfigurationError(f"unknown readPreference {name!r}") from None


ServerMode = _ServerMode

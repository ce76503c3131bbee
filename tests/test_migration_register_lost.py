"""The donor's side of a migration whose registration reply was lost (no cluster: a stub
shard state and a scripted config-server set).

A network error on ``_configsvrRegisterMigration`` leaves the outcome unknown: the config
servers may have recorded the migration active. The donor must then keep its own record so
that :class:`MigrationRecovery` aborts the migration on the config servers later (otherwise
``config.migrations`` keeps an active migration nobody will ever end, and every later move
of the collection is refused). A definite refusal needs no such care: the record goes at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import bson
import pytest

from helogale.errors import AutoReconnect
from node.engine.errors import MongoError
from node.sharding.migration import MigrationRecovery, MigrationSource

NS = "db.c"


class ScriptedConfig:
    """Stands in for the config servers' RemoteSet: each command pops its next scripted step
    (a reply, or an exception to raise)."""

    def __init__(self, **steps: list[Any]) -> None:
        self.steps = steps
        self.sent: list[dict[str, Any]] = []

    def command(self, db: str, cmd: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.sent.append(cmd)
        step = self.steps[next(iter(cmd))].pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


class StubState:
    """The parts of ShardState a donor and its recovery use; the migration record is kept
    the way the replicated ``migrationState`` entry keeps it."""

    shard_name = "shard1"

    def __init__(self, cfg: ScriptedConfig) -> None:
        self.cfg = cfg
        self.record: dict[str, Any] | None = None
        self.entries: list[dict[str, Any]] = []
        self.remotes = SimpleNamespace(get=lambda conn: ScriptedConfig())  # recipient: unused
        self.store = SimpleNamespace(read=self._read)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Any]:
        record = self.record
        yield SimpleNamespace(get=lambda table, key: None if record is None
                              else bson.encode(record))

    def refresh(self, ns: str, *, leave_critical: bool = False) -> None:
        pass

    def ownership(self, ns: str) -> Any:
        return SimpleNamespace(chunks=[(0, 100)], critical=False)

    def config_servers(self) -> ScriptedConfig:
        return self.cfg

    def propose(self, entry: dict[str, Any]) -> dict[str, Any]:
        self.entries.append(entry)
        if entry.get("op") == "migrationState":
            if "set" in entry:
                self.record = dict(entry["set"])
            elif self.record is not None and self.record["id"] == entry.get("clear"):
                self.record = None
        return {}


def test_a_lost_registration_reply_keeps_the_donor_record_for_recovery() -> None:
    cfg = ScriptedConfig(
        _configsvrRegisterMigration=[AutoReconnect("connection reset")],
        _configsvrMigrationOutcome=[{"ok": 1.0, "state": "aborted"}])
    state = StubState(cfg)
    source = MigrationSource(state, NS, 0, 100, "shard2", "shard2/h:1")  # type: ignore[arg-type]
    with pytest.raises(MongoError) as raised:
        source.run()
    assert raised.value.code_name == "HostUnreachable"
    assert state.record is not None and state.record["id"] == source.id
    # the recovery (on this primary, once nothing runs) aborts it there, then forgets it
    recovery = MigrationRecovery(state, lambda: None, None)  # type: ignore[arg-type]
    assert recovery.check() == "aborted"
    assert state.record is None
    outcome = [c for c in cfg.sent if "_configsvrMigrationOutcome" in c]
    assert outcome == [{"_configsvrMigrationOutcome": source.id, "abort": True}]


def test_a_refused_registration_clears_the_donor_record_at_once() -> None:
    cfg = ScriptedConfig(_configsvrRegisterMigration=[
        {"ok": 0.0, "code": 117, "codeName": "ConflictingOperationInProgress",
         "errmsg": "another migration"}])
    state = StubState(cfg)
    source = MigrationSource(state, NS, 0, 100, "shard2", "shard2/h:1")  # type: ignore[arg-type]
    with pytest.raises(MongoError):
        source.run()
    assert state.record is None


def test_an_unreachable_recipient_aborts_with_host_unreachable() -> None:
    """The recipient set cannot be reached (every member down): the migration is aborted on
    the config servers and the move answers HostUnreachable, not InternalError."""
    cfg = ScriptedConfig(
        _configsvrRegisterMigration=[{"ok": 1.0}],
        _configsvrMigrationOutcome=[{"ok": 1.0, "state": "aborted"}])
    state = StubState(cfg)
    recipient = ScriptedConfig(_recvChunkStart=[AutoReconnect("no server for primary")],
                               _recvChunkAbort=[{"ok": 1.0}])
    state.remotes = SimpleNamespace(get=lambda conn: recipient)
    source = MigrationSource(state, NS, 0, 100, "shard2", "shard2/h:1")  # type: ignore[arg-type]
    source._index_specs = lambda: []  # type: ignore[method-assign]  # no engine in the stub
    with pytest.raises(MongoError) as raised:
        source.run()
    assert raised.value.code_name == "HostUnreachable"
    assert state.record is None
    assert [c for c in cfg.sent if "_configsvrMigrationOutcome" in c] == [
        {"_configsvrMigrationOutcome": source.id, "abort": True}]

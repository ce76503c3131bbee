"""RetryableWriteError labels on wire replies (node/wire/labels.py)."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Int64

from node.commands.dispatcher import Dispatcher
from node.commands.table import NODE_COMMANDS
from node.wire.labels import add_error_labels as _add_error_labels


class _NoServices:
    commands: Any = None


DISPATCHER = Dispatcher(_NoServices(), NODE_COMMANDS)


def add_error_labels(command: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    """Labels as the wire transport adds them: the dispatcher's table says what is a
    retryable write."""
    return _add_error_labels(DISPATCHER.is_retryable_write(command), reply)

LSID = {"id": b"0123456789abcdef"}
NOT_PRIMARY = {"ok": 0.0, "errmsg": "not primary", "code": 10107, "codeName": "NotWritablePrimary"}


def retryable(name: str = "insert") -> dict[str, Any]:
    return {name: "c", "lsid": LSID, "txnNumber": Int64(3)}


@pytest.mark.parametrize("name", ["insert", "update", "delete", "findAndModify"])
def test_not_primary_on_a_retryable_write_is_labelled(name: str) -> None:
    assert add_error_labels(retryable(name), dict(NOT_PRIMARY))["errorLabels"] == [
        "RetryableWriteError"]


def test_write_concern_error_with_a_state_change_code_is_labelled() -> None:
    reply = {"ok": 1.0, "n": 1, "writeConcernError": {"code": 11602, "errmsg": "x"}}
    assert add_error_labels(retryable(), reply)["errorLabels"] == ["RetryableWriteError"]


@pytest.mark.parametrize("command, reply", [
    # no txnNumber: the driver is not retrying this write
    ({"insert": "c", "lsid": LSID}, NOT_PRIMARY),
    # a read
    ({"find": "c", "lsid": LSID, "txnNumber": Int64(1)}, NOT_PRIMARY),
    # a user error is not retryable
    (retryable(), {"ok": 0.0, "code": 2, "errmsg": "bad", "codeName": "BadValue"}),
    # a write-concern timeout is not retryable
    (retryable(), {"ok": 1.0, "n": 1, "writeConcernError": {"code": 64, "errmsg": "t"}}),
    # inside a transaction the label is a different one
    ({**retryable(), "autocommit": False}, NOT_PRIMARY),
    (retryable(), {"ok": 1.0, "n": 1}),
])
def test_other_replies_are_unchanged(command: dict[str, Any], reply: dict[str, Any]) -> None:
    assert "errorLabels" not in add_error_labels(command, dict(reply))


def test_existing_labels_are_kept_and_not_doubled() -> None:
    reply = {**NOT_PRIMARY, "errorLabels": ["Other", "RetryableWriteError"]}
    assert add_error_labels(retryable(), reply)["errorLabels"] == ["Other",
                                                                    "RetryableWriteError"]

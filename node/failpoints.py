"""Fail points: named places where a test makes a process wait, the way MongoDB's
``configureFailPoint`` does (used to stop a chunk migration at a chosen phase and kill a
member there).

A point is off unless a test turns it on with the ``configureFailPoint`` command, which a
member serves only when started with ``--enable-test-commands``. ``hit(name)`` returns at
once while the point is off; while it is on (``mode: "alwaysOn"``) every caller waits there
until it is turned off again (``mode: "off"``), or until ``data.timeoutMS``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

_cond = threading.Condition()
_points: dict[str, dict[str, Any]] = {}
_hits: dict[str, int] = {}


def configure(name: str, mode: Any, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Turn ``name`` on (``"alwaysOn"``) or off (``"off"``); returns how often a caller
    stopped there so far (``count``)."""
    with _cond:
        if mode == "off":
            _points.pop(name, None)
        elif mode == "alwaysOn":
            _points[name] = {"data": dict(data or {})}
        else:
            raise ValueError(f"unknown fail point mode {mode!r}")
        _cond.notify_all()
        return {"count": _hits.get(name, 0)}


def hit(name: str, ns: str | None = None) -> None:
    """Wait here while ``name`` is on (see module docstring); a point configured with
    ``data.ns`` stops only callers working on that namespace."""
    if not _points:
        return
    with _cond:
        point = _points.get(name)
        if point is None or point["data"].get("ns") not in (None, ns):
            return
        _hits[name] = _hits.get(name, 0) + 1
        _cond.notify_all()
        timeout = point["data"].get("timeoutMS")
        _cond.wait_for(lambda: name not in _points,
                       None if timeout is None else float(timeout) / 1000)


def entered(name: str) -> int:
    with _cond:
        return _hits.get(name, 0)

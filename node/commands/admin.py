"""Handlers for handshake, server and replica-set administration commands.

``hello``/``isMaster`` (topology from the member, limits and versions from here), ``ping``,
``buildInfo``, ``getParameter``, ``serverStatus``, ``getLastError``,
``listCommands`` and ``replSetGetStatus``/``replSetGetConfig``/
``replSetStepDown``/``replSetReconfig`` (delegated to the member). ``endSessions`` is in
:mod:`node.commands.sessions`.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bson import Int64

from node.commands.args import get_bool, get_doc, is_number
from node.commands.context import RequestContext
from node.commands.operations import common_sections
from node.commands.sessions import session_count
from node.engine.errors import MongoError
from node.ops.counters import COUNTERS

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices

VERSION = "8.0.0"
VERSION_ARRAY = [8, 0, 0, 0]
MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE_BYTES = 48_000_000
MAX_WRITE_BATCH_SIZE = 100_000
MIN_WIRE_VERSION = 0
MAX_WIRE_VERSION = 25

_PARAMETERS: dict[str, Any] = {
    "featureCompatibilityVersion": {"version": "8.0"},
    "maxBSONObjectSize": MAX_BSON_OBJECT_SIZE,
    "cursorTimeoutMillis": Int64(600_000),
    "authenticationMechanisms": ["SCRAM-SHA-256"],
}


def hello(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
          ) -> dict[str, Any]:
    topo = node.member.hello(ctx)
    writable = bool(topo.pop("isWritablePrimary", False))
    reply = hello_reply(cmd, ctx, writable, topo, node.session_timeout_minutes)
    if "saslSupportedMechs" in cmd or "speculativeAuthenticate" in cmd:
        from node.security.users import hello_fields

        reply.update(hello_fields(node, cmd, ctx))
    return reply


def hello_reply(cmd: Mapping[str, Any], ctx: RequestContext, writable: bool,
                topology: Mapping[str, Any], session_timeout_minutes: float = 30.0
                ) -> dict[str, Any]:
    """``hello``/``isMaster``: the topology fields given (a member's, or a router's
    ``msg: "isdbgrid"``) with the limits, versions and session timeout every server sends."""
    legacy = next(iter(cmd)) in ("isMaster", "ismaster")
    reply: dict[str, Any] = {"ismaster" if legacy else "isWritablePrimary": writable}
    # no topologyVersion: drivers would switch to streaming (awaitable) hello, which this
    # server answers at once, so their monitors would spin; polling hello is what we serve
    reply.update(topology)
    reply.update({
        "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
        "maxMessageSizeBytes": MAX_MESSAGE_SIZE_BYTES,
        "maxWriteBatchSize": MAX_WRITE_BATCH_SIZE,
        "localTime": _dt.datetime.now(_dt.UTC),
        "logicalSessionTimeoutMinutes": max(1, math.ceil(session_timeout_minutes)),
        "connectionId": ctx.connection_id,
        "minWireVersion": MIN_WIRE_VERSION,
        "maxWireVersion": MAX_WIRE_VERSION,
        "readOnly": False,
        "helloOk": True,
    })
    return reply


def ping(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
         ) -> dict[str, Any]:
    return {}


def build_info(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any]:
    return {
        "version": VERSION,
        "versionArray": VERSION_ARRAY,
        "gitVersion": "helogale",
        "helogale": True,
        "bits": 64,
        "debug": False,
        "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
        "storageEngines": ["helogale"],
    }


def get_parameter(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                  ) -> dict[str, Any]:
    arg = cmd.get("getParameter")
    if arg == "*" or (isinstance(arg, Mapping) and arg.get("allParameters")):
        return dict(_PARAMETERS)
    wanted = [k for k in cmd if k not in ("getParameter", "$db", "lsid", "$readPreference",
                                          "$clusterTime", "comment")]
    reply = {k: _PARAMETERS[k] for k in wanted if k in _PARAMETERS}
    if not reply:
        raise MongoError(72, "no option found to get", code_name="InvalidOptions")
    return reply


def server_status(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                  ) -> dict[str, Any]:
    """MongoDB's sections: connections, opcounters, opLatencies, mem, repl (and sharding on a
    config server or shard) beside the cursor and session metrics."""
    common = common_sections(node)
    commands = common.pop("commands")
    topo = node.member.hello(ctx)
    repl: dict[str, Any] = {k: topo[k] for k in ("setName", "setVersion", "hosts", "primary",
                                                 "me", "secondary") if k in topo}
    repl["isWritablePrimary"] = bool(topo.get("isWritablePrimary"))
    summary = getattr(node.member, "repl_summary", None)
    if summary is not None:
        repl.update(summary())
    reply = {
        "host": node.member.hello(ctx).get("me", "localhost"),
        "version": VERSION,
        "process": "helogale-node",
        "pid": Int64(os.getpid()),
        "uptime": float(int(time.time() - node.started_at)),
        "uptimeMillis": Int64(int((time.time() - node.started_at) * 1000)),
        "localTime": _dt.datetime.now(_dt.UTC),
        **common,
        "repl": repl,
        "metrics": {"cursor": {"open": {"total": Int64(len(node.cursors))},
                               "refused": Int64(node.cursors.refused)},
                    "commands": commands,
                    "commandLinks": {"commands": Int64(COUNTERS.get("command_link_commands"))}},
        # sessions holding a retryable-write record (pruned after the session timeout)
        "logicalSessionRecordCache": {"activeSessionsCount": session_count(node.engine.store)},
    }
    sharding = getattr(node.sharding, "status_section", None)
    if sharding is not None:
        reply["sharding"] = sharding()
    return reply



def get_last_error(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                   ) -> dict[str, Any]:
    # every acknowledged write here already waited for its write concern
    return {"n": 0, "err": None, "connectionId": ctx.connection_id}


def list_commands(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                  ) -> dict[str, Any]:
    return {"commands": {
        name: {"help": spec.help, "adminOnly": spec.admin_only}
        for name, spec in sorted(node.commands.items())
    }}


def configure_fail_point(node: NodeServices, db: str, cmd: Mapping[str, Any],
                         ctx: RequestContext) -> dict[str, Any]:
    """``{configureFailPoint: name, mode: "alwaysOn" | "off", data}`` (tests only)."""
    from node import failpoints

    if not node.test_commands:
        raise MongoError(59, "no such command: 'configureFailPoint' (start the member with "
                         "--enable-test-commands)", code_name="CommandNotFound")
    name = cmd.get("configureFailPoint")
    if not isinstance(name, str):
        raise MongoError(2, "configureFailPoint needs a fail point name")
    try:
        return failpoints.configure(name, cmd.get("mode"), get_doc(cmd, "configureFailPoint",
                                                                   "data", {}))
    except ValueError as exc:
        raise MongoError(2, str(exc)) from None


def repl_set_get_status(node: NodeServices, db: str, cmd: Mapping[str, Any],
                        ctx: RequestContext) -> dict[str, Any]:
    return node.member.repl_set_get_status()


def repl_set_get_config(node: NodeServices, db: str, cmd: Mapping[str, Any],
                        ctx: RequestContext) -> dict[str, Any]:
    return {"config": node.member.repl_set_get_config()}


def _step_down_period(cmd: Mapping[str, Any], name: str, default: float) -> float:
    """A replSetStepDown period in seconds: a number (TypeMismatch, 14), finite and not
    negative (BadValue, 2). A NaN or infinite catch-up period made the primary wait forever
    for a caught-up secondary, holding the request's thread."""
    value = cmd.get(name, default)
    if not is_number(value):
        raise MongoError(14, f"{name} must be a number", code_name="TypeMismatch")
    if not math.isfinite(value) or value < 0:
        raise MongoError(2, f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return float(value)


def repl_set_step_down(node: NodeServices, db: str, cmd: Mapping[str, Any],
                       ctx: RequestContext) -> dict[str, Any]:
    secs = _step_down_period(cmd, "replSetStepDown", 60)
    catch_up = _step_down_period(cmd, "secondaryCatchUpPeriodSecs", 10)
    if catch_up > secs:
        raise MongoError(2, "replSetStepDown argument must be greater than "
                         "secondaryCatchUpPeriodSecs")
    node.member.step_down(float(secs), float(catch_up))
    return {}


def repl_set_reconfig(node: NodeServices, db: str, cmd: Mapping[str, Any],
                      ctx: RequestContext) -> dict[str, Any]:
    config = get_doc(cmd, "replSetReconfig", "replSetReconfig")
    node.member.reconfig(config, get_bool(cmd, "replSetReconfig", "force"))
    return {}

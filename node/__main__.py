"""``python -m node`` / ``helogale-node``: run one replica-set member until SIGTERM or SIGINT
(exit status 0), or until it can no longer make progress (exit status :data:`FATAL_EXIT_CODE`,
after one ERROR log line saying why; a supervisor restarts it)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from typing import Any, NoReturn

from node.server.config import config_from_args
from node.server.logs import setup_logging
from raft.auth import KeyFileError

FATAL_EXIT_CODE = 3
"""Exit status of a member that stopped because it could no longer make progress."""
FATAL_CLEANUP_S = 5.0
"""The most a failed member spends closing its servers and stores before it exits anyway (a
thread stuck in gRPC or LMDB must not keep a failed process alive)."""


def exit_after_failure(app: Any) -> NoReturn:
    """Stop ``app`` within :data:`FATAL_CLEANUP_S`, then end the process at once."""
    log = logging.getLogger("helogale.node")

    def clean_up() -> None:
        try:
            app.stop()
        except Exception as exc:  # the process exits anyway; the ERROR line is already out
            log.warning("clean-up after the failure: %s", exc)

    cleaner = threading.Thread(target=clean_up, name="fatal-cleanup", daemon=True)
    cleaner.start()
    cleaner.join(FATAL_CLEANUP_S)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # nothing more can be done on the way out
            stream.flush()
    os._exit(FATAL_EXIT_CODE)


def main(argv: list[str] | None = None) -> int:
    config = config_from_args(argv)
    setup_logging(config.log_level, member=config.member_id, replset=config.replset)
    log = logging.getLogger("helogale.node")
    from node.server.app import NodeApp

    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal received, shutting down",
                 extra={"fields": {"signal": signal.Signals(signum).name}})
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        app = NodeApp(config, on_fatal=done.set).start()
    except KeyFileError as exc:
        log.error("member failed to start: %s", exc)
        return 1
    except Exception:
        log.exception("member failed to start")
        return 1
    # long-lived start-up objects leave the collector's view; collections get rarer (the
    # request path allocates many short-lived dicts, few cycles)
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    done.wait()
    if app.failure is not None:
        exit_after_failure(app)
    app.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

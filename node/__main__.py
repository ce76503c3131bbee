"""``python -m node`` / ``helogale-node``: run one replica-set member until SIGTERM or SIGINT."""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading

from node.server.config import config_from_args
from node.server.logs import setup_logging
from raft.auth import KeyFileError


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
        app = NodeApp(config).start()
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
    app.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

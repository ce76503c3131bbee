"""``python -m router`` / ``helogale-router``: run one router until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from node.server.logs import setup_logging
from router.config import config_from_args


def main(argv: list[str] | None = None) -> int:
    config = config_from_args(argv)
    setup_logging(config.log_level, role="router")
    log = logging.getLogger("helogale.router")
    from router.app import RouterApp

    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal received, shutting down",
                 extra={"fields": {"signal": signal.Signals(signum).name}})
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        app = RouterApp(config).start()
    except Exception:
        log.exception("router failed to start")
        return 1
    done.wait()
    app.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

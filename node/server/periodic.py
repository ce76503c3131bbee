"""Background work done every few seconds by a member or router: one daemon thread per job.

The TTL monitor, the session reaper, the range deleter, migration recovery and the cursor
reapers all have the same shape: wait ``interval_s`` (or until woken), do one pass when allowed
(usually: only on a primary), and never let one failed pass end the thread. ``Periodic`` is that
shape once; a job passes the pass as a callable. Errors of the ``expected`` types (a step-down
meanwhile, an unreachable peer) are logged as information, anything else with its traceback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Periodic:
    """Runs ``tick`` every ``interval_s`` seconds on a daemon thread, while ``allowed()``."""

    def __init__(
        self,
        name: str,
        tick: Callable[[], object],
        interval_s: float,
        log: logging.Logger,
        *,
        allowed: Callable[[], bool] = lambda: True,
        expected: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.name = name
        self.interval_s = interval_s
        self._tick = tick
        self._log = log
        self._allowed = allowed
        self._expected = expected
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run the next pass now instead of at the end of the interval."""
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set() or not self._allowed():
                continue
            try:
                self._tick()
            except self._expected as exc:
                self._log.info("%s pass failed: %s", self.name, exc)
            except Exception:  # never let one bad pass end the job
                self._log.exception("%s pass failed", self.name)

"""node/supervisor.py: restart after a doubling backoff, reset once stable, one line each."""

from __future__ import annotations

from node.supervisor import Supervisor


class Proc:
    def __init__(self) -> None:
        self.running = True
        self.starts = 0

    def restart(self) -> None:
        self.running = True
        self.starts += 1


def test_backoff_doubles_to_the_cap_and_resets_after_a_stable_minute() -> None:
    now = [0.0]
    lines: list[str] = []
    sup = Supervisor(lines.append, clock=lambda: now[0], first=0.5, maximum=2.0,
                     stable_after=60.0)
    p = Proc()
    sup.watch("router1", lambda: p.running, p.restart, lambda: -9)
    delays = []
    for _ in range(4):  # dies again at once after every restart
        p.running = False
        sup.check()
        died_at = now[0]
        assert p.starts == len(delays)
        while p.starts == len(delays):
            now[0] += 0.25
            sup.check()
        delays.append(now[0] - died_at)
    assert delays == [0.5, 1.0, 2.0, 2.0]
    assert lines[0] == "helogale up: router1 exited (status -9); restarting in 0.5 s"
    assert len(lines) == 4
    # a minute up: the next death waits the first step again
    now[0] += 60.0
    sup.check()
    p.running = False
    sup.check()
    assert lines[-1].endswith("restarting in 0.5 s")


def test_nothing_is_restarted_after_stop() -> None:
    now = [0.0]
    sup = Supervisor(lambda _l: None, clock=lambda: now[0])
    p = Proc()
    sup.watch("m", lambda: p.running, p.restart)
    sup.stop()
    p.running = False
    now[0] += 100
    sup.check()
    sup.check()
    assert p.starts == 0

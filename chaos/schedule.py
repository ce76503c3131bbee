"""Seeded fault schedules: which fault starts when, how long it lasts, then a healing period.

The schedule is a pure function of (seed, duration, fault kinds, timings), so a run that found
an anomaly can be repeated with the same faults at the same moments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FAULT_KINDS = (
    "kill-primary",
    "kill-random",
    "pause-primary",
    "pause-random",
    "partition-majority",  # a random minority cut off from the majority
    "partition-primary",  # the primary isolated from everyone
    "partition-bridge",  # two halves joined by one member
    "partition-oneway",  # one directed link cut (asymmetric)
    "restart-all",  # kill every member, restart them all
)

SHARDED_KINDS = (
    "kill-router",  # SIGKILL a router, restart it when healed (sharded runs only)
)
"""Scheduled faults that exist only against a sharded cluster. (Chunk migrations are not a
scheduled fault: the ``migrate`` nemesis moves chunks continuously beside the schedule.)"""

FAULT_GROUPS = {
    "kill": ("kill-primary", "kill-random"),
    "pause": ("pause-primary", "pause-random"),
    "partition": ("partition-majority", "partition-primary", "partition-bridge", "partition-oneway"),
    "restart": ("restart-all",),
    "router": SHARDED_KINDS,
    "all": FAULT_KINDS,
}


@dataclass(frozen=True)
class PlannedFault:
    at: float  # seconds after the run starts
    kind: str
    duration: float  # how long the fault stays before it is healed
    pick: int  # a seeded choice the nemesis uses to pick members or links


def expand_kinds(names: list[str], *, sharded: bool = False) -> tuple[str, ...]:
    """Fault kinds from names or group names (``kill``, ``pause``, ``partition``, ``all``);
    with ``sharded``, ``all`` also means the sharded-only kinds (``kill-router``)."""
    known = FAULT_KINDS + SHARDED_KINDS if sharded else FAULT_KINDS
    kinds: list[str] = []
    for name in names:
        group = known if name == "all" else FAULT_GROUPS.get(name, (name,))
        for kind in group:
            if kind not in known:
                raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_GROUPS)}"
                                 + ("" if sharded else " (kill-router: with --sharded)"))
            if kind not in kinds:
                kinds.append(kind)
    return tuple(kinds)


def plan(
    seed: int,
    duration: float,
    kinds: tuple[str, ...],
    *,
    fault_s: tuple[float, float] = (1.5, 4.0),
    heal_s: tuple[float, float] = (2.0, 4.0),
    warmup_s: float = 1.0,
) -> list[PlannedFault]:
    """Faults one after another, each followed by a healing period, until ``duration``.

    Every kind is used once before any repeats (in seeded order) so a short run still covers
    every kind it was asked for.
    """
    if not kinds:
        return []
    rng = random.Random(seed)
    faults: list[PlannedFault] = []
    t = warmup_s
    queue: list[str] = []
    while True:
        if not queue:
            queue = list(kinds)
            rng.shuffle(queue)
        kind = queue.pop()
        length = rng.uniform(*fault_s)
        if t + length > duration:
            break
        faults.append(PlannedFault(round(t, 3), kind, round(length, 3), rng.randrange(1 << 30)))
        t += length + rng.uniform(*heal_s)
    return faults

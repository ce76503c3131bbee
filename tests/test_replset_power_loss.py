"""Replica-set members power-cut mid-write and restarted after a "reboot": each starts, catches
up, agrees with the others and no acknowledged write is lost.

Three in-process members (NodeApp: LMDB engine, Raft over gRPC on loopback), each its own
machine: its Raft files and store marker live on a SimDisk (tests/power_loss_fs.py) that drops
whatever was not fsynced at a power cut. LMDB is C code the disk cannot intercept, so its loss
is modelled: at a power cut the store survives only if its marker durably says ``clean``;
otherwise it is garbage (random bytes), gone, or -- the nasty case -- torn: an older consistent
image whose meta page claims the latest applied index (data pages lost, meta page written),
which LMDB opens without complaint. A member restarted on the same boot after a SIGKILL keeps
its store (the page cache survived)."""

from __future__ import annotations

import os
import random
import shutil
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from node.commands.context import RequestContext
from node.engine.lmdb_store import LMDBStore
from node.local_cluster import wait_until
from node.server.app import NodeApp
from node.server.config import MemberSpec, NodeConfig
from node.server.statemachine import APPLIED_KEY, META
from tests.power_loss_fs import SimDisk
from tests.raft_io.kv_cluster import free_port

CTX = RequestContext()


class Machine:
    """One member on its own simulated machine: a SimDisk, a boot id, a NodeApp."""

    def __init__(self, root: Path, i: int, cfgs: dict[int, NodeConfig], rng: random.Random) -> None:
        self.id = i
        self.cfg = cfgs[i]
        self.disk = SimDisk(root / f"disk{i}", random.Random(rng.random()))
        self.boots = 1
        self.app: NodeApp | None = None
        self.stale_image: Path | None = None

    @property
    def engine_dir(self) -> Path:
        return Path(self.cfg.data_dir or "") / "engine"

    def start(self) -> NodeApp:
        boot = f"boot-{self.id}-{self.boots}"
        self.app = NodeApp(self.cfg, fs=self.disk.mount(), boot_id=lambda: boot).start()
        return self.app

    def keep_stale_image(self) -> None:
        """A consistent copy of the store as it is now (what a torn store's data pages hold)."""
        assert self.app is not None
        dest = self.engine_dir.parent / "stale"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        self.app.store._env.copy(str(dest))
        self.stale_image = dest / "data.mdb"

    def sigkill(self) -> None:
        """The process dies, the machine does not: the page cache (and the store) survive."""
        assert self.app is not None
        self.disk.process_crash()
        self.app.stop()  # cannot mark the store clean: the process's files are gone
        self.app = None

    def power_cut(self, how: str) -> None:
        """The machine loses power; the store is lost as ``how`` says unless marked clean."""
        assert self.app is not None
        applied = self.app.sm.applied_index
        self.disk.power_cut()
        self.app.stop()
        self.app = None
        self.boots += 1
        if b'"clean"' in self.disk.files().get(self._marker_key(), b""):
            return
        data = self.engine_dir / "data.mdb"
        if how == "lost":
            shutil.rmtree(self.engine_dir)
        elif how == "garbage":
            data.write_bytes(random.Random(applied).randbytes(max(data.stat().st_size, 1 << 16)))
        else:  # torn: old data pages under a meta page that says "applied up to the last entry"
            assert self.stale_image is not None
            shutil.copyfile(self.stale_image, data)
            with LMDBStore(self.engine_dir) as store, store.write() as w:
                w.put(META, APPLIED_KEY, struct.pack(">Q", applied))

    def _marker_key(self) -> str:
        return str((Path(self.cfg.data_dir or "") / "engine.state").relative_to(self.disk.root))


class PowerCluster:
    def __init__(self, root: Path, seed: int, n: int = 3, keep_entries: int = 400) -> None:
        self.rng = random.Random(seed)
        ids = list(range(1, n + 1))
        listen = {i: f"127.0.0.1:{free_port()}" for i in ids}
        raft = {i: f"127.0.0.1:{free_port()}" for i in ids}
        cfgs = {}
        for i in ids:
            disk_root = root / f"disk{i}"
            cfgs[i] = NodeConfig(
                member_id=i, listen=listen[i], raft_listen=raft[i],
                peers=[MemberSpec(j, listen[j], raft_host=raft[j]) for j in ids if j != i],
                data_dir=str(disk_root / "data"), snapshot_every=40, keep_entries=keep_entries,
                election_timeout_ms=400, heartbeat_ms=50, log_level="WARNING")
            os.makedirs(disk_root, exist_ok=True)
        self.machines = {i: Machine(root, i, cfgs, self.rng) for i in ids}
        for m in self.machines.values():
            m.start()
        self.acked: set[int] = set()
        self._next = 0
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None

    def primary(self) -> Machine | None:
        for m in self.machines.values():
            if m.app is not None and m.app.member.is_primary():
                return m
        return None

    def insert_one(self) -> None:
        m = self.primary()
        if m is None or m.app is None:
            time.sleep(0.01)
            return
        self._next += 1
        n = self._next
        try:
            reply = m.app.dispatcher.run("app", {"insert": "c", "documents": [{"_id": n}],
                                                 "writeConcern": {"w": "majority"}}, CTX)
        except Exception:
            return
        if reply.get("ok") == 1.0 and reply.get("n") == 1 and "writeConcernError" not in reply:
            self.acked.add(n)

    def start_writing(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.insert_one()
        self._stop.clear()
        self._writer = threading.Thread(target=loop, name="power-loss-writer", daemon=True)
        self._writer.start()

    def stop_writing(self) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.join(30)

    def wait_acked(self, n: int, timeout: float = 30.0) -> None:
        target = len(self.acked) + n
        wait_until(lambda: len(self.acked) >= target, timeout, f"{n} more acknowledged writes")

    def ids(self, m: Machine) -> list[Any]:
        assert m.app is not None
        return sorted(d["_id"] for d in m.app.engine.collection("app", "c").find({}))

    def check_converged(self, timeout: float = 60.0) -> None:
        """Every member holds every acknowledged write, and all hold the same documents."""
        def same() -> bool:
            views = [set(self.ids(m)) for m in self.machines.values()]
            return all(v == views[0] for v in views) and self.acked <= views[0]
        try:
            wait_until(same, timeout, "members to agree")
        except TimeoutError:
            views = {m.id: set(self.ids(m)) for m in self.machines.values()}
            missing = {i: sorted(self.acked - v)[:10] for i, v in views.items()}
            raise AssertionError(f"acknowledged writes missing per member: {missing}") from None

    def stop(self) -> None:
        self.stop_writing()
        for m in self.machines.values():
            if m.app is not None:
                m.app.stop()


def run_power_loss(root: Path, seed: int, events: list[tuple[str, str]],
                   keep_entries: int = 400) -> PowerCluster:
    """Writes flow throughout; each event hits one member: ("sigkill", who) or
    ("power", who/how) with who in {primary, secondary} and how in {garbage, lost, torn}.
    Snapshots every 40 entries; with many ``keep_entries`` a restarted member catches up from
    its own snapshot and log, with few the leader sends it a snapshot."""
    c = PowerCluster(root, seed, keep_entries=keep_entries)
    try:
        wait_until(c.primary, 30, "a primary")
        c.start_writing()
        for kind, spec in events:
            who, _, how = spec.partition("/")
            c.wait_acked(c.rng.randint(20, 60))
            prim = c.primary()
            others = [m for m in c.machines.values() if m is not prim and m.app is not None]
            victim = prim if who == "primary" and prim is not None else c.rng.choice(others)
            victim.keep_stale_image()
            c.wait_acked(c.rng.randint(30, 80))  # the image falls behind, a snapshot or two pass
            if kind == "sigkill":
                victim.sigkill()
            else:
                victim.power_cut(how)
            c.wait_acked(c.rng.randint(5, 30))  # the others go on without it
            app = victim.start()
            assert app.store_guard is not None
            discarded = kind == "power" and how != "lost"  # lost: nothing left to discard
            assert app.store_guard.rebuilt == discarded, app.store_guard.reason
            c.wait_acked(10)
        c.stop_writing()
        c.check_converged()
        assert len(c.acked) >= 100
        return c
    finally:
        c.stop()


def test_replset_power_loss_member_restarts_agrees_and_loses_nothing(tmp_path: Path) -> None:
    c = run_power_loss(tmp_path, int(os.environ.get("POWER_LOSS_SEED", "7")), [
        ("sigkill", "secondary"), ("power", "secondary/torn"), ("power", "primary/garbage")])
    assert sum(m.disk.power_cuts for m in c.machines.values()) == 2


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
def test_replset_power_loss_many_cuts(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    events = [("power", f"{rng.choice(['primary', 'secondary'])}/"
                        f"{rng.choice(['garbage', 'lost', 'torn'])}")
              if rng.random() < 0.8 else ("sigkill", rng.choice(["primary", "secondary"]))
              for _ in range(6)]
    run_power_loss(tmp_path, 100 + seed, events, keep_entries=rng.choice([10, 400]))

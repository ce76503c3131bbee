"""Whether a replica member's engine store survived the last stop, and discarding it when not.

A replica member's LMDB store commits without fsync: the Raft WAL is the durable record. A
killed process loses nothing (LMDB's pages are in the OS page cache), but after an OS crash or
a power cut LMDB's own documentation says such a file may be corrupt, not merely behind. So the
data directory holds a marker, ``engine.state`` (written atomically through ``raft.fsio``):

* at start, before the store is opened: ``{"state": "open", "boot_id": <kernel boot id>}``;
* at a clean stop, after ``env.sync()`` and an fsync of the store's directory:
  ``{"state": "clean"}``.

At start the store is trusted when the marker says ``clean`` (it was synced at the last stop)
or ``open`` with the running kernel's boot id (the process died, the machine did not). Anything
else -- another boot id, no boot id to compare, no marker or an unreadable one beside an
existing store -- means the machine may have gone down with the store open: the store is
deleted and the member starts with an empty one, which Raft refills from the latest snapshot
(installed because the empty store is behind it) and the log above it. The snapshot files and
the log are fsynced before anything is acknowledged, so nothing acknowledged is lost.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from node.engine.lmdb_store import LMDBStore
from raft.fsio import OS_FS, FileSystem, write_atomic

__all__ = ["MARKER", "StoreGuard", "kernel_boot_id"]

log = logging.getLogger("helogale.store")

MARKER = "engine.state"
ENGINE_DIR = "engine"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def kernel_boot_id() -> str | None:
    """The running kernel's boot id (changes at every boot), None where there is none."""
    try:
        with open(BOOT_ID_PATH) as fh:
            return fh.read().strip() or None
    except OSError:
        return None


class StoreGuard:
    """Opens a replica member's LMDB store at ``data_dir/engine``, discarding it if it cannot
    be trusted (module docstring), and closes it cleanly. ``fs`` carries the marker (tests pass
    a simulated disk); ``boot_id`` is injectable so tests can simulate a reboot."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        fs: FileSystem | None = None,
        boot_id: Callable[[], str | None] = kernel_boot_id,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.engine_dir = self.data_dir / ENGINE_DIR
        self.marker = self.data_dir / MARKER
        self.fs = fs or OS_FS
        self._boot_id = boot_id
        self.rebuilt = False
        """True when the last :meth:`open` discarded the store."""
        self.reason = ""
        """Why the store was trusted or discarded (logged at start)."""

    def _read_marker(self) -> dict[str, object] | None:
        try:
            doc = json.loads(self.fs.read_bytes(self.marker))
        except FileNotFoundError:
            return None
        except ValueError:
            return {"state": "unreadable"}
        return doc if isinstance(doc, dict) else {"state": "unreadable"}

    def verdict(self, boot: str | None) -> tuple[bool, str]:
        """(trust the existing store?, why)."""
        if not (self.engine_dir / "data.mdb").exists():
            return True, "no store yet"
        marker = self._read_marker()
        if marker is None:
            return False, f"no {MARKER} marker beside the store"
        state = marker.get("state")
        if state == "clean":
            return True, "clean stop"
        if state == "open" and boot is not None and marker.get("boot_id") == boot:
            return True, "the process stopped, the machine did not (same boot id)"
        if state == "open":
            return False, "the machine restarted while the store was open (boot id changed)"
        return False, f"marker state {state!r}"

    def open(self, map_size: int | None = None, max_readers: int | None = None) -> LMDBStore:
        """The store, after marking it open (durably) with this boot's id (``map_size``: the
        LMDB map's size, ``max_readers`` its reader slots; default the store's)."""
        self.fs.makedirs(self.data_dir)
        boot = self._boot_id()
        trusted, self.reason = self.verdict(boot)
        self.rebuilt = not trusted
        if not trusted:
            log.warning("discarding the engine store; Raft rebuilds it from the latest snapshot "
                        "and the log", extra={"fields": {"reason": self.reason}})
            shutil.rmtree(self.engine_dir, ignore_errors=True)
        # durable before the store's first unsynced commit: from here on a crash of the
        # machine is recognised at the next start
        write_atomic(self.fs, self.marker,
                     json.dumps({"state": "open", "boot_id": boot}).encode())
        os.makedirs(self.engine_dir, exist_ok=True)
        sizes: dict[str, int] = {}
        if map_size is not None:
            sizes["map_size"] = map_size
        if max_readers is not None:
            sizes["max_readers"] = max_readers
        return LMDBStore(self.engine_dir, sync=False, **sizes)

    def close(self, store: LMDBStore) -> None:
        """Clean stop (nothing writes to ``store`` any more): flush it to disk, then mark it
        clean. If the disk refuses (the machine is going down), the marker stays ``open`` and
        the next start decides by boot id."""
        try:
            store.sync()
            OS_FS.fsync_dir(self.engine_dir)
            write_atomic(self.fs, self.marker, json.dumps({"state": "clean"}).encode())
        except OSError as exc:
            log.warning("could not mark the engine store clean",
                        extra={"fields": {"error": str(exc)}})
        finally:
            store.close()

"""StoreGuard: a replica member's unsynced LMDB store is trusted after a clean stop or a process
crash, and discarded after the machine went down with it open (the boot id changed)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from node.engine.lmdb_store import LMDBStore
from node.server.store_guard import MARKER, StoreGuard
from tests.power_loss_fs import SimDisk


def put(store: LMDBStore, value: bytes) -> None:
    with store.write() as w:
        w.put("t", b"k", value)


def get(store: LMDBStore) -> bytes | None:
    with store.read() as r:
        return r.get("t", b"k")


def marker(data: Path) -> dict:
    return json.loads((data / MARKER).read_text())


def test_fresh_directory_is_marked_open_with_the_boot_id(tmp_path: Path) -> None:
    g = StoreGuard(tmp_path / "d", boot_id=lambda: "boot-1")
    store = g.open()
    assert not g.rebuilt and g.reason == "no store yet"
    assert marker(tmp_path / "d") == {"state": "open", "boot_id": "boot-1"}
    g.close(store)
    assert marker(tmp_path / "d") == {"state": "clean"}


def test_clean_stop_is_trusted_after_a_reboot(tmp_path: Path) -> None:
    g = StoreGuard(tmp_path, boot_id=lambda: "boot-1")
    store = g.open()
    put(store, b"v")
    g.close(store)
    g = StoreGuard(tmp_path, boot_id=lambda: "boot-2")
    store = g.open()
    try:
        assert not g.rebuilt and g.reason == "clean stop"
        assert get(store) == b"v"
    finally:
        store.close()


def test_process_crash_is_trusted_on_the_same_boot(tmp_path: Path) -> None:
    g = StoreGuard(tmp_path, boot_id=lambda: "boot-1")
    store = g.open()
    put(store, b"v")
    store.close()  # no clean stop: the process died
    g = StoreGuard(tmp_path, boot_id=lambda: "boot-1")
    store = g.open()
    try:
        assert not g.rebuilt and "same boot id" in g.reason
        assert get(store) == b"v"
    finally:
        store.close()


@pytest.mark.parametrize("next_boot", ["boot-2", None])
def test_machine_crash_discards_the_store(tmp_path: Path, next_boot: str | None) -> None:
    g = StoreGuard(tmp_path, boot_id=lambda: "boot-1")
    store = g.open()
    put(store, b"v")
    store.close()  # the machine went down with the store open
    (tmp_path / "engine" / "data.mdb").write_bytes(random.Random(1).randbytes(1 << 16))
    g = StoreGuard(tmp_path, boot_id=lambda: next_boot)  # None: no boot id to compare
    store = g.open()
    try:
        assert g.rebuilt
        assert get(store) is None  # empty: Raft refills it
        assert marker(tmp_path) == {"state": "open", "boot_id": next_boot}
    finally:
        store.close()


def test_no_boot_id_is_never_trusted_after_an_unclean_stop(tmp_path: Path) -> None:
    g = StoreGuard(tmp_path, boot_id=lambda: None)
    store = g.open()
    put(store, b"v")
    store.close()
    g = StoreGuard(tmp_path, boot_id=lambda: None)
    g.open().close()
    assert g.rebuilt


@pytest.mark.parametrize("content", [None, b"{not json", b"[]", b'{"state": "weird"}'])
def test_missing_or_unreadable_marker_beside_a_store_discards_it(tmp_path: Path,
                                                                 content: bytes | None) -> None:
    g = StoreGuard(tmp_path, boot_id=lambda: "boot-1")
    store = g.open()
    put(store, b"v")
    g.close(store)
    if content is None:
        (tmp_path / MARKER).unlink()  # a data directory from before the marker existed
    else:
        (tmp_path / MARKER).write_bytes(content)
    g = StoreGuard(tmp_path, boot_id=lambda: "boot-1")
    store = g.open()
    try:
        assert g.rebuilt and get(store) is None
    finally:
        store.close()


def test_power_loss_of_the_marker_never_trusts_an_unsynced_store(tmp_path: Path) -> None:
    """On a disk that drops what was not fsynced, a power cut at any point of start or stop
    leaves either ``clean`` after the store's sync, or an ``open`` marker the next boot
    distrusts -- never an old ``clean`` over a store written since."""
    for seed in range(12):
        root = tmp_path / str(seed)
        disk = SimDisk(root, random.Random(seed))
        g = StoreGuard(root, fs=disk.mount(), boot_id=lambda: "boot-1")
        store = g.open()
        put(store, b"v1")
        g.close(store)  # clean, durable
        g = StoreGuard(root, fs=disk.mount(), boot_id=lambda: "boot-1")
        store = g.open()  # marked open (durable) before the write below
        put(store, b"v2")
        store.close()
        disk.power_cut()
        g = StoreGuard(root, fs=disk.mount(), boot_id=lambda: "boot-2")
        g.open().close()
        assert g.rebuilt, seed


def test_close_on_a_dead_disk_leaves_the_marker_open(tmp_path: Path) -> None:
    disk = SimDisk(tmp_path)
    g = StoreGuard(tmp_path, fs=disk.mount(), boot_id=lambda: "boot-1")
    store = g.open()
    put(store, b"v")
    disk.power_cut()
    g.close(store)  # logs, does not raise; the store is closed
    with pytest.raises(Exception, match="closed"):
        get(store)
    g = StoreGuard(tmp_path, fs=disk.mount(), boot_id=lambda: "boot-2")
    g.open().close()
    assert g.rebuilt

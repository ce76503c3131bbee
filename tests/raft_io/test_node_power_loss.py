"""RaftNode's own metadata under power loss (the WAL's is in test_wal_power_loss.py)."""

from __future__ import annotations

import random
from pathlib import Path

from raft.node import RaftNode
from tests.power_loss_fs import SimDisk
from tests.raft_io.kv_cluster import free_port


def test_peers_json_survives_power_loss_whole(tmp_path: Path) -> None:
    """peers.json (members' addresses, needed once their conf-change entries are compacted) is
    rewritten atomically: after a power cut it holds the old or the new addresses, and the
    member starts either way."""
    for seed in range(12):
        disk = SimDisk(tmp_path / str(seed), random.Random(seed))
        data = disk.root / "raft"
        peers = {1: f"127.0.0.1:{free_port()}"}
        node = RaftNode(1, data, peers, lambda ents: None, fs=disk.mount())
        try:
            node._addresses[4] = "10.0.0.4:7004"
            node._save_addresses()
            node._addresses[5] = "10.0.0.5:7005"
            node._save_addresses()  # returned: durable
            node._addresses[6] = "10.0.0.6:7006"
            node._save_addresses()
        finally:
            node.stop()
        disk.power_cut()
        node = RaftNode(1, data, {1: f"127.0.0.1:{free_port()}"}, lambda ents: None,
                        fs=disk.mount())
        try:
            assert node._addresses.get(5) == "10.0.0.5:7005", seed
        finally:
            node.stop()

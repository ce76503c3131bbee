"""Failover through the client: a writer thread keeps writing with w="majority" while the primary
is SIGKILLed. It must see no error (only a pause), and every acknowledged write must be applied
exactly once — retryable writes (lsid + txnNumber) make the client's retry safe."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

import helogale
from node.local_cluster import wait_until

pytestmark = pytest.mark.cluster


class Writer(threading.Thread):
    """Alternates an insert of ``{seq: i}`` (read back at once) and a ``$inc`` of one counter
    until stopped."""

    def __init__(self, collection: helogale.Collection) -> None:
        super().__init__(name="failover-writer", daemon=True)
        self.collection = collection
        self.stop_event = threading.Event()
        self.acked_seqs: list[int] = []
        self.acked_incs = 0
        self.errors: list[BaseException] = []
        self.longest_pause = 0.0
        self.lock = threading.Lock()

    def acked(self) -> int:
        with self.lock:
            return len(self.acked_seqs) + self.acked_incs

    def run(self) -> None:
        seq = 0
        try:
            while not self.stop_event.is_set():
                start = time.monotonic()
                if seq % 2 == 0:
                    self.collection.insert_one({"seq": seq})
                    with self.lock:
                        self.acked_seqs.append(seq)
                    # a read on the primary (retryable read) sees the acknowledged write
                    assert self.collection.find_one({"seq": seq}) is not None
                else:
                    result = self.collection.update_one({"_id": "counter"}, {"$inc": {"n": 1}})
                    assert result.modified_count == 1
                    with self.lock:
                        self.acked_incs += 1
                self.longest_pause = max(self.longest_pause, time.monotonic() - start)
                seq += 1
        except BaseException as exc:  # the test asserts there is none
            self.errors.append(exc)


def check_writes_survive(disrupt: str) -> None:
    from node.local_cluster import LocalCluster

    with LocalCluster(members=3) as cluster:
        client = helogale.MongoClient(cluster.uri, w="majority", serverSelectionTimeoutMS=30000,
                                      heartbeatFrequencyMS=500, connectTimeoutMS=2000)
        try:
            coll = client.failover.events
            coll.insert_one({"_id": "counter", "n": 0})
            writer = Writer(coll)
            writer.start()
            wait_until(lambda: writer.acked() >= 40 or writer.errors, 60, "writes before")
            old_primary = cluster.primary_index()
            assert old_primary is not None
            old_address = helogale.uri.parse_host(cluster.addresses[old_primary])
            before = writer.acked()
            if disrupt == "kill":
                cluster.kill(old_primary)
            else:
                cluster.pause(old_primary)
            wait_until(lambda: writer.acked() >= before + 40 or writer.errors, 90, "writes after")
            writer.stop_event.set()
            writer.join(60)
            assert not writer.is_alive()
            assert writer.errors == [], writer.errors
            assert client.primary not in (None, old_address)
            assert client.executor.retries >= 1  # the disruption was survived by retrying

            seqs = Counter(doc["seq"] for doc in coll.find({"seq": {"$exists": True}}))
            assert all(seqs[s] == 1 for s in writer.acked_seqs), "an acknowledged insert is missing or doubled"
            assert set(seqs) == set(writer.acked_seqs)
            assert coll.find_one({"_id": "counter"})["n"] == writer.acked_incs
            print(f"{disrupt}: {writer.acked()} writes, longest pause {writer.longest_pause:.2f}s")

            # the old primary comes back as a member the client sees again
            if disrupt == "kill":
                cluster.restart(old_primary)
            else:
                cluster.resume(old_primary)
            wait_until(lambda: old_address in client.nodes, 60, "the old primary to rejoin")
            assert coll.count_documents({"seq": {"$exists": True}}) == len(writer.acked_seqs)
        finally:
            client.close()


def test_writes_survive_primary_sigkill() -> None:
    check_writes_survive("kill")


def test_writes_survive_primary_pause() -> None:
    """SIGSTOP: requests to the frozen primary hang until its monitor gives up on it; they are
    then abandoned and retried on the new primary."""
    check_writes_survive("pause")

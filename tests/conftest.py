"""Fixtures shared across test modules: the one sharded cluster (started on first use)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import start_shared_cluster


@pytest.fixture(scope="session")
def sharded() -> Iterator[ShardedCluster]:
    cluster = start_shared_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()

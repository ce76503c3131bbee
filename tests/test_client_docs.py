"""Runs every ``python`` block of docs/client.md, in order, against a real local replica set."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "client.md"
SHOWN_URI = "helogale://localhost:27027/?replicaSet=rs0"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_doc_has_the_books_examples() -> None:
    code = "\n".join(python_blocks(DOC.read_text()))
    for call in ("Connection(", "insert(user_doc, safe=True)", "w=2", "find_one(", ".count()",
                 "$set", "multi=True", "find_and_modify(", "remove(None, safe=True)"):
        assert call in code, call
    assert SHOWN_URI in code


@pytest.fixture(scope="module")
def cluster_uri() -> Iterator[str]:
    from node.local_cluster import LocalCluster

    with LocalCluster(members=3) as cluster:
        yield cluster.uri


@pytest.mark.cluster
def test_doc_examples_run(cluster_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": "client_doc"}
    for block in python_blocks(DOC.read_text()):
        exec(compile(block.replace(SHOWN_URI, cluster_uri), str(DOC), "exec"), namespace)
    out = capsys.readouterr().out
    assert "Connected successfully" in out
    assert "There are 2 documents in users collection" in out
    assert "janedoe74@example.com" in out

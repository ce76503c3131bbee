"""The engine demo (``helogale demo``) runs quickly and shows real results."""

from __future__ import annotations

import io
import time

from node.engine.demo import run_demo


def test_demo_prints_the_tour_in_under_two_seconds() -> None:
    out = io.StringIO()
    started = time.process_time()  # CPU time: robust on a loaded machine
    run_demo(out)
    elapsed = time.process_time() - started
    text = out.getvalue()
    assert elapsed < 2.0
    assert "insert 3 users -> n=3" in text
    assert "n=2 nModified=2" in text
    assert "{email: 'foouser2@example2.com', primary: True}" in text
    assert "foo3@example3.com" not in text.split("$pull by regex:")[1].split("find_and_modify")[0]
    assert [line.strip() for line in text.splitlines() if "hits:" in line] == [
        "{name: 'home', hits: 1}",
        "{name: 'home', hits: 2}",
        "{name: 'home', hits: 3}",
    ]
    assert "code 14 TypeMismatch" in text

"""Subprocess for tests/test_durability.py: applies numbered operations to an LMDBStore forever.

Operation ``n`` (1, 2, ...) writes row ``n`` of table ``data`` (a value of a few KiB derived from
``n``), deletes row ``n - 2`` when ``n`` is a multiple of 3, adds ``n`` to the running total in
table ``sum`` and sets ``meta/applied`` to ``n`` -- all in one transaction. After each commit the
writer prints ``n`` on stdout. The state after op ``N`` is therefore a pure function of ``N``
(:func:`expected_state`), which the test checks after killing this process at random moments.

Usage: ``python tests/durability_writer.py PATH``
"""

from __future__ import annotations

import hashlib
import sys

from node.engine.lmdb_store import LMDBStore


def row_key(n: int) -> bytes:
    return n.to_bytes(8, "big")


def row_value(n: int) -> bytes:
    seed = hashlib.sha256(str(n).encode()).digest()
    return seed * (1 + n % 97)  # 32 bytes .. ~3 KiB, so commits touch several pages


def expected_state(applied: int) -> tuple[dict[bytes, bytes], int]:
    """The rows of ``data`` and the value of ``sum/total`` after ops 1..applied."""
    rows = {
        row_key(k): row_value(k)
        for k in range(1, applied + 1)
        if not ((k + 2) % 3 == 0 and k + 2 <= applied)
    }
    return rows, applied * (applied + 1) // 2


def main(path: str) -> None:
    store = LMDBStore(path, sync=True)
    while True:
        with store.write() as w:
            raw = w.get("meta", b"applied")
            n = (int(raw) if raw is not None else 0) + 1
            w.put("data", row_key(n), row_value(n))
            if n % 3 == 0:
                w.delete("data", row_key(n - 2))
            total = int(w.get("sum", b"total") or b"0") + n
            w.put("sum", b"total", str(total).encode())
            w.put("meta", b"applied", str(n).encode())
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])

"""CRC-32C (Castagnoli), the checksum OP_MSG carries when its checksumPresent flag is set.

Computed by ``google-crc32c``'s native library (hardware CRC instructions where the CPU has
them): a pure-Python loop took about a second of CPU for a 16 MB message, so a client sending
checksummed 48 MB messages could keep a core busy with checksums alone.
"""

from __future__ import annotations

import google_crc32c

IMPLEMENTATION: str = google_crc32c.implementation
"""``"c"`` when the native library is in use (``"python"``: its slow fallback)."""


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """The CRC-32C of ``data`` (continuing from ``crc``)."""
    return int(google_crc32c.extend(crc, data if isinstance(data, bytes) else bytes(data)))

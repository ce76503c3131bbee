"""Placeholder replaced by the status page step."""

from __future__ import annotations


def status_page(router: str) -> tuple[str, bytes]:
    return "text/plain; charset=utf-8", f"helogale router {router}\n".encode()

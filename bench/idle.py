"""Row c+idle: validate (cache hit) while 200 idle and 200 half-sent sockets are held.

The sockets come from one client, as in an attack: 200 that sent a request's headers
but never the blank line that ends them, and 200 keep-alive connections idle after
one answered request. Windows with them held alternate with windows without, so the
ratio of the p99s is measured side by side. The server drops both kinds at the header
deadline (TOKENSVC_HEADER_TIMEOUT): they are opened again before each window.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from bench.load import Load, Result
from bench.report import Summary, summarize

SOCKETS = 200  # of each kind


@contextlib.contextmanager
def held_sockets(url: str, count: int = SOCKETS) -> Iterator[None]:
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    head = f"GET /healthz HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode()
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            half = socket.create_connection(address, timeout=5)
            opened.append(half)
            half.sendall(head)
            idle = socket.create_connection(address, timeout=5)
            opened.append(idle)
            idle.sendall(head + b"\r\n")
            idle.recv(65536)  # answered: now an idle keep-alive connection
        yield
    finally:
        for sock in opened:
            sock.close()


def validate_with_idle_sockets(
    url: str, validate: Callable[[Load], Result], load: Load, rounds: int
) -> tuple[Summary, dict[str, float]]:
    """The row, and the p99s with and without the sockets held (medians over rounds)."""
    without: list[Result] = []
    held: list[Result] = []
    for _ in range(rounds):
        without.append(validate(load))
        with held_sockets(url):
            held.append(validate(load))
    extra = {
        "validate_p99_without_idle_ms": statistics.median(r.p99_ms for r in without),
        "validate_p99_idle_sockets_ms": statistics.median(r.p99_ms for r in held),
    }
    extra["idle_p99_ratio"] = (
        extra["validate_p99_idle_sockets_ms"] / extra["validate_p99_without_idle_ms"]
    )
    label = f"validate hit, {SOCKETS} idle + {SOCKETS} half-sent sockets held"
    return summarize("granian", "c+idle", label, held), extra

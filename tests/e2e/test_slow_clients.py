"""Idle, silent and slow clients against `tokensvc serve` with its defaults.

A connection must not cost a request thread: idle keep-alive sockets, half-sent
requests and bodies sent a byte at a time by a client without a key leave the API
answering. The header deadline (TOKENSVC_HEADER_TIMEOUT, default 5 s) drops what
never finishes its headers.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.support import Server, register, running
from tokensvc.auth import generate_key

HEADER_TIMEOUT = 5.0  # the default
WELL_UNDER_A_SECOND = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    with running("slow", tmp_path_factory.mktemp("slow")) as started:
        yield started


@contextlib.contextmanager
def sockets(
    server: Server, count: int, send: bytes, *, answered: bool = False
) -> Iterator[list[socket.socket]]:
    """``count`` connections that each sent ``send`` (and read its answer if ``answered``)."""
    opened = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            opened.append(sock)
            if send:
                sock.sendall(send)
            if answered:
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        yield opened
    finally:
        for sock in opened:
            sock.close()


def half_sent(server: Server) -> bytes:
    return f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()


def full_request(server: Server) -> bytes:
    return half_sent(server) + b"\r\n"


def assert_answers_fast(server: Server, proxy: str, token: str) -> None:
    for _ in range(5):
        started = time.monotonic()
        health = requests.get(f"{server.url}/healthz", timeout=3)
        valid = server.post("/v1/tokens/validate", proxy, {"token": token})
        elapsed = time.monotonic() - started
        assert (health.status_code, valid.status_code) == (200, 200)
        assert elapsed < WELL_UNDER_A_SECOND, f"{elapsed:.3f}s for healthz + validate"


def test_two_hundred_idle_and_half_sent_sockets_leave_the_api_answering(server):
    server, admin, proxy = server
    token = register(server, admin)
    with (
        sockets(server, 200, half_sent(server)),
        sockets(server, 200, full_request(server), answered=True),  # idle keep-alive
        sockets(server, 200, b""),  # connected, silent
    ):
        time.sleep(0.5)  # every socket accepted and parked in a worker
        assert_answers_fast(server, proxy, token)


def test_a_client_without_a_key_is_refused_before_it_sends_its_body(server):
    server, admin, proxy = server
    token = register(server, admin, port=5901)
    unknown = generate_key()  # well-formed, in no key table
    head = (
        f"POST /v1/tokens/validate HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {unknown}\r\nContent-Type: application/json\r\n"
        "Content-Length: 16000\r\n\r\n{"
    ).encode()
    # More slow senders than the server has request threads (2 workers x 4).
    with sockets(server, 24, head) as slow:
        for sock in slow:
            sock.settimeout(2)
            assert sock.recv(65536).startswith(b"HTTP/1.1 401"), "answered before the body"
        assert_answers_fast(server, proxy, token)


def closed_by_peer(sock: socket.socket, deadline: float) -> bool:
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_unfinished_headers_and_idle_keep_alive_are_dropped_at_the_header_deadline(server):
    server = server[0]
    with (
        sockets(server, 10, half_sent(server)) as half,
        sockets(server, 10, full_request(server), answered=True) as idle,
    ):
        deadline = time.monotonic() + HEADER_TIMEOUT + 3
        assert all(closed_by_peer(sock, deadline) for sock in half + idle)

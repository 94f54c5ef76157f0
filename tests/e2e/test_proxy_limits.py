"""`tokensvc proxy` against abuse: console addresses, connection cap, handshake deadline.

The service is a two-worker `tokensvc serve` on MariaDB + Redis; the proxies run as
`tokensvc proxy` processes; the console is a TCP server on 127.0.0.1 (loopback, so
only proxies started with ``--allow-console-network 127.0.0.0/8`` may dial it).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.consoles import (
    BANNER,
    ProxyProcess,
    Service,
    eventually,
    receive,
    refusal,
    running_service,
    user,
)
from tokensvc import tokens

DRIPPERS = 200
DEADLINE = 3.0  # the --handshake-timeout of the proxy the drippers go to
SLACK = 2.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("limits-service")
    with running_service("limits", directory) as started:
        yield started


def threads(proxy: ProxyProcess) -> int:
    status = Path(f"/proc/{proxy.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])


def is_closed(sock: socket.socket) -> bool:
    """True when the peer closed ``sock`` (EOF or reset), False while it is open."""
    try:
        return sock.recv(4096, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


# -- console addresses -----------------------------------------------------------------------
def test_a_loopback_console_is_refused_unless_the_network_is_allowed(service, proxies, console):
    confined = proxies.start("confined", networks=())
    token, _ = service.register(console.port)
    assert refusal(confined.port, token) == (1011, "console address not allowed")
    time.sleep(0.5)
    assert console.accepted == 0, "the proxy connected to a refused console"
    assert "127.0.0.1 is a loopback address (--allow-console-network)" in confined.output
    allowed = proxies.start("allowed", networks=("127.0.0.0/8",))
    ws = user(allowed.port, token)
    assert receive(ws, len(BANNER)) == BANNER
    ws.close()


# -- tokens ------------------------------------------------------------------------------------
def test_a_token_over_the_length_limit_is_an_invalid_token(service, proxies, console):
    proxy = proxies.start("long-tokens")
    assert refusal(proxy.port, "A" * 20000) == (4001, "invalid token")
    assert refusal(proxy.port, "A" * 44) == (4001, "invalid token")
    assert console.accepted == 0


def test_a_user_who_floods_invalid_tokens_is_turned_away_at_the_proxy(service, proxies, console):
    """Past --invalid-token-limit the proxy answers 4029 itself: the flood never reaches the
    service, whose own limit counts per caller and so would turn away every user of it."""
    proxy = proxies.start("flooded", "--invalid-token-limit", "3")
    token, _ = service.register(console.port)
    for _ in range(3):
        assert refusal(proxy.port, tokens.generate_token()) == (4001, "invalid token")
    code, reason = refusal(proxy.port, token)  # even a good token, for the rest of the window
    assert code == 4029 and reason.startswith("too many invalid tokens, retry in ")
    assert console.accepted == 0


# -- the handshake deadline ------------------------------------------------------------------
def test_dripping_clients_hold_no_thread_and_are_dropped_at_the_deadline(service, proxies, console):
    proxy = proxies.start("dripped", "--handshake-timeout", str(DEADLINE))
    idle_threads = threads(proxy)
    drippers = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(DRIPPERS)]
    opened, stop = time.monotonic(), threading.Event()

    def drip() -> None:
        # A byte each 0.5 s: any per-read timeout would be reset before it fired.
        request = b"GET /websockify?token=" + b"x" * 1000
        for byte in range(len(request)):
            for sock in drippers:
                with contextlib.suppress(OSError):
                    sock.send(request[byte : byte + 1])
            if stop.wait(0.5):
                return

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        time.sleep(1.0)
        assert threads(proxy) < idle_threads + 10, "the dripping clients hold threads"
        token, _ = service.register(console.port)
        ws = user(proxy.port, token)
        assert receive(ws, len(BANNER)) == BANNER
        ws.send_binary(b"still served")
        assert receive(ws, 12) == b"still served"
        ws.close()
        assert eventually(lambda: all(map(is_closed, drippers)), within=DEADLINE + SLACK)
        assert time.monotonic() - opened >= DEADLINE - 0.5, "dropped before the deadline"
    finally:
        stop.set()
        dripper.join(5)
        for sock in drippers:
            sock.close()
    assert f"handshake not completed within {DEADLINE:g} s" in proxy.output


# -- the connection cap ----------------------------------------------------------------------
def test_connections_over_the_cap_are_refused_at_once_and_sessions_go_on(service, proxies, console):
    proxy = proxies.start("capped", "--max-connections", "4")
    token, _ = service.register(console.port)
    live = user(proxy.port, token)
    assert receive(live, len(BANNER)) == BANNER
    idle = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(3)]
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as extra:
            started = time.monotonic()
            answer = extra.recv(4096)
            assert answer.startswith(b"HTTP/1.1 503 "), answer
            assert time.monotonic() - started < 1.0
        live.send_binary(b"unaffected")
        assert receive(live, 10) == b"unaffected"
    finally:
        for sock in idle:
            sock.close()
    other, _ = service.register(console.port)

    def admitted() -> bool:
        with contextlib.suppress(OSError):
            ws = user(proxy.port, other)
            receive(ws, len(BANNER))
            ws.close()
            return True
        return False

    assert eventually(admitted), "closed connections were not given back"
    live.close()
    assert "refused 1 connection(s): 4 open, the limit (--max-connections)" in proxy.output

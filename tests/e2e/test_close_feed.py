"""The close feed end to end: a revoke reaches a live session in well under a second.

Real `tokensvc serve` (MariaDB, with and without Redis) and `tokensvc proxy`, with the
default 30 s lease TTL: heartbeats alone would take up to 10 s.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.consoles import (
    BANNER,
    ConsoleServer,
    Proxies,
    Service,
    close_frame,
    receive,
    user,
)
from tests.e2e.support import LOOPBACK, Server, deployment
from tests.support import MariaDB
from tokensvc.server import STOP_TIMEOUT

LAG = 1.0  # seconds from the revoke's answer to the close frame, at most


@contextlib.contextmanager
def _database_only(cwd: Path) -> Iterator[Server]:
    mariadb = MariaDB()
    database_url = mariadb.create("feed")
    env = {"TOKENSVC_DATABASE_URL": database_url, "TOKENSVC_CONSOLE_NETWORKS": LOOPBACK}
    server = Server(env, cwd)
    try:
        assert server.cli("db", "upgrade").returncode == 0
        yield server
    finally:
        server.stop()
        mariadb.drop(database_url)
        mariadb.server.dispose()


@contextlib.contextmanager
def _with_redis(cwd: Path) -> Iterator[Server]:
    with deployment("feed", cwd) as (server, _):
        yield server


@pytest.fixture(scope="module", params=["redis", "database-only"])
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp(f"feed-{request.param}")
    shape = _with_redis if request.param == "redis" else _database_only
    with shape(directory) as server:
        yield Service.start(server, directory)


@pytest.fixture(scope="module")
def proxy(proxies: Proxies):
    return proxies.start("feed")


def _revoke_lag(service: Service, proxy, console: ConsoleServer, revoke) -> tuple[int, float]:
    token, instance = service.register(console.port)
    ws = user(proxy.port, token)
    try:
        assert receive(ws, len(BANNER)) == BANNER
        # Past the heartbeat's first beat (1 s after the first session): the next is 10 s off.
        time.sleep(2.0)
        revoke(token, instance)
        revoked_at = time.monotonic()
        code, _ = close_frame(ws, 15)
        return code, time.monotonic() - revoked_at
    finally:
        ws.close()


def test_a_revoked_token_closes_its_session_at_once(service, proxy, console):
    code, lag = _revoke_lag(
        service,
        proxy,
        console,
        lambda token, _: service.api("POST", "/v1/tokens/revoke", {"token": token}),
    )
    assert code == 4010 and lag < LAG, (code, lag)


def test_a_force_disconnect_closes_its_session_at_once(service, proxy, console):
    def force(token: str, instance: str) -> None:
        (lease,) = service.leases(instance)
        service.api("DELETE", f"/v1/leases/{lease['data']['id']}")

    code, lag = _revoke_lag(service, proxy, console, force)
    assert code == 4010 and lag < LAG, (code, lag)


def test_waiting_proxies_never_take_every_request_thread(tmp_path: Path):
    """One worker, four threads: however many feed calls wait, health and validate answer."""
    env = {"TOKENSVC_WORKERS": "1", "TOKENSVC_THREADS": "4"}
    with deployment("feed-cap", tmp_path, env) as (server, _):
        admin, proxy_key = server.create_key("admin"), server.create_key("proxy")
        server.start()
        service = Service(server, admin, tmp_path / "unused")
        token, _ = service.register(5900)
        path = "/v1/proxies/held/closes"
        cursor = server.call("GET", path, proxy_key).json()["cursor"]
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            held = [
                pool.submit(server.call, "GET", f"{path}?cursor={cursor}&wait=4", proxy_key)
                for _ in range(6)
            ]
            time.sleep(1.0)
            assert requests.get(f"{server.url}/healthz", timeout=2).status_code == 200
            validated = requests.post(
                f"{server.url}/v1/tokens/validate",
                json={"token": token},
                headers={"Authorization": f"Bearer {proxy_key}"},
                timeout=2,
            )
            assert validated.status_code == 200
            answers = [f.result().json() for f in held]
        assert sum(a["busy"] for a in answers) >= 4  # at most 2 (threads // 2) waited


def test_a_waiting_feed_call_does_not_hold_up_a_stop(tmp_path: Path):
    """A stop gives requests in flight STOP_TIMEOUT seconds, not a feed call's whole wait."""
    env = {"TOKENSVC_WORKERS": "1", "TOKENSVC_CLOSE_FEED_WAIT": "60"}
    with deployment("feed-stop", tmp_path, env) as (server, _):
        proxy_key = server.create_key("proxy")
        server.start()
        path = "/v1/proxies/stopping/closes"
        cursor = server.call("GET", path, proxy_key).json()["cursor"]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            held = pool.submit(
                requests.get,
                f"{server.url}{path}?cursor={cursor}&wait=60",
                headers={"Authorization": f"Bearer {proxy_key}"},
                timeout=90,
            )
            time.sleep(1.0)
            assert not held.done()  # it waits
            assert server.process is not None
            stopping = time.monotonic()
            server.process.terminate()
            server.process.wait(30)
            assert time.monotonic() - stopping < STOP_TIMEOUT + 3
            with contextlib.suppress(requests.RequestException):
                held.result()  # cut off (its proxy retries), or answered: either is fine

"""Helpers every kind of test shares: throwaway databases and redis-servers, free ports,
bounded waits, service keys, and consoles registered through the API.

Fixtures built on these live in tests/conftest.py; nothing here runs at import.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis
import sqlalchemy as sa
from flask import Flask

from tokensvc.auth import generate_key, hash_key
from tokensvc.db.engine import make_engine

# Where the test MariaDB server is; scripts/test makes sure it runs.
MYSQL_SERVER_URL = os.environ.get("TOKENSVC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")

# One id per test run (shared by its xdist workers), so concurrent runs never share databases.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]

POLL = 0.05  # seconds between two looks of every wait

AppFactory = Callable[..., Flask]  # the make_app fixture: Settings fields in, an app out


def _worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], within: float = 5.0, poll: float = POLL) -> bool:
    """True as soon as ``condition()`` is, False once ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


# -- the servers --------------------------------------------------------------------------
class MariaDB:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self) -> None:
        self.server = make_engine(MYSQL_SERVER_URL, poolclass=sa.pool.NullPool)
        try:
            with self.server.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            pytest.fail(f"MariaDB test server unreachable at {MYSQL_SERVER_URL}: {exc}")

    def create(self, label: str) -> str:
        name = f"tokensvc_test_{RUN_ID}_{_worker_id()}_{label}"
        with self.server.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        return f"{MYSQL_SERVER_URL}/{name}"

    def drop(self, url: str) -> None:
        name = sa.engine.make_url(url).database
        with self.server.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))


class RedisProcess:
    """A redis-server of the test's own, on its own port: no persistence, loopback only.

    Own stats, own lifetime: tests stop it and start it again on the same port.
    """

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tokensvc-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        assert self.process is None, "already running"
        log_path = self.workdir / "redis.log"
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            if not wait_until(lambda: self._answers(client, log_path), timeout):
                self.stop()
                raise RuntimeError(f"redis-server not ready in {timeout}s")
        finally:
            client.close()

    def _answers(self, client: redis.Redis, log_path: Path) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            self.process = None
            raise RuntimeError(f"redis-server exited: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(redis.RedisError):
            return bool(client.ping())
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# -- the API through a test client -----------------------------------------------------------
def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Keys:
    """Mints service keys straight into the app's key table."""

    def __init__(self, app: Flask) -> None:
        self.store = app.extensions["tokensvc"].keys

    def mint(self, role: str, host: str | None = None, proxy_id: str | None = None) -> str:
        key = generate_key()
        self.store.create(hash_key(key), role, host=host, proxy_id=proxy_id)
        return key

    def headers(self, role: str, host: str | None = None) -> dict[str, str]:
        return bearer(self.mint(role, host))


class ApiClient(Protocol):
    """What of Flask's and werkzeug's test clients the helpers below use."""

    def put(self, *args: Any, **kw: Any) -> Any: ...

    def post(self, *args: Any, **kw: Any) -> Any: ...


def put_instance(
    client: ApiClient,
    headers: dict[str, str],
    instance: str | None = None,
    compute_host: str = "compute-1",
) -> str:
    """Puts ``instance`` (a new uuid by default) on ``compute_host``; its uuid."""
    instance = instance or str(uuid.uuid4())
    answer = client.put(f"/v1/instances/{instance}", json={"host": compute_host}, headers=headers)
    assert answer.status_code in (200, 201), answer.get_data(as_text=True)
    return instance


def register_console(
    client: ApiClient,
    headers: dict[str, str],
    instance: str,
    port: int | None = 5900,
    **fields: Any,
) -> Any:
    """POST /v1/consoles: a novnc console at 10.0.0.5:``port`` unless ``fields`` say
    otherwise (``port=None`` leaves the port out); the answer, whatever its status."""
    body = {"instance_uuid": instance, "host": "10.0.0.5", "port": port, "console_type": "novnc"}
    body = {name: value for name, value in (body | fields).items() if value is not None}
    return client.post("/v1/consoles", json=body, headers=headers)


def registered_token(
    client: ApiClient, headers: dict[str, str], instance: str, port: int = 5900, **fields: Any
) -> str:
    """The token of a console ``register_console`` created (it must answer 201)."""
    answer = register_console(client, headers, instance, port, **fields)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    token: str = answer.get_json()["token"]
    return token

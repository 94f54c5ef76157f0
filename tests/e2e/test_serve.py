"""`tokensvc serve` as operators run it: real processes, real MariaDB and Redis."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import MariaDB, RedisProcess, free_port
from tokensvc import tokens
from tokensvc.db import schema

TOKENSVC = str(Path(sys.executable).with_name("tokensvc"))
INSTANCE = "5d6c0a3e-3f1b-4a8e-9a55-2b8a7c0e1f11"


class Server:
    """A `tokensvc serve` subprocess; its output goes to a file the tests read."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSVC_")}
        self.env |= env | {"TOKENSVC_BIND": f"127.0.0.1:{self.port}", "TOKENSVC_WORKERS": "2"}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.cwd = cwd
        self.log = cwd / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TOKENSVC, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [TOKENSVC, "serve"], env=self.env, cwd=self.cwd, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)

    def post(self, path: str, key: str, body: dict[str, object]) -> requests.Response:
        # A new connection each time, so requests spread over the worker processes.
        return requests.post(
            f"{self.url}{path}",
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {key}", "Connection": "close"},
        )

    def call(self, method: str, path: str, key: str, body: object = None) -> requests.Response:
        return requests.request(
            method,
            f"{self.url}{path}",
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {key}", "Connection": "close"},
        )


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    """A two-worker server on MariaDB + Redis, and an admin and a proxy key."""
    mariadb = MariaDB()
    database_url = mariadb.create("serve")
    redis_server = RedisProcess()
    redis_server.start()
    server = Server(
        {"TOKENSVC_DATABASE_URL": database_url, "TOKENSVC_REDIS_URL": redis_server.url},
        tmp_path_factory.mktemp("serve"),
    )
    assert server.cli("db", "upgrade").returncode == 0
    admin = json.loads(server.cli("keys", "create", "--role", "admin", "--json").stdout)["key"]
    proxy = json.loads(server.cli("keys", "create", "--role", "proxy", "--json").stdout)["key"]
    server.start()
    yield server, admin, proxy
    server.stop()
    redis_server.stop()
    mariadb.drop(database_url)


def register(server: Server, admin: str, port: int = 5900) -> str:
    server.call("PUT", f"/v1/instances/{INSTANCE}", admin, {"host": "compute-1"})
    body = {"instance_uuid": INSTANCE, "host": "10.2.0.9", "port": port, "console_type": "novnc"}
    answer = server.post("/v1/consoles", admin, body)
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def validations(server: Server, proxy: str, token: str, times: int = 12) -> set[int]:
    return {
        server.post("/v1/tokens/validate", proxy, {"token": token}).status_code
        for _ in range(times)
    }


REVOCATIONS = {
    "revoke": lambda s, admin, token: s.post("/v1/tokens/revoke", admin, {"token": token}),
    "rotate": lambda s, admin, token: register(s, admin),
    "delete": lambda s, admin, token: s.call("DELETE", f"/v1/instances/{INSTANCE}", admin),
    "move": lambda s, admin, token: s.call(
        "PUT", f"/v1/instances/{INSTANCE}", admin, {"host": "compute-2"}
    ),
}


@pytest.mark.parametrize("kind", list(REVOCATIONS))
def test_revocation_reaches_every_worker_on_the_next_validate(production, kind):
    server, admin, proxy = production
    token = register(server, admin)
    assert validations(server, proxy, token) == {200}  # cached in Redis, keys in both workers
    REVOCATIONS[kind](server, admin, token)
    assert validations(server, proxy, token) == {404}


def test_metrics_add_up_over_worker_processes(production):
    server, admin, proxy = production

    def hits() -> float:
        text = server.call("GET", "/metrics", admin).text
        found = re.search(r'^tokensvc_validate_total\{result="hit"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    token = register(server, admin, port=5999)
    before = hits()
    assert validations(server, proxy, token, times=10) == {200}
    assert hits() - before == 10


def test_logs_hold_no_token_and_no_hash(production):
    server, admin, proxy = production
    issued = [register(server, admin, port=port) for port in (6001, 6002)]
    for token in issued:
        validations(server, proxy, token, times=2)
        server.post("/v1/tokens/revoke", admin, {"token": token})
        validations(server, proxy, token, times=1)
    server.post("/v1/tokens/validate", proxy, {"token": tokens.generate_token() + "x"})
    log = server.log.read_text()
    assert "Listening at" in log  # the capture works
    for token in issued:
        assert token not in log and tokens.hash_token(token) not in log


def test_zero_configuration_serves_sqlite_with_a_bootstrap_key(tmp_path):
    server = Server({}, tmp_path)
    server.start()
    try:
        key_file = tmp_path / "tokensvc-admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        admin = key_file.read_text().strip()
        output = server.log.read_text()
        assert str(key_file) in output and admin not in output
        assert (tmp_path / "tokensvc.db").exists()
        proxy = json.loads(server.cli("keys", "create", "--role", "proxy", "--json").stdout)["key"]
        token = register(server, admin)
        assert validations(server, proxy, token, times=3) == {200}
        ready = requests.get(f"{server.url}/readyz", timeout=5).json()
        assert ready == {"database": "ok", "redis": "disabled"}
    finally:
        server.stop()


def test_serve_refuses_an_old_mysql_schema(tmp_path):
    mariadb = MariaDB()
    url = mariadb.create("old")
    try:
        result = Server({"TOKENSVC_DATABASE_URL": url}, tmp_path).cli("serve")
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"tokensvc: database schema is at no revision, this tokensvc needs "
            f"{schema.head_revision()}: run `tokensvc db upgrade`"
        ]
    finally:
        mariadb.drop(url)

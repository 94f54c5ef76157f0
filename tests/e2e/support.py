"""Real `tokensvc` processes for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from tests.support import MariaDB, RedisProcess, free_port
from tokensvc.config import Settings

INSTANCE = "5d6c0a3e-3f1b-4a8e-9a55-2b8a7c0e1f11"

TOKENSVC = str(Path(sys.executable).with_name("tokensvc"))
LOOPBACK = "127.0.0.0/8"  # where the tests' consoles listen


class Server:
    """A `tokensvc serve` subprocess; its output goes to a file the tests read."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSVC_")}
        self.env |= env | {"TOKENSVC_BIND": f"127.0.0.1:{self.port}"}  # serve's defaults
        # The default SQLite file and the bootstrap key go to cwd, not the user's state dir.
        self.env.setdefault("TOKENSVC_STATE_DIR", str(cwd))
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
            # Every worker up: granian stopped while it spawns one may never stop.
            if self.log.read_text().count("Started worker-") == self.workers:
                with contextlib.suppress(requests.ConnectionError):
                    if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                        return
            time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    @property
    def workers(self) -> int:
        return Settings.from_env(self.env).workers

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)

    def create_key(self, role: str) -> str:
        created = self.cli("keys", "create", "--role", role, "--json")
        assert created.returncode == 0, created.stderr
        key: str = json.loads(created.stdout)["key"]
        return key

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


def put_instance(server: Server, admin: str, instance: str | None = None) -> str:
    """Puts ``instance`` (a new uuid by default) on compute-1; its uuid."""
    instance = instance or str(uuid.uuid4())
    server.call("PUT", f"/v1/instances/{instance}", admin, {"host": "compute-1"})
    return instance


def register(
    server: Server, admin: str, port: int = 5900, instance: str = INSTANCE, **fields: Any
) -> str:
    """The token of a novnc console at 10.2.0.9:``port`` unless ``fields`` say otherwise."""
    put_instance(server, admin, instance)
    body = {"instance_uuid": instance, "host": "10.2.0.9", "port": port, "console_type": "novnc"}
    answer = server.post("/v1/consoles", admin, body | fields)
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


@contextlib.contextmanager
def running(
    label: str, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[Server, str, str]]:
    """A started ``deployment``'s server, and an admin and a proxy key made before it started."""
    with deployment(label, cwd, env) as (server, _):
        admin, proxy = server.create_key("admin"), server.create_key("proxy")
        server.start()
        yield server, admin, proxy


@contextlib.contextmanager
def deployment(
    label: str, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[Server, str]]:
    """A not yet started server on a migrated MariaDB database and a Redis of its own;
    with the Redis URL. Everything is stopped and dropped afterwards."""
    mariadb = MariaDB()
    database_url = mariadb.create(label)
    redis_server = RedisProcess()
    redis_server.start()
    settings = {"TOKENSVC_DATABASE_URL": database_url, "TOKENSVC_REDIS_URL": redis_server.url}
    # The tests' consoles listen on loopback, which the service refuses unless allowed.
    settings["TOKENSVC_CONSOLE_NETWORKS"] = LOOPBACK
    server = Server(settings | (env or {}), cwd)
    try:
        upgraded = server.cli("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        yield server, redis_server.url
    finally:
        server.stop()
        redis_server.stop()
        mariadb.drop(database_url)
        mariadb.server.dispose()

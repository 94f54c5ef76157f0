"""Shared fixtures: real SQLite and MariaDB databases, isolated per xdist worker."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import Engine

from tokensvc.app import create_app
from tokensvc.auth import generate_key, hash_key
from tokensvc.config import Settings
from tokensvc.db import schema
from tokensvc.db.engine import make_engine
from tokensvc.db.models import Base

# Where the test MariaDB server is; scripts/test makes sure it runs.
MYSQL_SERVER_URL = os.environ.get("TOKENSVC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


# One id per test run (shared by its xdist workers), so concurrent runs never share databases.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]


def _worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


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


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    server = MariaDB()
    yield server
    server.server.dispose()


@pytest.fixture(scope="session")
def mariadb_engine(mariadb: MariaDB) -> Iterator[Engine]:
    """One database per xdist worker, migrated to head once."""
    url = mariadb.create("main")
    engine = make_engine(url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()
    mariadb.drop(url)


@pytest.fixture
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the kind named by the test's ``backend`` parameter."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    server: MariaDB = request.getfixturevalue("mariadb")
    url = server.create(uuid.uuid4().hex[:8])
    yield url
    server.drop(url)


def _empty_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=["sqlite", "mariadb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at head: a new SQLite file, or the worker's MariaDB emptied."""
    if request.param == "sqlite":
        sqlite_engine = make_engine(f"sqlite:///{tmp_path / 'tokensvc.db'}")
        schema.ensure_schema(sqlite_engine)
        yield sqlite_engine
        sqlite_engine.dispose()
        return
    shared: Engine = request.getfixturevalue("mariadb_engine")
    _empty_tables(shared)
    yield shared
    _empty_tables(shared)


# -- Redis and the app ------------------------------------------------------------------
@pytest.fixture(scope="session")
def worker_redis() -> Iterator[RedisProcess]:
    """A redis-server of this xdist worker's own, so concurrent test runs never share one."""
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(worker_redis: RedisProcess) -> Iterator[str]:
    """The worker's own Redis (database 0; database 1 is its queue), emptied before the test."""
    client = redis.Redis(port=worker_redis.port)
    client.flushall()
    client.close()
    yield worker_redis.url


@pytest.fixture
def mariadb_url(mariadb_engine: Engine) -> Iterator[str]:
    """The worker's MariaDB database at head, emptied around the test."""
    _empty_tables(mariadb_engine)
    yield mariadb_engine.url.render_as_string(hide_password=False)
    _empty_tables(mariadb_engine)


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[AppFactory]:
    """Builds apps on the given settings (default: embedded SQLite, no Redis)."""
    built: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        overrides.setdefault("database_url", f"sqlite:///{tmp_path / 'tokensvc.db'}")
        app = create_app(Settings(**overrides))
        built.append(app)
        return app

    yield make
    for app in built:
        app.extensions["tokensvc"].dispose()


@pytest.fixture
def app(make_app: AppFactory, mariadb_url: str, redis_url: str) -> Flask:
    """The production shape: MariaDB and Redis."""
    return make_app(database_url=mariadb_url, redis_url=redis_url)


class Keys:
    """Mints service keys straight into the app's key table."""

    def __init__(self, app: Flask) -> None:
        self.store = app.extensions["tokensvc"].keys

    def mint(self, role: str, host: str | None = None, proxy_id: str | None = None) -> str:
        key = generate_key()
        self.store.create(hash_key(key), role, host=host, proxy_id=proxy_id)
        return key

    def headers(self, role: str, host: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(role, host)}"}


@pytest.fixture
def keys(app: Flask) -> Keys:
    return Keys(app)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    self.process = None
                    raise RuntimeError(f"redis-server exited: {log_path.read_text()[-2000:]}")
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server not ready in {timeout}s")
                time.sleep(0.05)
        finally:
            client.close()

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


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    server.stop()

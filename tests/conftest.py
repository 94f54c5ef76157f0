"""Shared fixtures: real SQLite and MariaDB databases, isolated per xdist worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import Engine

from tests.support import AppFactory, Keys, MariaDB, RedisProcess
from tokensvc.app import create_app
from tokensvc.config import Settings
from tokensvc.db import schema
from tokensvc.db.engine import make_engine
from tokensvc.db.models import Base


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


@pytest.fixture
def keys(app: Flask) -> Keys:
    return Keys(app)


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    server.stop()

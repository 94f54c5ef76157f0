"""Shared fixtures: real SQLite and MariaDB databases, isolated per xdist worker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from tokensvc.db import schema
from tokensvc.db.engine import make_engine
from tokensvc.db.models import Base

# Where the test MariaDB server is; scripts/test makes sure it runs.
MYSQL_SERVER_URL = os.environ.get("TOKENSVC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


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
        name = f"tokensvc_test_{_worker_id()}_{label}"
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

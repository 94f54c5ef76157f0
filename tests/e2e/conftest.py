"""End-to-end fixtures: a production-shaped `tokensvc serve` per test module."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import MariaDB, RedisProcess
from tests.e2e.support import Server


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

"""End-to-end fixtures: a production-shaped `tokensvc serve` per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.support import Server, deployment


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    """A two-worker server on MariaDB + Redis, and an admin and a proxy key."""
    with deployment("serve", tmp_path_factory.mktemp("serve")) as (server, _):
        admin, proxy = server.create_key("admin"), server.create_key("proxy")
        server.start()
        yield server, admin, proxy

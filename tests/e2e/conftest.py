"""End-to-end fixtures: a production-shaped `tokensvc serve` per test module, and the
proxies and consoles of the modules that define a ``service`` of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.consoles import ConsoleServer, Proxies, Service
from tests.e2e.support import Server, running


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    """A two-worker server on MariaDB + Redis, and an admin and a proxy key."""
    with running("serve", tmp_path_factory.mktemp("serve")) as started:
        yield started


@pytest.fixture(scope="module")
def proxies(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxies]:
    """Proxies against the module's ``service``, all stopped at the module's end."""
    started = Proxies(service.server.url, service.key_file, tmp_path_factory.mktemp("proxies"))
    yield started
    started.stop_all()


@pytest.fixture
def console() -> Iterator[ConsoleServer]:
    with ConsoleServer() as server:
        yield server

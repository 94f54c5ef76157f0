"""What only the database backend can do is decided in one place (tokensvc/stores/base.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa

from tokensvc.errors import UnsupportedInBackend
from tokensvc.stores.base import (
    BACKEND_CAPABILITIES,
    Capability,
    ConsoleRecords,
    require_capability,
)
from tokensvc.stores.cached import CachedStore
from tokensvc.stores.database import DatabaseStore
from tokensvc.stores.memcached import MemcachedStore

ROOT = Path(__file__).resolve().parents[2]
# Where the backend setting may be read: the settings, building the stores, and the
# deprecation warning and headers (not a capability: every answer of the mode has them).
READS_THE_BACKEND = {
    "tokensvc/config.py",
    "tokensvc/stores/base.py",
    "tokensvc/services.py",
    "tokensvc/app.py",
}
RECORDS_METHODS = ("list_by_instance", "purge_expired")


def backend_readers() -> set[str]:
    found = set()
    for path in [*ROOT.joinpath("tokensvc").rglob("*.py"), *ROOT.joinpath("workers").rglob("*.py")]:
        names = {
            node.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute)
        }
        if names & {"console_tokens_backend", "memcached_backend"}:
            found.add(str(path.relative_to(ROOT)))
    return found


def test_only_settings_services_and_the_deprecation_read_the_backend_setting() -> None:
    assert backend_readers() <= READS_THE_BACKEND


def test_each_store_s_capabilities_are_its_backend_s() -> None:
    assert DatabaseStore.capabilities == CachedStore.capabilities == frozenset(Capability)
    assert DatabaseStore.capabilities == BACKEND_CAPABILITIES["database"]
    assert MemcachedStore.capabilities == BACKEND_CAPABILITIES["memcached"] == frozenset()


def test_only_stores_with_records_implement_listing_and_purging() -> None:
    database = DatabaseStore(sa.create_engine("sqlite://"))
    assert isinstance(database, ConsoleRecords)
    assert all(callable(getattr(CachedStore, name, None)) for name in RECORDS_METHODS)
    assert not any(hasattr(MemcachedStore, name) for name in RECORDS_METHODS)


def test_a_missing_capability_is_unsupported_in_backend() -> None:
    require_capability(frozenset(Capability), Capability.LEASES)
    with pytest.raises(UnsupportedInBackend, match="console leases needs the database"):
        require_capability(frozenset(), Capability.LEASES)

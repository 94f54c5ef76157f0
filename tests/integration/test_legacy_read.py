"""The legacy memcached read imports only entries the memcached backend could have written.

memcached has no authentication: these tests write forged entries into a real memcached
the way an attacker on its network could, and check each is an invalid token, not imported.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from pymemcache.client.base import Client as MemcacheClient  # type: ignore[import-untyped]

from tests.integration.test_memcached import Api, MemcachedProcess
from tokensvc import tokens
from tokensvc.legacy import LegacyReadStore
from tokensvc.objects.console import utcnow
from tokensvc.stores import keys
from tokensvc.stores.rows import consoles

MAX_TOKEN_TTL = 3600


@pytest.fixture
def legacy(make_app, mariadb_url, redis_url) -> Iterator[tuple[Api, MemcacheClient]]:
    server = MemcachedProcess()
    app = make_app(
        database_url=mariadb_url,
        redis_url=redis_url,
        memcached_servers=(("127.0.0.1", server.port),),
        legacy_memcached_read=True,
        max_token_ttl=MAX_TOKEN_TTL,
    )
    api = Api(app)
    api.put_instance()
    client = MemcacheClient(("127.0.0.1", server.port))
    yield api, client
    client.close()
    server.stop()


def rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def data_of(api: Api) -> dict[str, Any]:
    """The data of an entry as the memcached backend writes it."""
    return {
        "instance_uuid": api.instance,
        "host": "10.5.0.1",
        "port": 5900,
        "access_url": None,
        "options": {},
        "expires": rfc3339(utcnow() + dt.timedelta(seconds=600)),
        "console_type": "novnc",
    }


def entry(data: Any, version: str = "1.2", console_type: str = "novnc") -> bytes:
    body = json.dumps(data, separators=(",", ":")).encode()
    return b"\n".join((console_type.encode(), version.encode(), body))


def plant(client: MemcacheClient, value: bytes) -> str:
    """A fresh token whose memcached entry is ``value``."""
    token = tokens.generate_token()
    # noreply=False: stored before the app asks on a connection of its own (no race).
    client.set(keys.memcached_key(tokens.hash_token(token)), value, expire=600, noreply=False)
    return token


def console_rows(api: Api) -> int:
    with api.app.extensions["tokensvc"].engine.connect() as conn:
        count: int = conn.execute(sa.select(sa.func.count()).select_from(consoles)).scalar_one()
        return count


def changed(**fields: Any) -> Callable[[Api], bytes]:
    return lambda api: entry(data_of(api) | fields)


def without(name: str) -> Callable[[Api], bytes]:
    return lambda api: entry({k: v for k, v in data_of(api).items() if k != name})


FAR_FUTURE = rfc3339(utcnow() + dt.timedelta(seconds=MAX_TOKEN_TTL + 3600))
PAST = rfc3339(utcnow() - dt.timedelta(seconds=60))
FORGED: dict[str, Callable[[Api], bytes]] = {
    "null expiry": changed(expires=None),
    "missing expiry": without("expires"),
    "far-future expiry": changed(expires=FAR_FUTURE),
    "expired": changed(expires=PAST),
    "expiry not a date": changed(expires=12345),
    "port a string": changed(port="5900"),
    "host a lone surrogate": changed(host="\ud800"),
    "options with a lone surrogate": changed(options={"x": "\udfff"}),
    "host a number": changed(host=5),
    "options a list": changed(options=[1, 2]),
    "missing options": without("options"),
    "missing console type": without("console_type"),
    "unknown console type": lambda api: entry(data_of(api) | {"console_type": "x"}, "1.2", "x"),
    "type line disagrees": lambda api: entry(data_of(api), console_type="serial"),
    "another token's hash": changed(token_hash=tokens.hash_token(tokens.generate_token())),
    "unknown field": changed(admin=True),
    "unknown instance": changed(instance_uuid="00000000-0000-4000-8000-000000000000"),
    "version 1.0 (no console type)": lambda api: entry(
        {k: v for k, v in data_of(api).items() if k != "console_type"}, "1.0"
    ),
    "newer minor version": lambda api: entry(data_of(api), "1.9"),
    "newer major version": lambda api: entry(data_of(api), "2.0"),
    "version not X.Y": lambda api: entry(data_of(api), "latest"),
    "data not an object": lambda api: entry([1, 2, 3]),
    "data null": lambda api: entry(None),
    "not JSON": lambda api: b"novnc\n1.2\n{not json",
    "deeply nested JSON": lambda api: b"novnc\n1.2\n" + b"[" * 100_000 + b"]" * 100_000,
    "garbage bytes": lambda api: b"\xff\xfe\x00\x80garbage",
    "garbage after the lines": lambda api: b"novnc\n1.2\n\xff\xfe\x00",
    "type line not UTF-8": lambda api: b"\xff\n1.2\n{}",
    "one line": lambda api: b"novnc",
    "empty": lambda api: b"",
}


@pytest.mark.parametrize("forged", FORGED.values(), ids=FORGED.keys())
def test_a_forged_entry_is_an_invalid_token_and_never_imported(legacy, forged, caplog):
    api, client = legacy
    token = plant(client, forged(api))
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # the second time: nothing was imported or cached by the first
            answer = api.client.post(
                "/v1/tokens/validate", json={"token": token}, headers=api.proxy
            )
            assert answer.status_code == 404, answer.get_data(as_text=True)
            assert answer.json["type"] == "/problems/invalid-token"
    assert console_rows(api) == 0
    assert api.app.extensions["tokensvc"].metrics.legacy_imports._value.get() == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings, "a refused entry is logged"
    for record in warnings:
        message = record.getMessage()
        assert token not in message and tokens.hash_token(token) not in message


def test_a_well_formed_entry_is_imported(legacy):
    """The control for the forged ones: the same entry, unchanged, is imported."""
    api, client = legacy
    token = plant(client, entry(data_of(api)))
    assert api.validate(token) == 200
    assert console_rows(api) == 1
    assert api.app.extensions["tokensvc"].metrics.legacy_imports._value.get() == 1


def test_a_well_formed_entry_carrying_its_own_hash_is_imported(legacy):
    api, client = legacy
    token = tokens.generate_token()
    value = entry(data_of(api) | {"token_hash": tokens.hash_token(token)})
    client.set(keys.memcached_key(tokens.hash_token(token)), value, expire=600, noreply=False)
    assert api.validate(token) == 200
    assert console_rows(api) == 1


def test_the_store_imports_and_warms_the_cache_itself(legacy):
    """The import is the wrapping store's lookup: what validate calls, and nothing else."""
    api, client = legacy
    services = api.app.extensions["tokensvc"]
    assert isinstance(services.store, LegacyReadStore)
    assert services.store.store is services.cached
    token = plant(client, entry(data_of(api)))
    token_hash = tokens.hash_token(token)
    found = services.store.lookup(token_hash)
    assert found is not None and found.console_type == "novnc"
    assert console_rows(api) == 1
    assert services.metrics.legacy_imports._value.get() == 1
    client.delete(keys.memcached_key(token_hash))
    assert services.cached.cache.get(token_hash) is not None  # warmed by the import
    assert services.store.lookup(token_hash) == found


def test_garbage_in_memcached_mode_is_an_invalid_token(make_app, mariadb_url):
    server = MemcachedProcess()
    try:
        app = make_app(
            database_url=mariadb_url,
            console_tokens_backend="memcached",
            memcached_servers=(("127.0.0.1", server.port),),
        )
        client = MemcacheClient(("127.0.0.1", server.port))
        token = plant(client, b"\xff\xfe\x00\x80garbage")
        client.close()
        assert Api(app).validate(token) == 404
    finally:
        server.stop()

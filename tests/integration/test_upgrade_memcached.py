"""docs/upgrade-memcached.md, claim by claim, on real MariaDB, Redis and memcached."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from tests.integration.test_memcached import MemcachedProcess
from tests.support import Keys, put_instance, registered_token
from tokensvc import tokens
from tokensvc.stores.rows import consoles


@pytest.fixture
def memcached() -> Iterator[MemcachedProcess]:
    server = MemcachedProcess()
    yield server
    server.stop()


def validate(app: Flask, token: str) -> int:
    headers = Keys(app).headers("proxy")
    answer = app.test_client().post("/v1/tokens/validate", json={"token": token}, headers=headers)
    status: int = answer.status_code
    return status


def issued(app: Flask) -> str:
    """A token of a new console registered through ``app``."""
    client, admin = app.test_client(), Keys(app).headers("admin")
    return registered_token(client, admin, put_instance(client, admin))


def imports(app: Flask) -> float:
    count: float = app.extensions["tokensvc"].metrics.legacy_imports._value.get()
    return count


def test_memcached_mode_tokens_validate_after_the_switch_with_the_legacy_read_off(
    make_app, mariadb_url, redis_url, memcached: MemcachedProcess
):
    """The database row written in memcached mode is the whole console: nothing to import."""
    servers = (("127.0.0.1", memcached.port),)
    old = make_app(
        database_url=mariadb_url, console_tokens_backend="memcached", memcached_servers=servers
    )
    token = issued(old)
    memcached.stop()  # the switched process never asks it
    new = make_app(database_url=mariadb_url, redis_url=redis_url, memcached_servers=servers)
    assert validate(new, token) == 200
    assert imports(new) == 0


def test_side_by_side_tokens_issued_by_switched_processes_fail_in_memcached_mode(
    make_app, mariadb_url, redis_url, memcached: MemcachedProcess
):
    old, new = switched(make_app, mariadb_url, redis_url, memcached)
    before, after = issued(old), issued(new)
    assert (validate(old, before), validate(new, before)) == (200, 200)
    assert (validate(old, after), validate(new, after)) == (404, 200)
    assert imports(new) == 0


def switched(make_app, mariadb_url, redis_url, memcached) -> tuple[Flask, Flask]:
    """A process in memcached mode and one switched to the database, legacy read on."""
    servers = (("127.0.0.1", memcached.port),)
    old = make_app(
        database_url=mariadb_url, console_tokens_backend="memcached", memcached_servers=servers
    )
    new = make_app(
        database_url=mariadb_url,
        redis_url=redis_url,
        memcached_servers=servers,
        legacy_memcached_read=True,
    )
    return old, new


def side_by_side(make_app, mariadb_url, redis_url, memcached) -> tuple[Flask, Flask, str]:
    """A process in memcached mode, a switched one with the legacy read, and a token the
    first issued that the second revoked."""
    old, new = switched(make_app, mariadb_url, redis_url, memcached)
    token = issued(old)
    admin = Keys(new).headers("admin")
    revoked = new.test_client().post("/v1/tokens/revoke", json={"token": token}, headers=admin)
    assert revoked.status_code == 204
    return old, new, token


def test_a_revoke_after_the_switch_reaches_memcached_mode_processes(
    make_app, mariadb_url, redis_url, memcached: MemcachedProcess
):
    """With the legacy read on, the switched process forgets a revoked token in memcached
    too, so a process still in memcached mode stops validating it as well."""
    old, _, token = side_by_side(make_app, mariadb_url, redis_url, memcached)
    assert validate(old, token) == 404


def test_a_revoke_after_the_switch_holds_with_the_legacy_read_on(
    make_app, mariadb_url, redis_url, memcached: MemcachedProcess
):
    """The revoke deletes the row; the entry must not come back from memcached."""
    _, new, token = side_by_side(make_app, mariadb_url, redis_url, memcached)
    assert validate(new, token) == 404
    assert imports(new) == 0


def test_revoking_a_token_only_memcached_holds_holds(
    make_app, mariadb_url, redis_url, memcached: MemcachedProcess
):
    """A memcached-mode token that the database never imported (its row gone, e.g. an
    older backup restored) is revoked in memcached by the switched process."""
    old, new = switched(make_app, mariadb_url, redis_url, memcached)
    token = issued(old)
    instance = new.extensions["tokensvc"].store.get_by_token_hash(tokens.hash_token(token))
    with new.extensions["tokensvc"].engine.begin() as conn:
        conn.execute(consoles.delete())  # the database forgot the index row
    assert instance is not None
    admin = Keys(new).headers("admin")
    revoked = new.test_client().post("/v1/tokens/revoke", json={"token": token}, headers=admin)
    assert revoked.status_code == 204
    assert (validate(new, token), validate(old, token)) == (404, 404)

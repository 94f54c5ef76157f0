"""The Redis cache-aside tier, on real MariaDB and a real redis-server."""

from __future__ import annotations

import base64
import hashlib
import threading
import time

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy import event

from tests.support import put_instance, registered_token
from tokensvc import tokens
from tokensvc.stores import keys as redis_keys
from tokensvc.stores.entries import NEGATIVE, TOMBSTONE

INSTANCE = "0b5e1d8a-6a4c-4c1e-9a55-6f1f5f1c2a10"


@pytest.fixture
def cache_app(make_app, mariadb_url, redis_process):
    return make_app(database_url=mariadb_url, redis_url=redis_process.url, cache_max_ttl=300)


@pytest.fixture
def client(cache_app):
    return cache_app.test_client()


@pytest.fixture
def admin(cache_app, keys_for):
    return keys_for(cache_app).headers("admin")


@pytest.fixture
def proxy(cache_app, keys_for):
    return keys_for(cache_app).headers("proxy")


@pytest.fixture
def keys_for():
    from tests.support import Keys

    return Keys


@pytest.fixture
def server(redis_process):
    return redis.Redis(port=redis_process.port)


def register(client, admin, port=5900, ttl=None):
    """The token of INSTANCE's console at 10.1.0.7:``port`` (the instance put again first)."""
    put_instance(client, admin, INSTANCE)
    return registered_token(client, admin, INSTANCE, port, host="10.1.0.7", ttl=ttl)


def validate(client, proxy, token):
    return client.post("/v1/tokens/validate", json={"token": token}, headers=proxy)


class SQLCounter:
    """Every statement sent on the app's engines (the general one and the reader)."""

    def __init__(self, *engines):
        self.statements: list[str] = []
        self.engines = engines
        for engine in engines:
            event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, *args):
        self.statements.append(statement)

    def close(self):
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._seen)


@pytest.fixture
def sql(cache_app):
    services = cache_app.extensions["tokensvc"]
    counter = SQLCounter(services.engine, services.database.reader)
    yield counter
    counter.close()


def command_counts(server) -> dict[str, int]:
    stats = server.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    counts.pop("info", None)
    counts.pop("config|resetstat", None)
    return counts


def test_hit_is_one_get_and_zero_sql(client, admin, proxy, server, sql):
    token = register(client, admin)
    assert validate(client, proxy, token).status_code == 200  # key check now cached
    server.config_resetstat()
    sql.statements.clear()
    for _ in range(5):
        answer = validate(client, proxy, token)
        assert answer.status_code == 200
        assert answer.json["connection"]["data"]["port"] == 5900
    assert sql.statements == []
    assert command_counts(server) == {"get": 5}


def test_miss_is_one_indexed_lookup_then_fill(client, admin, proxy, server, sql):
    token = register(client, admin)
    validate(client, proxy, token)
    key = redis_keys.console_key(tokens.hash_token(token))
    server.delete(key)
    sql.statements.clear()
    assert validate(client, proxy, token).status_code == 200
    assert len(sql.statements) == 1 and "token_hash" in sql.statements[0]
    assert server.get(key).startswith(b"novnc\n")
    sql.statements.clear()
    assert validate(client, proxy, token).status_code == 200
    assert sql.statements == []


def test_database_lookup_is_one_statement_and_survives_a_killed_connection(
    make_app, mariadb_url, keys_for
):
    app = make_app(database_url=mariadb_url)  # no Redis: every validate reads MariaDB
    client, keys = app.test_client(), keys_for(app)
    admin, proxy = keys.headers("admin"), keys.headers("proxy")
    token = register(client, admin)
    assert validate(client, proxy, token).status_code == 200
    reader = app.extensions["tokensvc"].database.reader
    with reader.connect() as conn:  # the pooled connection the next lookup gets
        pooled = conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one()
    with app.extensions["tokensvc"].engine.connect() as conn:
        conn.execute(sa.text(f"KILL {int(pooled)}"))
    counter = SQLCounter(app.extensions["tokensvc"].engine, reader)
    try:
        answer = validate(client, proxy, token)  # the dead connection, then a fresh one
        assert answer.status_code == 200
        assert len(counter.statements) == 2 and all("token_hash" in s for s in counter.statements)
        counter.statements.clear()
        assert validate(client, proxy, token).status_code == 200
        assert len(counter.statements) == 1  # no pre-ping, no rollback: one statement
    finally:
        counter.close()


def test_negative_cache_answers_unknown_tokens_without_sql(cache_app, client, proxy, server, sql):
    unknown = tokens.generate_token()
    assert validate(client, proxy, unknown).status_code == 404
    key = redis_keys.console_key(tokens.hash_token(unknown))
    assert server.get(key) == NEGATIVE
    assert 0 < server.ttl(key) <= cache_app.extensions["tokensvc"].settings.negative_cache_ttl
    sql.statements.clear()
    assert validate(client, proxy, unknown).status_code == 404
    assert sql.statements == []


def test_malformed_token_costs_no_io(client, proxy, server, sql):
    validate(client, proxy, tokens.generate_token())  # key check cached
    server.config_resetstat()
    sql.statements.clear()
    assert validate(client, proxy, "not-a-token").status_code == 404
    # No lookup at all: the one Redis round trip counts the failed attempt (README.md,
    # "Failed attempts").
    assert sql.statements == [] and command_counts(server) == {"incrby": 1, "expire": 1}


def test_registering_clears_a_negative_entry(cache_app, client, admin, proxy, server):
    token = register(client, admin)
    key = redis_keys.console_key(tokens.hash_token(token))
    # A validate that read the database before the commit left a negative entry behind.
    server.set(key, NEGATIVE, ex=60)
    store = cache_app.extensions["tokensvc"].store
    connection = store.get_by_token_hash(tokens.hash_token(token))
    store.save_console(connection)  # registering (the same token here) warms over it
    assert server.get(key).startswith(b"novnc\n")
    assert validate(client, proxy, token).status_code == 200


@pytest.mark.parametrize(("ttl", "cap_ms"), [(3600, 300_000), (100, 100_000)])
def test_cache_ttl_is_capped_by_expiry_and_cache_max_ttl(client, admin, server, ttl, cap_ms):
    token = register(client, admin, ttl=ttl)
    pttl = server.pttl(redis_keys.console_key(tokens.hash_token(token)))
    assert cap_ms - 5_000 < pttl <= cap_ms


@pytest.mark.parametrize("revocation", ["revoke", "revoke-all", "rotate", "delete", "move"])
def test_revocations_leave_tombstones_and_clear_the_outbox(
    cache_app, client, admin, proxy, server, revocation
):
    token = register(client, admin)
    assert validate(client, proxy, token).status_code == 200
    if revocation == "revoke":
        client.post("/v1/tokens/revoke", json={"token": token}, headers=admin)
    elif revocation == "revoke-all":
        client.delete(f"/v1/instances/{INSTANCE}/consoles", headers=admin)
    elif revocation == "rotate":
        assert register(client, admin) != token
    elif revocation == "delete":
        client.delete(f"/v1/instances/{INSTANCE}", headers=admin)
    else:
        client.put(f"/v1/instances/{INSTANCE}", json={"host": "compute-2"}, headers=admin)
    assert validate(client, proxy, token).status_code == 404
    assert server.get(redis_keys.console_key(tokens.hash_token(token))) == TOMBSTONE
    assert cache_app.extensions["tokensvc"].database.pending_invalidations() == []


def test_fill_racing_a_revoke_never_resurrects(cache_app, client, admin, proxy, server):
    """Pause the filler between its database read and its Redis write; revoke; resume."""
    token = register(client, admin)
    key = redis_keys.console_key(tokens.hash_token(token))
    validate(client, proxy, token)
    server.delete(key)  # the next validate is a miss that reads the row, then fills
    store = cache_app.extensions["tokensvc"].cached
    paused, resume = threading.Event(), threading.Event()

    def pause_once():
        store.before_fill = lambda: None
        paused.set()
        assert resume.wait(10)

    store.before_fill = pause_once
    racing: list[int] = []
    filler = threading.Thread(
        target=lambda: racing.append(validate(client, proxy, token).status_code)
    )
    filler.start()
    assert paused.wait(10)
    revoked = cache_app.test_client().post(
        "/v1/tokens/revoke", json={"token": token}, headers=admin
    )
    assert revoked.status_code == 204
    resume.set()
    filler.join(10)
    assert racing == [200]  # it read before the revoke: an in-flight answer
    assert server.get(key) == TOMBSTONE
    assert validate(client, proxy, token).status_code == 404


def test_fill_refuses_a_read_older_than_the_tombstone_lifetime(cache_app, server):
    cache = cache_app.extensions["tokensvc"].cached.cache
    token_hash = tokens.hash_token(tokens.generate_token())
    assert not cache.fill(token_hash, b"novnc\n{}", 60_000, cache.tombstone_ttl_ms + 1)
    assert server.get(redis_keys.console_key(token_hash)) is None
    assert cache.fill(token_hash, b"novnc\n{}", 60_000, cache.tombstone_ttl_ms)
    cache.tombstone([token_hash])
    assert not cache.fill(token_hash, b"novnc\n{}", 60_000, 0)
    assert server.get(redis_keys.console_key(token_hash)) == TOMBSTONE


def test_a_miss_whose_read_outlived_the_tombstones_is_not_cached(
    cache_app, client, admin, proxy, server
):
    token = register(client, admin)
    key = redis_keys.console_key(tokens.hash_token(token))
    server.delete(key)
    store = cache_app.extensions["tokensvc"].cached
    store.cache.tombstone_ttl_ms = 50  # a revoke's tombstone would be gone by the fill
    store.before_fill = lambda: time.sleep(0.1)
    try:
        assert validate(client, proxy, token).status_code == 200  # answered from the read
        assert server.get(key) is None  # but not cached
    finally:
        store.cache.tombstone_ttl_ms = 60_000
        store.before_fill = lambda: None
    assert validate(client, proxy, token).status_code == 200
    assert server.get(key).startswith(b"novnc\n")


def test_keys_are_hash_tagged_per_token():
    token = tokens.generate_token()
    token_hash = tokens.hash_token(token)
    digest = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=")
    assert redis_keys.console_key(token_hash) == f"tokensvc:{{{digest.decode()}}}:c"
    assert len(redis_keys.console_key(token_hash)) == 56
    other = tokens.hash_token(tokens.generate_token())
    assert redis_keys.console_key(other) != redis_keys.console_key(token_hash)

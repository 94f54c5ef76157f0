"""Failed attempts per client address (README.md, "Failed attempts"): 429 + Retry-After
over the limit, before any lookup; shared through Redis, per process without it."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url
from werkzeug.test import Client, TestResponse

from tests.netproxy import TcpProxy
from tests.support import AppFactory, Keys, free_port, put_instance, registered_token
from tokensvc import tokens
from tokensvc.api.hotpath import ValidateHotPath
from tokensvc.auth import generate_key
from tokensvc.errors import BackendUnavailable, Unauthorized

VALIDATE = "/v1/tokens/validate"
CONNECT = "/v1/tokens/connect"
OTHER = {"REMOTE_ADDR": "192.0.2.7"}


def bogus() -> dict[str, str]:
    return {"Authorization": f"Bearer {generate_key()}"}


def assert_too_many(resp: TestResponse, window: int) -> None:
    assert resp.status_code == 429, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json(force=True)["type"] == "/problems/too-many-requests"
    assert 1 <= int(resp.headers["Retry-After"]) <= window
    assert len(resp.headers["X-Request-Id"]) == 32


class Calls:
    """Counts the calls of one method of a real object (the database or the cache)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> None:
        self.count = 0
        real: Callable[..., Any] = getattr(target, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(target, name, counted)


class Console:
    """An app with a registered console: its token and a proxy key."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        keys = Keys(app)
        self.proxy = {"Authorization": f"Bearer {keys.mint('proxy')}"}
        admin = keys.headers("admin")
        instance = put_instance(self.client, admin)
        self.token = registered_token(self.client, admin, instance, host="192.0.2.10")

    def validate(self, token: str, **kw: Any) -> TestResponse:
        return self.client.post(VALIDATE, json={"token": token}, headers=self.proxy, **kw)


@pytest.fixture(params=["redis", "no-redis"])
def cache(request: pytest.FixtureRequest) -> str | None:
    if request.param == "no-redis":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


def test_failed_key_checks_over_the_limit_are_429_before_any_key_lookup(
    make_app: AppFactory, mariadb_url: str, cache: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(database_url=mariadb_url, redis_url=cache, failed_auth_limit=3)
    client = app.test_client()
    good = Keys(app).headers("admin")
    for header in ({}, {"Authorization": "Bearer nope"}, bogus()):  # missing, malformed, unknown
        assert client.get("/v1/leases", headers=header).status_code == 401
    lookups = Calls(monkeypatch, app.extensions["tokensvc"].keys, "find")
    assert_too_many(client.get("/v1/leases", headers=bogus()), window=10)
    assert_too_many(client.get("/v1/leases", headers=good), window=10)  # that address, any key
    assert_too_many(client.post(VALIDATE, json={"token": "x"}, headers=good), window=10)
    assert lookups.count == 0
    # Another address is not affected.
    assert client.get("/v1/leases", headers=good, environ_base=OTHER).status_code == 200
    assert client.get("/v1/leases", headers=bogus(), environ_base=OTHER).status_code == 401


def test_invalid_tokens_over_the_limit_are_429_through_the_hot_path_too(
    make_app: AppFactory, mariadb_url: str, cache: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(database_url=mariadb_url, redis_url=cache, invalid_token_limit=3)
    hot = app.wsgi_app
    assert isinstance(hot, ValidateHotPath)
    flask = Calls(monkeypatch, hot, "app")  # (the hot path calls Flask through hot.app)
    console = Console(app)
    for token in (tokens.generate_token(), "short"):
        assert console.validate(token).status_code == 404
    assert console.validate(console.token).status_code == 200  # successes do not count
    assert console.validate(tokens.generate_token()).status_code == 404
    lookups = Calls(monkeypatch, app.extensions["tokensvc"].store, "lookup")
    before = flask.count
    answered = console.validate(console.token)
    assert_too_many(answered, window=10)
    assert flask.count == before, "the hot path did not answer the 429 itself"
    assert lookups.count == 0
    # Flask's answer (connect, and validate when the hot path lets it through) is the same.
    through_flask = Client(hot.app, TestResponse).post(
        VALIDATE,
        json={"token": console.token},
        headers=console.proxy,
        environ_base={"REMOTE_ADDR": "127.0.0.1"},  # as FlaskClient sends
    )
    assert_too_many(through_flask, window=10)
    assert _problem(through_flask) == _problem(answered)
    assert_too_many(_connect(console, console.token), window=10)
    assert lookups.count == 0
    # Other routes, and other addresses, are not affected.
    assert console.client.get("/v1/leases", headers=console.proxy).status_code == 403
    assert console.validate(console.token, environ_base=OTHER).status_code == 200


def _problem(resp: TestResponse) -> dict[str, Any]:
    body: dict[str, Any] = resp.get_json(force=True)
    body.pop("request_id")
    return body


def _connect(console: Console, token: str, **kw: Any) -> TestResponse:
    body = {"token": token, "proxy_id": "proxy-1"}
    return console.client.post(CONNECT, json=body, headers=console.proxy, **kw)


def test_connect_counts_its_invalid_tokens(
    make_app: AppFactory, mariadb_url: str, redis_url: str
) -> None:
    console = Console(
        make_app(database_url=mariadb_url, redis_url=redis_url, invalid_token_limit=2)
    )
    assert _connect(console, tokens.generate_token()).status_code == 404
    assert _connect(console, console.token).status_code == 200  # a success does not count
    assert _connect(console, tokens.generate_token()).status_code == 404
    assert_too_many(console.validate(console.token), window=10)


def test_the_count_is_shared_through_redis_and_per_process_without(
    make_app: AppFactory, mariadb_url: str, cache: str | None
) -> None:
    limit = 4
    first, second = (
        make_app(database_url=mariadb_url, redis_url=cache, failed_auth_limit=limit).test_client()
        for _ in range(2)
    )
    for _ in range(limit):
        assert first.get("/v1/leases", headers=bogus()).status_code == 401
    # The second process's first failure from that address teaches it the shared count.
    assert second.get("/v1/leases", headers=bogus()).status_code == 401
    status = second.get("/v1/leases", headers=bogus()).status_code
    assert status == (429 if cache else 401)
    if cache is not None:
        stored = redis.Redis.from_url(cache).keys("tokensvc:failed:*")
        assert len(stored) == 1 and b"127.0.0.1" not in stored[0]
        assert redis.Redis.from_url(cache).ttl(stored[0]) <= 11


def test_the_next_window_lets_the_address_in_again(
    make_app: AppFactory, mariadb_url: str, cache: str | None
) -> None:
    app = make_app(
        database_url=mariadb_url, redis_url=cache, failed_auth_limit=2, rate_limit_window=1
    )
    client, good = app.test_client(), Keys(app).headers("admin")
    while True:  # start early in a window, so that the two failures fall in one
        if time.time() % 1 < 0.5:
            break
        time.sleep(0.05)
    for _ in range(2):
        assert client.get("/v1/leases", headers=bogus()).status_code == 401
    assert_too_many(client.get("/v1/leases", headers=good), window=1)
    time.sleep(1 - time.time() % 1 + 0.05)
    assert client.get("/v1/leases", headers=good).status_code == 200


def test_redis_down_falls_back_to_the_local_count_never_5xx(
    make_app: AppFactory, mariadb_url: str
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: connection refused
    app = make_app(
        database_url=mariadb_url,
        redis_url=nowhere,
        queue_redis_url=nowhere,
        failed_auth_limit=2,
        invalid_token_limit=2,
        breaker_reset=0,  # every call tries Redis again
    )
    console = Console(app)
    client = console.client
    statuses = [client.get("/v1/leases", headers=bogus()).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    statuses = [
        console.validate(tokens.generate_token(), environ_base=OTHER).status_code for _ in range(3)
    ]
    assert statuses == [404, 404, 429]
    assert (
        console.validate(console.token, environ_base={"REMOTE_ADDR": "192.0.2.8"}).status_code
        == 200
    )


def test_zero_means_no_limit(make_app: AppFactory, mariadb_url: str, redis_url: str) -> None:
    app = make_app(database_url=mariadb_url, redis_url=redis_url, failed_auth_limit=0)
    client = app.test_client()
    assert {client.get("/v1/leases", headers=bogus()).status_code for _ in range(60)} == {401}
    assert redis.Redis.from_url(redis_url).keys("tokensvc:failed:*") == []


def test_the_rq_dashboard_counts_failed_key_checks(
    make_app: AppFactory, mariadb_url: str, redis_url: str
) -> None:
    app = make_app(database_url=mariadb_url, redis_url=redis_url, failed_auth_limit=2)
    client = app.test_client()
    admin = Keys(app).mint("admin")

    def basic(password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"any:{password}".encode()).decode()}

    assert client.get("/rq/", headers=basic(generate_key())).status_code == 401
    assert client.get("/rq/").status_code == 401
    assert_too_many(client.get("/rq/", headers=basic(admin)), window=10)
    assert client.get("/rq/", headers=basic(admin), environ_base=OTHER).status_code == 200
    # The API and the dashboard count together.
    assert_too_many(client.get("/v1/leases", headers=basic(admin)), window=10)


@pytest.fixture
def database_proxy(mariadb_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy in front of the worker's MariaDB database, and the URL through it."""
    url = make_url(mariadb_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 3306)
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxy.close()


def test_a_flood_of_unknown_keys_leaves_a_known_key_to_serve_stale_in_an_outage(
    make_app: AppFactory, database_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, proxied_url = database_proxy
    app = make_app(database_url=proxied_url, key_cache_ttl=1, key_cache_stale=300)
    authenticator = app.extensions["tokensvc"].authenticator
    known = Keys(app).mint("proxy")
    authenticator.authenticate(known)
    for _ in range(authenticator.max_entries + 500):  # each one a real SQL select
        with pytest.raises(Unauthorized):
            authenticator.authenticate(generate_key())
    proxy.cut()
    time.sleep(1.2)  # past the key cache TTL: the answers are only stale now
    assert authenticator.authenticate(known).role == "proxy"
    with pytest.raises(BackendUnavailable):
        authenticator.authenticate(generate_key())  # (the database is really unreachable)

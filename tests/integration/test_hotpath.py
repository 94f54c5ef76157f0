"""Validate's WSGI hot path answers exactly as the Flask route would, or lets Flask answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client, TestResponse

from tests.integration.test_outages import database_proxy  # noqa: F401 (a fixture)
from tests.netproxy import TcpProxy
from tests.support import AppFactory, Keys, put_instance, registered_token
from tokensvc.api.hotpath import ValidateHotPath
from tokensvc.tokens import generate_token

PATH = "/v1/tokens/validate"
JSON = "application/json"


class Counting:
    """Wraps the Flask app: how many requests the hot path passed on."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    def __call__(self, environ: Any, start_response: Any) -> Any:
        self.calls += 1
        return self.app(environ, start_response)


class Pair:
    """The same app reached through the hot path and straight through Flask."""

    def __init__(self, app: Flask) -> None:
        hot = app.wsgi_app
        assert isinstance(hot, ValidateHotPath)
        self.flask = Counting(hot.app)
        hot.app = self.flask
        self.hot = Client(hot, TestResponse)
        self.direct = Client(self.flask, TestResponse)
        keys = Keys(app)
        self.proxy = f"Bearer {keys.mint('proxy')}"
        self.admin = f"Bearer {keys.mint('admin')}"
        admin = {"Authorization": self.admin}
        instance = put_instance(self.hot, admin)
        self.token = registered_token(self.hot, admin, instance, host="10.0.0.9")

    def both(self, **request: Any) -> tuple[TestResponse, TestResponse, bool]:
        """Each path's answer, and whether the hot path answered on its own."""
        before = self.flask.calls
        hot = self.hot.open(PATH, method="POST", **request)
        own = self.flask.calls == before
        return hot, self.direct.open(PATH, method="POST", **request), own


@pytest.fixture(params=["redis", "database"])
def pair(request, make_app, mariadb_url, redis_url) -> Pair:
    cache = redis_url if request.param == "redis" else None
    return Pair(make_app(database_url=mariadb_url, redis_url=cache))


def comparable(response: TestResponse) -> tuple[int, str | None, Any]:
    body = json.loads(response.get_data())
    if isinstance(body, dict):
        body.pop("request_id", None)
    return response.status_code, response.mimetype, body


def test_a_console_and_an_invalid_token_are_answered_without_flask(pair: Pair) -> None:
    auth = {"Authorization": pair.proxy}
    for token, status in ((pair.token, 200), (generate_token(), 404), ("short", 404)):
        hot, direct, own = pair.both(json={"token": token}, headers=auth)
        assert own, token
        assert comparable(hot) == comparable(direct)
        assert hot.status_code == status
        assert len(hot.headers["X-Request-Id"]) == 32
    hot, direct, own = pair.both(
        json={"token": pair.token, "console_type": "spice-html5"}, headers=auth
    )
    assert own and comparable(hot) == comparable(direct) and hot.status_code == 404


# Validate requests of the usual form are answered by the hot path whatever the outcome
# (own=True): a refusal too, in Flask's words. Other forms are Flask's, untouched.
@pytest.mark.parametrize(
    ("case", "status", "own"),
    [
        ({"headers": {}}, 401, True),
        ({"headers": {"Authorization": "Bearer tsk_" + "A" * 43}}, 401, True),
        ({"admin": True}, 403, True),
        ({"data": b"{not json", "content_type": JSON}, 400, True),
        ({"data": b"[1, 2]", "content_type": JSON}, 400, True),
        ({"data": b"   ", "content_type": JSON}, 422, True),
        ({"data": b"[" * 100_000, "content_type": JSON}, 413, False),
        ({"data": b"[" * 8000 + b"]" * 8000, "content_type": JSON}, 400, True),
        ({"json": {"token": "x", "extra": 1}}, 422, True),
        ({"json": {}}, 422, True),
        ({"data": b'{"token": "x"}', "content_type": "text/plain"}, 415, False),
        ({"json": {"token": "x"}, "version": "1.0"}, 404, False),
        ({"json": {"token": "x"}, "version": "9.9"}, 406, False),
    ],
    ids=lambda case: str(case)[:40],
)
def test_every_answer_is_flask_s_answer(
    pair: Pair, case: dict[str, Any], status: int, own: bool
) -> None:
    case = dict(case)
    headers = case.pop(
        "headers", {"Authorization": pair.admin if case.pop("admin", False) else pair.proxy}
    )
    if "version" in case:
        headers = headers | {"X-Object-Version": case.pop("version")}
    if "json" not in case and "data" not in case:
        case["json"] = {"token": pair.token}
    hot, direct, answered_alone = pair.both(headers=headers, **case)
    assert comparable(hot) == comparable(direct)
    assert hot.get_data().replace(hot.headers["X-Request-Id"].encode(), b"") == (
        direct.get_data().replace(direct.headers["X-Request-Id"].encode(), b"")
    )
    assert hot.status_code == status
    assert answered_alone is own


def test_older_object_versions_go_through_flask(pair: Pair) -> None:
    headers = {"Authorization": pair.proxy, "X-Object-Version": "1.0"}
    hot, direct, own = pair.both(json={"token": pair.token}, headers=headers)
    assert not own
    assert comparable(hot) == comparable(direct)
    assert hot.json["connection"]["version"] == "1.0"


def test_a_hanging_database_costs_one_run_of_validate(
    database_proxy: tuple[TcpProxy, str],  # noqa: F811 (the fixture imported above)
    make_app: AppFactory,
) -> None:
    proxy, proxied_url = database_proxy
    # The proxy key stays in the key cache: only the token lookup needs the database.
    app = make_app(database_url=proxied_url, key_cache_ttl=300, key_cache_stale=300)
    pair = Pair(app)
    auth = {"Authorization": pair.proxy}
    assert pair.hot.post(PATH, json={"token": pair.token}, headers=auth).status_code == 200
    registry = app.extensions["tokensvc"].metrics.registry
    labels = {"route": PATH, "method": "POST", "status": "503"}

    proxy.blackhole()  # the pooled connection's read times out, then a reconnect's greeting
    connections, calls = proxy.accepted, pair.flask.calls
    try:
        resp = pair.hot.post(PATH, json={"token": pair.token}, headers=auth)
    finally:
        proxy.restore()
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.json["type"] == "/problems/backend-unavailable"
    assert int(resp.headers["Retry-After"]) > 0
    assert pair.flask.calls == calls, "Flask ran validate a second time"
    assert proxy.accepted - connections == 1, "validate ran (and reconnected) more than once"
    assert registry.get_sample_value("tokensvc_request_duration_seconds_count", labels) == 1

"""Validate's WSGI hot path answers exactly as the Flask route would, or lets Flask answer."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client, TestResponse

from tests.conftest import Keys
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
        instance = str(uuid.uuid4())
        admin = {"Authorization": self.admin}
        self.hot.put(f"/v1/instances/{instance}", json={"host": "compute-1"}, headers=admin)
        body = {"instance_uuid": instance, "host": "10.0.0.9", "console_type": "novnc"}
        registered = self.hot.post("/v1/consoles", json=body | {"port": 5900}, headers=admin)
        self.token = registered.json["token"]

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


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ({"headers": {}}, 401),
        ({"headers": {"Authorization": "Bearer tsk_" + "A" * 43}}, 401),
        ({"admin": True}, 403),
        ({"data": b"{not json", "content_type": JSON}, 400),
        ({"data": b"[1, 2]", "content_type": JSON}, 400),
        ({"data": b"[" * 100_000, "content_type": JSON}, 413),
        ({"data": b"[" * 8000 + b"]" * 8000, "content_type": JSON}, 400),
        ({"json": {"token": "x", "extra": 1}}, 422),
        ({"json": {}}, 422),
        ({"data": b'{"token": "x"}', "content_type": "text/plain"}, 415),
        ({"json": {"token": "x"}, "version": "1.0"}, 404),
        ({"json": {"token": "x"}, "version": "9.9"}, 406),
    ],
    ids=lambda case: str(case)[:40],
)
def test_everything_else_is_flask_s_answer(pair: Pair, case: dict[str, Any], status: int) -> None:
    case = dict(case)
    headers = case.pop(
        "headers", {"Authorization": pair.admin if case.pop("admin", False) else pair.proxy}
    )
    if "version" in case:
        headers = headers | {"X-Object-Version": case.pop("version")}
    if "json" not in case and "data" not in case:
        case["json"] = {"token": pair.token}
    hot, direct, own = pair.both(headers=headers, **case)
    assert comparable(hot) == comparable(direct)
    assert hot.status_code == status
    assert not own


def test_older_object_versions_go_through_flask(pair: Pair) -> None:
    headers = {"Authorization": pair.proxy, "X-Object-Version": "1.0"}
    hot, direct, own = pair.both(json={"token": pair.token}, headers=headers)
    assert not own
    assert comparable(hot) == comparable(direct)
    assert hot.json["connection"]["version"] == "1.0"

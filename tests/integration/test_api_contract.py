"""The HTTP API contract (docs/api.md) through Flask's test client on MariaDB and Redis."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import TestResponse

from tokensvc import tokens
from tokensvc.api.routing import MAX_BODY, Operation
from tokensvc.app import BLUEPRINTS
from tokensvc.auth import generate_key, hash_key
from tokensvc.objects.console import ConsoleConnection
from tokensvc.stores.rows import consoles, instances

HOST_A, HOST_B, PROXY_ID = "compute-a", "compute-b", "proxy-1"
CURRENT = ConsoleConnection.VERSION
ROLES = ("admin", "compute", "proxy")
OPS: list[Operation] = [op for bp in BLUEPRINTS for op in bp.operations]
AUTH_OPS = [op for op in OPS if op.roles]
BODY_OPS = [op for op in AUTH_OPS if op.body is not None]
BODILESS_POSTS = [op for op in AUTH_OPS if op.body is None and op.method == "POST"]
ALLOWED = [(op, role) for op in AUTH_OPS for role in op.roles]
WRONG = [(op, role) for op in AUTH_OPS for role in ROLES if role not in op.roles]
BAD_BEARERS = ["", "Bearer", "Bearer ", "Bearer abc", "Basic {key}", "Token {key}", "Bearer {key}x"]
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id", "errors"}
JSON = "application/json"
REQUIRED = {"instance_uuid", "host", "port", "console_type"}
KEY_ROLES = [("admin", None), ("compute", HOST_A), ("compute", HOST_B), ("proxy", None)]
VALIDATED = REQUIRED | {"access_url", "options", "expires"}  # no token_hash, connected or lease


# -- helpers --------------------------------------------------------------------------------
def mint(app: Flask, role: str, host: str | None = None, **kw: Any) -> tuple[dict[str, str], str]:
    """A new service key: (its Authorization header, its id)."""
    key = generate_key()
    found = app.extensions["tokensvc"].keys.create(hash_key(key), role, host=host, **kw)
    return {"Authorization": f"Bearer {key}"}, found.id


def assert_problem(resp: TestResponse, status: int, slug: str) -> dict[str, Any]:
    """An RFC 9457 problem of that type, with its request id and no trace."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body: dict[str, Any] = resp.get_json(force=True)
    assert set(body) <= PROBLEM_KEYS and body["title"]
    assert body["type"] == f"/problems/{slug}" and body["status"] == status
    assert body["request_id"] == resp.headers["X-Request-Id"]
    assert "Traceback" not in resp.get_data(as_text=True)
    return body


def row_counts(app: Flask) -> tuple[int, int]:
    with app.extensions["tokensvc"].engine.connect() as conn:
        count = [sa.select(sa.func.count()).select_from(t) for t in (instances, consoles)]
        return conn.execute(count[0]).scalar_one(), conn.execute(count[1]).scalar_one()


def expire_in_database(app: Flask, token: str) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    with app.extensions["tokensvc"].engine.begin() as conn:
        where = consoles.c.token_hash == tokens.hash_token(token)
        assert conn.execute(consoles.update().where(where).values(expires=past)).rowcount == 1


def flush_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def seconds_from(start: dt.datetime, text: str) -> float:
    at = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return (at - start).total_seconds()


def console_body(instance_uuid: str, port: int = 5901) -> dict[str, Any]:
    return {
        "instance_uuid": instance_uuid,
        "host": "10.0.0.9",
        "port": port,
        "console_type": "novnc",
    }


def op_id(op: Operation, role: str = "") -> str:
    return f"{op.method} {op.rule} {role}".strip()


@dataclasses.dataclass
class World:
    """Instance A on HOST_A and B on HOST_B, one novnc console each, and keys of every kind."""

    app: Flask
    client: FlaskClient
    admin: dict[str, str]
    compute_a: dict[str, str]
    compute_b: dict[str, str]
    proxy: dict[str, str]
    uuid_a: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    uuid_b: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    token_a: str = ""
    token_b: str = ""
    leases: dict[str, str] = dataclasses.field(default_factory=dict)

    def key(self, role: str) -> dict[str, str]:
        return {"admin": self.admin, "compute": self.compute_a, "proxy": self.proxy}[role]

    def req(self, method: str, path: str, who: dict[str, str] | None, **kw: Any) -> TestResponse:
        return self.client.open(path, method=method, headers=who or {}, **kw)

    def register(self, **fields: Any) -> TestResponse:
        body = console_body(self.uuid_a, 5900) | {"host": "10.0.0.5"} | fields
        return self.req("POST", "/v1/consoles", self.admin, json=body)

    def consoles(self, uuid_: str, headers: dict[str, str] | None = None) -> TestResponse:
        return self.req("GET", f"/v1/instances/{uuid_}/consoles", headers or self.admin)

    def revoke(self, token: str, headers: dict[str, str] | None = None) -> TestResponse:
        return self.req("POST", "/v1/tokens/revoke", headers or self.admin, json={"token": token})

    def lease(self, instance_uuid: str) -> str:
        """The id of a live lease on a console of that instance (made on first use)."""
        if instance_uuid not in self.leases:
            token = self.register(instance_uuid=instance_uuid, port=5950).get_json()["token"]
            body = {"token": token, "proxy_id": PROXY_ID}
            resp = self.req("POST", "/v1/tokens/connect", self.proxy, json=body)
            assert resp.status_code == 200, resp.get_data(as_text=True)
            self.leases[instance_uuid] = resp.get_json()["lease"]["data"]["id"]
        return self.leases[instance_uuid]

    def validate(self, token: str, extra: dict[str, str] | None = None, **kw: Any) -> TestResponse:
        body = {"token": token, **kw}
        return self.req("POST", "/v1/tokens/validate", self.proxy | (extra or {}), json=body)


def build_world(app: Flask) -> World:
    h = [mint(app, role, host)[0] for role, host in KEY_ROLES]
    w = World(app, app.test_client(), h[0], h[1], h[2], h[3])
    for uuid_, host in ((w.uuid_a, HOST_A), (w.uuid_b, HOST_B)):
        resp = w.req("PUT", f"/v1/instances/{uuid_}", w.admin, json={"host": host})
        assert resp.status_code == 201
    w.token_a = w.register().get_json()["token"]
    w.token_b = w.register(instance_uuid=w.uuid_b).get_json()["token"]
    return w


@pytest.fixture
def world(app):
    return build_world(app)


# A valid body for every operation that takes one (a new one must be added here).
SAMPLE_BODIES: dict[tuple[str, str], Callable[[World], dict[str, Any]]] = {
    ("PUT", "/v1/instances/<uuid>"): lambda w: {"host": HOST_A},
    ("POST", "/v1/consoles"): lambda w: console_body(w.uuid_a),
    ("POST", "/v1/tokens/validate"): lambda w: {"token": w.token_a},
    ("POST", "/v1/tokens/revoke"): lambda w: {"token": w.token_a},
    ("POST", "/v1/tokens/connect"): lambda w: {"token": w.token_a, "proxy_id": PROXY_ID},
}
PATH_PARAMS: dict[str, Callable[[World], str]] = {  # a real value for every path parameter
    "uuid": lambda w: w.uuid_a,
    "host": lambda w: HOST_A,
    "lease_id": lambda w: w.lease(w.uuid_a),
    "proxy_id": lambda w: PROXY_ID,
}


def op_path(w: World, op: Operation) -> str:
    return re.sub(r"<(\w+)>", lambda m: PATH_PARAMS[m.group(1)](w), op.rule)


def call(w: World, op: Operation, headers: dict[str, str] | None, **kw: Any) -> TestResponse:
    """``op`` on instance A / HOST_A, with its sample body unless one is given."""
    path = op_path(w, op)
    if "json" not in kw and "data" not in kw and op.body is not None:
        kw["json"] = SAMPLE_BODIES[(op.method, op.rule)](w)
    return w.req(op.method, path, headers, **kw)


# -- 1. every route x every role ------------------------------------------------------------
def test_every_body_operation_has_a_sample_body():
    assert {(op.method, op.rule) for op in BODY_OPS} == set(SAMPLE_BODIES)
    assert {op_id(op) for op in AUTH_OPS} >= {"POST /v1/consoles", "GET /metrics"}
    assert {p for op in OPS for p in re.findall(r"<(\w+)>", op.rule)} <= set(PATH_PARAMS)


@pytest.mark.parametrize(("op", "role"), ALLOWED, ids=[op_id(*case) for case in ALLOWED])
def test_allowed_role_passes_the_checks(world, op, role):
    resp = call(world, op, world.key(role))
    assert resp.status_code < 400, resp.get_data(as_text=True)


@pytest.mark.parametrize("op", AUTH_OPS, ids=op_id)
def test_missing_malformed_unknown_or_expired_key_is_401(world, op):
    assert_problem(call(world, op, None), 401, "unauthorized")
    key = world.admin["Authorization"].removeprefix("Bearer ")
    for bad in BAD_BEARERS:
        assert_problem(call(world, op, {"Authorization": bad.format(key=key)}), 401, "unauthorized")
    unknown = {"Authorization": f"Bearer {generate_key()}"}
    assert_problem(call(world, op, unknown), 401, "unauthorized")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    expired, _ = mint(world.app, op.roles[0], HOST_A, expires_at=past)
    assert_problem(call(world, op, expired), 401, "unauthorized")


@pytest.mark.parametrize("op", AUTH_OPS, ids=op_id)
def test_revoked_key_is_401_at_once_without_key_cache(make_app, mariadb_url, redis_url, op):
    w = build_world(make_app(database_url=mariadb_url, redis_url=redis_url, key_cache_ttl=0))
    headers, key_id = mint(w.app, op.roles[0], HOST_A)
    assert call(w, op, headers).status_code < 400
    assert w.app.extensions["tokensvc"].keys.revoke(key_id)
    assert_problem(call(w, op, headers), 401, "unauthorized")


@pytest.mark.parametrize(("op", "role"), WRONG, ids=[op_id(*case) for case in WRONG])
def test_wrong_role_is_403_and_changes_nothing(world, op, role):
    op_path(world, op)  # makes the lease a lease route needs first
    before = row_counts(world.app)
    assert_problem(call(world, op, world.key(role)), 403, "forbidden")
    assert row_counts(world.app) == before
    assert world.validate(world.token_a).status_code == 200


@pytest.mark.parametrize("op", BODY_OPS, ids=op_id)
@pytest.mark.parametrize("data", ['{"bogus": 1}', "{not json", "[]", "x" * (MAX_BODY + 1)])
def test_auth_comes_before_body_checks(world, op, data):
    assert_problem(call(world, op, None, data=data, content_type=JSON), 401, "unauthorized")
    wrong = world.key(next(r for r in ROLES if r not in op.roles))
    assert_problem(call(world, op, wrong, data=data, content_type=JSON), 403, "forbidden")


@pytest.mark.parametrize("op", BODILESS_POSTS, ids=op_id)
@pytest.mark.parametrize("content_type", [None, JSON])
def test_post_routes_without_a_body_accept_an_empty_one(world, op, content_type):
    resp = call(world, op, world.key(op.roles[0]), data="", content_type=content_type)
    assert resp.status_code < 400, resp.get_data(as_text=True)


# -- 2. compute host scope ------------------------------------------------------------------
SCOPED = {  # name: (method, path, body, status on its own host)
    "put-instance": ("PUT", "/v1/instances/{uuid}", "host", 200),
    "put-new-instance": ("PUT", "/v1/instances/{new}", "host", 201),
    "register": ("POST", "/v1/consoles", "console", 201),
    "list": ("GET", "/v1/instances/{uuid}/consoles", None, 200),
    "revoke-all": ("DELETE", "/v1/instances/{uuid}/consoles", None, 204),
    "delete": ("DELETE", "/v1/instances/{uuid}", None, 204),
    "revoke": ("POST", "/v1/tokens/revoke", "token", 204),
    "purge": ("DELETE", "/v1/hosts/{host}/consoles/expired", None, 200),
    "force-disconnect": ("DELETE", "/v1/leases/{lease}", None, 202),
}
# Named by their instance (or lease): another host's is answered as a missing one (no
# probing).
AS_MISSING = {"register", "list", "revoke-all", "delete", "force-disconnect"}


@pytest.mark.parametrize("name", SCOPED)
@pytest.mark.parametrize("own", [True, False], ids=["own-host", "other-host"])
def test_compute_key_acts_only_on_its_host(world, name, own):
    w, (method, path, body, status) = world, SCOPED[name]
    u, h, t = (w.uuid_a, HOST_A, w.token_a) if own else (w.uuid_b, HOST_B, w.token_b)
    bodies = {"host": {"host": h}, "console": console_body(u), "token": {"token": t}}
    lease = w.lease(u) if "{lease}" in path else ""
    url = path.format(uuid=u, host=h, new=str(uuid.uuid4()).upper(), lease=lease)
    before = row_counts(w.app)
    resp = w.req(method, url, w.compute_a, json=bodies.get(body or ""))
    if own:
        assert resp.status_code == status, resp.get_data(as_text=True)
        return
    if name in AS_MISSING:
        missing = str(uuid.uuid4())
        gone = {"console": console_body(missing)}.get(body or "")
        missing_url = path.format(uuid=missing, lease=uuid.uuid4().hex)
        reference = assert_problem(
            w.req(method, missing_url, w.compute_a, json=gone), 404, "not-found"
        )
        problem = assert_problem(resp, 404, "not-found")
        assert problem["detail"] == reference["detail"].replace(missing, u)
    else:
        assert_problem(resp, 403, "forbidden")
    assert row_counts(w.app) == before
    assert w.validate(w.token_b).status_code == 200


def test_moving_an_instance_is_admin_only_and_revokes_its_consoles(world):
    w, path = world, f"/v1/instances/{world.uuid_a}"
    for headers in (w.compute_a, w.compute_b):
        assert_problem(w.req("PUT", path, headers, json={"host": HOST_B}), 403, "forbidden")
    assert w.validate(w.token_a).status_code == 200
    resp = w.req("PUT", path, w.admin, json={"host": HOST_B})
    assert resp.status_code == 200 and resp.get_json()["object"] == "Instance"
    assert (resp.get_json()["data"]["uuid"], resp.get_json()["data"]["host"]) == (w.uuid_a, HOST_B)
    assert_problem(w.validate(w.token_a), 404, "invalid-token")
    assert w.consoles(w.uuid_a, w.compute_b).get_json() == {"connections": []}
    assert_problem(w.consoles(w.uuid_a, w.compute_a), 404, "not-found")


# -- 3. bad input ---------------------------------------------------------------------------
MISSING = object()
BAD_REGISTER: dict[str, tuple[dict[str, Any], set[str]]] = {
    "uuid": ({"instance_uuid": "not-a-uuid"}, {"instance_uuid"}),
    "port-0": ({"port": 0}, {"port"}),
    "port-70000": ({"port": 70000}, {"port"}),
    "port-string": ({"port": "5900"}, {"port"}),
    "port-bool": ({"port": True}, {"port"}),
    "port-missing": ({"port": MISSING}, {"port"}),
    "host-long": ({"host": "h" * 256}, {"host"}),
    "host-empty": ({"host": ""}, {"host"}),
    "options-list": ({"options": ["a"]}, {"options"}),
    "options-large": ({"options": {"k": "x" * 4100}}, {"options"}),
    "options-nested": ({"options": {"a": {"b": 1}}}, {"options"}),
    "console-type": ({"console_type": "vnc"}, {"console_type"}),
    "ttl-0": ({"ttl": 0}, {"ttl"}),
    "ttl-above-max": ({"ttl": 86401}, {"ttl"}),
    "access-url-long": ({"access_url": "https://x/" + "a" * 250}, {"access_url"}),
    "extra-field": ({"bogus": True}, {"bogus"}),
    "several": ({"instance_uuid": "x", "port": 0, "console_type": "vnc", "ttl": 0, "extra": 1},
                {"instance_uuid", "port", "console_type", "ttl", "extra"}),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_REGISTER)
def test_bad_register_field_is_422_listing_each_field_and_writes_nothing(world, case):
    patch, fields = BAD_REGISTER[case]
    body = {k: v for k, v in (console_body(world.uuid_a) | patch).items() if v is not MISSING}
    before = row_counts(world.app)
    resp = world.req("POST", "/v1/consoles", world.admin, json=body)
    problem = assert_problem(resp, 422, "validation-error")
    assert {e["field"] for e in problem["errors"]} == fields
    assert all(isinstance(e["detail"], str) and e["detail"] for e in problem["errors"])
    assert row_counts(world.app) == before


PAD = '{"a": "%s"}'  # 9 bytes around the padding
BAD_BODIES = {  # name: (data, content type, status, slug)
    "malformed-json": ('{"port": ', JSON, 400, "bad-request"),
    "not-utf8": (b'{"host": "\xff"}', JSON, 400, "bad-request"),
    "array": ('[{"port": 5900}]', JSON, 400, "bad-request"),
    "string": ('"text"', JSON, 400, "bad-request"),
    "null": ("null", JSON, 400, "bad-request"),
    "too-large": (PAD % ("x" * (MAX_BODY - 8)), JSON, 413, "payload-too-large"),
    "text-plain": ('{"port": 5900}', "text/plain", 415, "unsupported-media-type"),
    "form": ("port=5900", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
    "empty": ("", JSON, 422, "validation-error"),
    "at-size-limit": (PAD % ("x" * (MAX_BODY - 9)), JSON, 422, "validation-error"),
}


@pytest.mark.parametrize("case", BAD_BODIES)
@pytest.mark.parametrize("route", ["POST /v1/consoles", "PUT /v1/instances/{uuid}"])
def test_bad_body_is_its_problem_and_writes_nothing(world, case, route):
    data, content_type, status, slug = BAD_BODIES[case]
    method, path = route.format(uuid=uuid.uuid4()).split()
    before = row_counts(world.app)
    resp = world.req(method, path, world.admin, data=data, content_type=content_type)
    assert_problem(resp, status, slug)
    assert row_counts(world.app) == before


def test_deeply_nested_json_is_400_not_500(world):
    data = "[" * 5000 + "]" * 5000
    resp = world.req("POST", "/v1/consoles", world.admin, data=data, content_type=JSON)
    assert_problem(resp, 400, "bad-request")


def test_unknown_instance_is_404_and_bad_path_uuid_is_422(world):
    assert_problem(world.register(instance_uuid=str(uuid.uuid4())), 404, "not-found")
    for method, path in [("GET", "/v1/instances/{}/consoles"), ("DELETE", "/v1/instances/{}"),
                         ("DELETE", "/v1/instances/{}/consoles")]:  # fmt: skip
        assert_problem(world.req(method, path.format(uuid.uuid4()), world.admin), 404, "not-found")
        resp = world.req(method, path.format("not-a-uuid"), world.admin)
        problem = assert_problem(resp, 422, "validation-error")
        assert [e["field"] for e in problem["errors"]] == ["uuid"]
    resp = world.req("PUT", "/v1/instances/nope", world.admin, json={"host": HOST_A})
    assert_problem(resp, 422, "validation-error")
    assert row_counts(world.app) == (2, 2)


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [("GET", "/nope", 404, None), ("GET", "/v1/instances", 404, None),
     ("DELETE", "/v1/consoles/x", 404, None), ("POST", "/v1/tokens", 404, None),
     ("GET", "/v1/consoles", 405, "POST"), ("PATCH", "/v1/instances/{u}", 405, "PUT"),
     ("GET", "/v1/tokens/validate", 405, "POST"), ("POST", "/healthz", 405, "GET"),
     ("PUT", "/v1/instances/{u}/consoles", 405, "DELETE")],
)  # fmt: skip
def test_unknown_route_is_404_and_wrong_method_405_with_allow(world, method, path, status, allow):
    resp = world.req(method, path.format(u=world.uuid_a), world.admin)
    assert_problem(resp, status, "not-found" if status == 404 else "method-not-allowed")
    if allow:
        assert allow in {m.strip() for m in resp.headers["Allow"].split(",")}


def test_unexpected_and_database_errors_never_leak_details(world, monkeypatch):
    store = world.app.extensions["tokensvc"].store
    monkeypatch.setattr(store, "list_by_instance", lambda u: 1 / 0)
    resp = world.consoles(world.uuid_a)
    assert_problem(resp, 500, "internal-error")
    assert "ZeroDivision" not in resp.get_data(as_text=True)

    def down(*a: Any) -> None:
        raise sa.exc.OperationalError("SELECT secret", {}, Exception("db gone"))

    monkeypatch.setattr(store, "list_by_instance", down)
    resp = world.consoles(world.uuid_a)
    assert_problem(resp, 503, "backend-unavailable")
    assert "secret" not in resp.get_data(as_text=True) and resp.headers["Retry-After"]


# -- 4. validate ----------------------------------------------------------------------------
MALFORMED = {"empty": "", "short": "abc", "bad-chars": "!" * 43, "non-ascii": "é" * 43}
INVALID = [*MALFORMED, "unknown", "too-long", "expired", "revoked", "other-type", "deleted"]


@pytest.mark.parametrize("kind", INVALID)
def test_validate_answers_every_invalid_token_alike(world, redis_url, kind):
    w, extra = world, {}
    reference = assert_problem(w.validate(tokens.generate_token()), 404, "invalid-token")
    token = (MALFORMED | {"unknown": tokens.generate_token(), "too-long": w.token_a + "x"}).get(
        kind, w.token_a
    )
    if kind == "expired":
        expire_in_database(w.app, token)
        flush_redis(redis_url)  # or the cached entry would still answer
    elif kind == "revoked":
        assert w.revoke(token).status_code == 204
    elif kind == "deleted":
        assert w.req("DELETE", f"/v1/instances/{w.uuid_a}", w.admin).status_code == 204
    elif kind == "other-type":
        extra = {"console_type": "spice-html5"}
        assert w.validate(token, console_type="novnc").status_code == 200
    body = assert_problem(w.validate(token, **extra), 404, "invalid-token")
    same = ("type", "title", "status", "detail")
    assert {k: body[k] for k in same} == {k: reference[k] for k in same}


def test_a_token_stops_validating_when_its_ttl_runs_out(world):
    token = world.register(port=5999, ttl=1).get_json()["token"]
    time.sleep(2.2)
    assert_problem(world.validate(token), 404, "invalid-token")
    assert world.validate(world.token_a).status_code == 200


@pytest.mark.parametrize("cached", [True, False], ids=["redis-hit", "database"])
def test_validate_returns_the_connection_primitive(world, redis_url, cached):
    if not cached:
        flush_redis(redis_url)
    resp = world.validate(world.token_a)
    assert resp.status_code == 200 and resp.mimetype == JSON
    connection = resp.get_json()["connection"]
    assert connection["object"] == "ConsoleConnection" and connection["version"] == CURRENT
    assert set(connection["data"]) == VALIDATED
    assert connection["data"]["port"] == 5900 and connection["data"]["console_type"] == "novnc"
    for version, fields in [("1.0", VALIDATED - {"console_type"}), ("1.1", VALIDATED)]:
        old = world.validate(world.token_a, {"X-Object-Version": version}).get_json()
        assert old["connection"]["version"] == version and set(old["connection"]["data"]) == fields
    unknown_version = {"X-Object-Version": "9.9"}
    assert_problem(world.validate(world.token_a, unknown_version), 406, "not-acceptable")
    resp = world.consoles(world.uuid_a, world.admin | unknown_version)
    assert_problem(resp, 406, "not-acceptable")


# -- 5. register, list, rotate, revoke, delete, purge ---------------------------------------
def test_register_returns_a_token_once_and_stores_only_its_hash(world):
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    resp = world.register(port=5910)
    assert resp.status_code == 201
    body = resp.get_json()
    assert set(body) == {"token", "access_url", "expires_at", "connection"}
    assert tokens.is_well_formed(body["token"]) and body["access_url"] is None
    assert 599 <= seconds_from(started, body["expires_at"]) <= 602  # TOKEN_TTL 600
    data = body["connection"]["data"]
    assert body["connection"]["version"] == CURRENT and "token_hash" not in data
    assert data["connected"] is False and data["port"] == 5910
    assert world.validate(body["token"]).status_code == 200
    with world.app.extensions["tokensvc"].engine.connect() as conn:
        row = conn.execute(sa.select(consoles).where(consoles.c.port == 5910)).one()
    assert row.token_hash == tokens.hash_token(body["token"])
    assert body["token"] not in repr(tuple(row))
    short = world.register(port=5911, ttl=120).get_json()
    assert 119 <= seconds_from(started, short["expires_at"]) <= 122


@pytest.mark.parametrize(
    ("stored", "expected"),
    [("/vnc_lite.html?path=websockify%3Ftoken%3D{token}", "?path=websockify%3Ftoken%3D{quoted}"),
     ("/vnc.html?lang=en&autoconnect=true", "?lang=en&autoconnect=true&token={quoted}"),
     ("/spice_auto.html", "?token={quoted}")],
)  # fmt: skip
def test_register_puts_the_token_into_the_access_url(world, stored, expected):
    stored = "https://c.example" + stored
    body = world.register(port=5920, access_url=stored).get_json()
    expected = stored.split("?")[0] + expected.format(quoted=quote(body["token"], safe=""))
    assert body["access_url"] == expected and body["token"] in expected
    listed = world.consoles(world.uuid_a).get_json()["connections"]
    assert stored in [c["data"]["access_url"] for c in listed]  # the template, not the token


def test_register_again_rotates_and_list_never_shows_tokens(world):
    w = world
    new = w.register(options={"usetls": True}).get_json()["token"]
    assert_problem(w.validate(w.token_a), 404, "invalid-token")
    assert w.validate(new).status_code == 200
    assert w.register(port=5901).status_code == 201
    resp = w.consoles(w.uuid_a, w.compute_a)
    text = resp.get_data(as_text=True)
    assert new not in text and tokens.hash_token(new) not in text and "token_hash" not in text
    listed = resp.get_json()["connections"]
    assert [(c["data"]["port"], c["data"]["connected"]) for c in listed] == [
        (5900, False),
        (5901, False),
    ]
    assert listed[0]["data"]["options"] == {"usetls": True}
    assert row_counts(w.app) == (2, 3)


def test_revoke_one_revoke_all_and_delete_instance(world):
    w, other = world, world.register(port=5901).get_json()["token"]
    assert w.revoke(other, w.compute_a).status_code == 204
    assert_problem(w.validate(other), 404, "invalid-token")
    assert_problem(w.revoke(other), 404, "invalid-token")
    assert w.req("DELETE", f"/v1/instances/{w.uuid_a}/consoles", w.admin).status_code == 204
    assert_problem(w.validate(w.token_a), 404, "invalid-token")
    assert w.consoles(w.uuid_a).get_json() == {"connections": []}
    assert w.validate(w.token_b).status_code == 200
    assert w.req("DELETE", f"/v1/instances/{w.uuid_b}", w.compute_b).status_code == 204
    assert_problem(w.validate(w.token_b), 404, "invalid-token")
    assert_problem(w.req("DELETE", f"/v1/instances/{w.uuid_b}", w.admin), 404, "not-found")
    assert row_counts(w.app) == (1, 0)


def test_purge_deletes_only_expired_consoles_of_that_host(make_app, mariadb_url, redis_url):
    w = build_world(make_app(database_url=mariadb_url, redis_url=redis_url, purge_batch=2))
    for token in [*(w.register(port=p).get_json()["token"] for p in (1, 2, 3)), w.token_b]:
        expire_in_database(w.app, token)
    purge = "/v1/hosts/{}/consoles/expired"
    resp = w.req("DELETE", purge.format(HOST_A), w.compute_a)
    assert resp.status_code == 200 and resp.get_json() == {"deleted": 3, "batches": 2}
    assert row_counts(w.app) == (2, 2) and w.validate(w.token_a).status_code == 200
    again = w.req("DELETE", purge.format(HOST_A), w.admin)
    assert again.get_json() == {"deleted": 0, "batches": 0}
    resp = w.req("DELETE", purge.format(HOST_B), w.admin)
    assert resp.get_json() == {"deleted": 1, "batches": 1} and row_counts(w.app) == (2, 1)


# -- 6. operations routes -------------------------------------------------------------------
def test_healthz_and_readyz_need_no_key(world, make_app):
    assert world.client.get("/healthz").get_json() == {"status": "ok"}
    resp = world.client.get("/readyz")
    assert resp.status_code == 200 and resp.get_json() == {"database": "ok", "redis": "ok"}
    plain = make_app().test_client().get("/readyz")
    assert plain.status_code == 200 and plain.get_json() == {"database": "ok", "redis": "disabled"}


def test_openapi_documents_every_operation_and_the_register_body(world):
    doc = world.client.get("/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    published = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    as_path = {op_id(op): re.sub(r"<(\w+)>", r"{\1}", op.rule) for op in OPS}
    assert published == {(op.method, as_path[op_id(op)]) for op in OPS}
    for op in OPS:
        spec = doc["paths"][as_path[op_id(op)]][op.method.lower()]
        assert ("security" in spec) == bool(op.roles)
        params = [(p["name"], p["in"]) for p in spec.get("parameters", [])]
        in_path = [(name, "path") for name in re.findall(r"<(\w+)>", op.rule)]
        assert params == in_path + [(name, "query") for name in op.query]
    ref = doc["paths"]["/v1/consoles"]["post"]["requestBody"]["content"][JSON]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["properties"]) >= REQUIRED | {"access_url", "options", "ttl"}
    assert REQUIRED - {"port"} <= set(schema["required"]) <= REQUIRED  # port, or ports
    assert schema["additionalProperties"] is False
    port = schema["properties"]["port"]
    assert (port["type"], port["minimum"], port["maximum"]) == ("integer", 1, 65535)
    if "ports" in schema["properties"]:
        assert schema["properties"]["ports"]["items"] == port
    assert schema["properties"]["ttl"]["maximum"] == 86400  # MAX_TOKEN_TTL
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(doc)))
    assert refs and refs <= set(doc["components"]["schemas"])


def test_metrics_need_admin_and_count_validations(world, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert_problem(world.client.get("/metrics"), 401, "unauthorized")
    for role in ("compute", "proxy"):
        assert_problem(world.client.get("/metrics", headers=world.key(role)), 403, "forbidden")
    for token in (world.token_a, world.token_b, tokens.generate_token()):
        world.validate(token)
    resp = world.client.get("/metrics", headers=world.admin)
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    families = text_string_to_metric_families(resp.get_data(as_text=True))
    samples = [s for family in families for s in family.samples]
    counts = {s.labels["result"]: s.value for s in samples if s.name == "tokensvc_validate_total"}
    assert counts == {"hit": 2.0, "miss": 1.0, "invalid": 1.0}

"""Bad strings, console addresses, chunked bodies and the schema's promises (issue 11).

On MariaDB and Redis through Flask's test client; the route x role machinery
and helpers are test_api_contract's.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest

from tests.integration.test_api_contract import (
    BODY_OPS,
    JSON,
    OPS,
    SAMPLE_BODIES,
    World,
    assert_problem,
    build_world,
    console_body,
    op_id,
    op_path,
    row_counts,
)
from tokensvc.api.routing import MAX_BODY
from tokensvc.api.schemas import Body
from tokensvc.networks import parse_networks
from tokensvc.services import Services
from tokensvc.stores.rows import consoles

SURROGATE, NUL, CONTROL, C1 = "a\ud800b", "a\x00b", "a\x1bb", "a\x85b"
# Bad for every id, address and URL field; options values only refuse surrogates.
BAD_TEXT = {"surrogate": SURROGATE, "nul": NUL, "escape": CONTROL, "c1": C1}


@pytest.fixture
def world(app):
    return build_world(app)


def body_of(op: Any, services: Services) -> Body:
    body = op.body if isinstance(op.body, Body) else op.body(services)
    assert isinstance(body, Body)
    return body


def string_fields(world: World) -> list[tuple[Any, str]]:
    """(operation, field) for every string field of every body."""
    services = world.app.extensions["tokensvc"]
    found = []
    for op in BODY_OPS:
        for name, field in body_of(op, services).fields.items():
            schema = field.json_schema()
            options = schema.get("anyOf", [schema]) if "type" not in schema else [schema]
            if any(option.get("type") == "string" for option in options):
                found.append((op, name))
    return found


def send(w: World, op: Any, body: dict[str, Any]) -> Any:
    role = "admin" if "admin" in op.roles else op.roles[0]  # past every scope check
    data = json.dumps(body)  # ensure_ascii: a lone surrogate goes as the escape \ud800
    return w.req(op.method, op_path(w, op), w.key(role), data=data, content_type=JSON)


# -- item 7: no string gives a 500 ----------------------------------------------------------
def test_every_string_field_is_found(world):
    names = {(op_id(op), name) for op, name in string_fields(world)}
    assert {("POST /v1/consoles", "host"), ("POST /v1/consoles", "access_url")} <= names
    assert {("PUT /v1/instances/<uuid>", "host"), ("POST /v1/tokens/connect", "client")} <= names
    assert ("POST /v1/tokens/connect", "proxy_id") in names


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_a_bad_string_in_any_body_field_is_a_4xx_naming_it(world, bad):
    for op, name in string_fields(world):
        before = row_counts(world.app)
        resp = send(world, op, SAMPLE_BODIES[(op.method, op.rule)](world) | {name: BAD_TEXT[bad]})
        case = f"{op_id(op)} {name}"
        if name == "token":  # malformed tokens look like unknown ones
            assert_problem(resp, 404, "invalid-token")
            continue
        problem = assert_problem(resp, 422, "validation-error")
        assert [e["field"] for e in problem["errors"]] == [name], case
        assert row_counts(world.app) == before, case


@pytest.mark.parametrize("where", ["value", "key"])
def test_a_lone_surrogate_in_options_is_422(world, where):
    options = {"k": SURROGATE} if where == "value" else {SURROGATE: 1}
    body = console_body(world.uuid_a) | {"options": options}
    resp = world.req("POST", "/v1/consoles", world.admin, data=json.dumps(body), content_type=JSON)
    problem = assert_problem(resp, 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["options"]
    ok = console_body(world.uuid_a) | {"options": {"k": CONTROL}}  # free-form, but storable
    assert world.req("POST", "/v1/consoles", world.admin, json=ok).status_code == 201


CONTROLS_IN_PATH = ("a%00b", "a%1Bb", "a%C2%85b")


@pytest.mark.parametrize("bad", [*CONTROLS_IN_PATH, "%ED%A0%80", "a%20b"])
def test_a_bad_string_in_a_path_or_query_is_never_a_500(world, bad):
    for op in OPS:
        if "<" not in op.rule:
            continue
        path = op.rule.replace("<uuid>", bad).replace("<host>", bad)
        path = path.replace("<lease_id>", bad).replace("<proxy_id>", bad)
        body = SAMPLE_BODIES.get((op.method, op.rule), lambda w: None)(world)
        resp = world.req(op.method, path, world.key(op.roles[0]), json=body)
        assert 400 <= resp.status_code < 500 or resp.status_code in (200, 202, 204), op_id(op)
        control = bad in CONTROLS_IN_PATH  # the rest decode to text a host name may be
        if "<uuid>" in op.rule or ("<host>" in op.rule and control):
            assert_problem(resp, 422, "validation-error")
    resp = world.req("GET", f"/v1/leases?proxy_id={bad}&compute_host={bad}", world.admin)
    assert resp.status_code < 500


@pytest.mark.parametrize(
    "url",
    ["ftp://c.example/x", "/vnc.html", "c.example/vnc.html", "javascript:alert(1)",
     "https://", "https://c.example/a b", "https://c.example/\x00", "data:text/html,x"],
)  # fmt: skip
def test_access_url_must_be_an_absolute_http_url(world, url):
    resp = world.register(port=5930, access_url=url)
    problem = assert_problem(resp, 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["access_url"]


@pytest.mark.parametrize(
    "host",
    ["a b", "a\tb", "exa_mple.org", "-a.example", "a-.example", "a..example", "x" * 64,
     ("a" * 63 + ".") * 4, "[::1]", "10.0.0.1:5900", "127.1", "0x7f000001", "2130706433",
     "010.0.0.1", "0", "fe80::1%e\x00", "é.example"],
)  # fmt: skip
def test_console_host_must_be_an_ip_address_or_rfc_1123_name(world, host):
    problem = assert_problem(world.register(port=5931, host=host), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["host"]


@pytest.mark.parametrize(
    "host",
    ["10.0.0.9", "2001:db8::5", "console-1.example", "CONSOLE.example.", "a" * 63, "7-eleven"],
)
def test_console_host_accepts_addresses_and_names(world, host):
    assert world.register(port=5932, host=host).status_code == 201


# -- item 3, service side: console addresses a proxy must not dial ---------------------------
REFUSED = ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", "169.254.169.254", "fe80::1",
           "fe80::1%eth0", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "::ffff:169.254.169.254",
           "localhost", "LocalHost.", "console.localhost"]  # fmt: skip


@pytest.mark.parametrize("host", REFUSED)
def test_a_console_address_a_proxy_must_not_dial_is_refused(world, host):
    before = row_counts(world.app)
    for who in (world.admin, world.compute_a):
        body = console_body(world.uuid_a) | {"host": host}
        problem = assert_problem(world.req("POST", "/v1/consoles", who, json=body), 422,
                                 "validation-error")  # fmt: skip
        [error] = problem["errors"]
        assert error["field"] == "host" and "TOKENSVC_CONSOLE_NETWORKS" in error["detail"]
    ports = console_body(world.uuid_a) | {"host": host, "ports": [5950, 5951]}
    del ports["port"]
    assert_problem(world.req("POST", "/v1/consoles", world.admin, json=ports), 422,
                   "validation-error")  # fmt: skip
    assert row_counts(world.app) == before


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [("127.0.0.0/8", "127.0.0.1", 201), ("127.0.0.0/8", "localhost", 201),
     ("127.0.0.0/8", "::ffff:127.0.0.1", 201), ("127.0.0.0/8", "::1", 422),
     ("::1/128", "localhost", 201), ("::1/128", "127.0.0.1", 422),
     ("169.254.0.0/16", "169.254.1.1", 201), ("fe80::/10", "fe80::1%eth0", 201),
     ("10.0.0.0/8", "127.0.0.1", 422)],
)  # fmt: skip
def test_console_networks_let_an_operator_opt_in(make_app, mariadb_url, redis_url, allowed, host,
                                                 status):  # fmt: skip
    networks = parse_networks([allowed])
    w = build_world(make_app(database_url=mariadb_url, redis_url=redis_url,
                             console_networks=networks))  # fmt: skip
    assert w.register(port=5940, host=host).status_code == status


# -- item 11: chunked bodies, and what the schema promises ----------------------------------
def chunked(w: World, data: bytes) -> Any:
    """A body sent as granian hands a chunked one over: no Content-Length, terminated input."""
    return w.client.open(
        f"/v1/instances/{w.uuid_a}",
        method="PUT",
        input_stream=io.BytesIO(data),
        headers=w.admin | {"Content-Type": JSON, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_chunked_body_over_the_limit_is_413(world):
    padded = b'{"host": "' + b"x" * MAX_BODY + b'"}'
    assert_problem(chunked(world, padded), 413, "payload-too-large")
    exact = b'{"host": "' + b"x" * (MAX_BODY - 12) + b'"}'
    assert len(exact) == MAX_BODY
    problem = assert_problem(chunked(world, exact), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["host"]  # read whole, too long a host
    resp = chunked(world, json.dumps({"host": "compute-a"}).encode())
    assert resp.status_code == 200 and resp.get_json()["data"]["host"] == "compute-a"


@pytest.mark.parametrize("body", ["both", "neither"])
def test_register_takes_port_or_ports_not_both(world, body):
    sent = console_body(world.uuid_a) | {"ports": [5960, 5961]}
    if body == "neither":
        del sent["port"], sent["ports"]
    problem = assert_problem(world.req("POST", "/v1/consoles", world.admin, json=sent), 422,
                             "validation-error")  # fmt: skip
    assert [e["field"] for e in problem["errors"]] == ["port"]


def test_openapi_says_what_the_service_checks(world):
    doc = world.client.get("/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for spec in ops.values():
            for param in spec.get("parameters", []):
                if param["name"] == "uuid":
                    assert param["schema"] == {"type": "string", "format": "uuid"}, path
                if param["name"] == "host":
                    assert "pattern" in param["schema"], path
    register = schemas["RegisterConsole"]
    assert register["oneOf"] == [{"required": ["port"]}, {"required": ["ports"]}]
    assert "pattern" in register["properties"]["access_url"]["anyOf"][0]
    formats = [option["format"] for option in register["properties"]["host"]["anyOf"]]
    assert formats == ["ipv4", "ipv6", "hostname"]
    for name in ("TokenBody", "ValidateBody", "ConnectBody"):
        token = schemas[name]["properties"]["token"]
        # The longest token the schema allows, JSON-escaped (12 bytes a character at most).
        assert len('{"token": ""}') + 12 * token["maxLength"] <= MAX_BODY // 2, name
    content = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]
    resp = world.client.get("/metrics", headers=world.admin)
    assert resp.mimetype == "text/plain"


def test_a_token_the_schema_allows_is_answered_as_invalid(world):
    longest = "x" * 256
    assert_problem(world.validate(longest), 404, "invalid-token")
    problem = assert_problem(world.validate(longest + "x"), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["token"]


def test_an_id_is_checked_in_the_purge_path_too(world):
    for host in ("a%00b", "a%1Bb"):
        resp = world.req("DELETE", f"/v1/hosts/{host}/consoles/expired", world.admin)
        assert [e["field"] for e in assert_problem(resp, 422, "validation-error")["errors"]] == [
            "host"
        ]
    resp = world.req("DELETE", f"/v1/hosts/{uuid.uuid4()}/consoles/expired", world.admin)
    assert resp.status_code == 200


def test_rows_written_under_looser_rules_are_still_read(world):
    """A console stored by an older release (a relative access URL, a loopback host)
    still validates and lists: stricter checks apply to what is written, not read back."""
    services = world.app.extensions["tokensvc"]
    with services.engine.begin() as conn:
        conn.execute(
            consoles.update()
            .where(consoles.c.instance_uuid == world.uuid_a)
            .values(access_url="/vnc.html?path=websockify%3Ftoken%3D{token}", host="127.0.0.1")
        )
    services.cached.cache.client.flushdb()  # validate reads the row again
    validated = world.validate(world.token_a)
    assert validated.status_code == 200, validated.get_data(as_text=True)
    assert validated.json["connection"]["data"]["host"] == "127.0.0.1"
    (listed,) = world.consoles(world.uuid_a).json["connections"]
    assert listed["data"]["access_url"].startswith("/vnc.html")

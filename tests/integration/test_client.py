"""tokensvc.client against the real app (MariaDB + Redis) served over real TCP."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest
import requests
from flask import Flask
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool
from werkzeug.serving import BaseWSGIServer, make_server

from tests.support import Keys, free_port
from tokensvc.auth import generate_key
from tokensvc.client import Client, Registration
from tokensvc.errors import (
    BackendUnavailable,
    Forbidden,
    InvalidToken,
    NotAcceptable,
    NotFound,
    TokensvcError,
    Unauthorized,
    ValidationFailed,
)
from tokensvc.objects import ConsoleConnection, Instance
from tokensvc.stores.base import PurgeResult

COMPUTE = "compute-1"


class Served:
    """A WSGI app on a real port, counting the TCP connections it accepts."""

    def __init__(self, server: BaseWSGIServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_port}"
        self.accepted = 0
        accept = server.get_request

        def counting_accept() -> tuple[socket.socket, Any]:
            self.accepted += 1
            return accept()

        monkeypatch.setattr(server, "get_request", counting_accept)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Any], Served]]:
    running: list[tuple[BaseWSGIServer, threading.Thread]] = []

    def start(wsgi_app: Any) -> Served:
        server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
        served = Served(server, monkeypatch)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return served

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def served(app: Flask, serve: Callable[[Any], Served]) -> Served:
    return serve(app)


@pytest.fixture
def connect(served: Served) -> Iterator[Callable[..., Client]]:
    """Clients of the served app, closed at teardown."""
    made: list[Client] = []

    def make(key: str, **kw: Any) -> Client:
        client = Client(served.url, key, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def admin(keys: Keys, connect: Callable[..., Client]) -> Client:
    return connect(keys.mint("admin"))


@pytest.fixture
def proxy(keys: Keys, connect: Callable[..., Client]) -> Client:
    return connect(keys.mint("proxy"))


def new_instance(client: Client, host: str = COMPUTE) -> str:
    instance_uuid = str(uuid.uuid4())
    client.put_instance(instance_uuid, host)
    return instance_uuid


def problem_of(error: TokensvcError) -> dict[str, Any]:
    found = error.problem
    assert found is not None
    return found


# -- the whole flow --------------------------------------------------------------------
def test_full_flow(admin: Client, proxy: Client, keys: Keys, connect: Callable[..., Client]):
    compute = connect(keys.mint("compute", host=COMPUTE))
    instance_uuid = str(uuid.uuid4())
    instance = compute.put_instance(instance_uuid, COMPUTE)
    assert isinstance(instance, Instance)
    assert (instance.uuid, instance.host) == (instance_uuid, COMPUTE)

    url = "https://proxy.example/vnc_lite.html?path=websockify%3Ftoken%3D{token}"
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    reg = compute.register_console(
        instance_uuid, "10.0.0.5", 5901, "novnc", access_url=url, options={"a": 1}, ttl=120
    )
    assert isinstance(reg, Registration)
    assert reg.access_url == url.replace("{token}", quote(reg.token, safe=""))
    assert before + dt.timedelta(seconds=119) <= reg.expires_at
    assert reg.expires_at <= before + dt.timedelta(seconds=122)
    assert reg.connection.port == 5901 and reg.connection.options == {"a": 1}
    assert reg.token not in repr(reg)

    connection = proxy.validate(reg.token)
    assert isinstance(connection, ConsoleConnection)
    assert (connection.instance_uuid, connection.host) == (instance_uuid, "10.0.0.5")
    assert (connection.port, connection.console_type) == (5901, "novnc")
    assert proxy.validate(reg.token, "novnc").port == 5901
    with pytest.raises(InvalidToken):
        proxy.validate(reg.token, "spice-html5")

    listed = compute.list_consoles(instance_uuid)
    assert [(c.port, c.console_type, c.connected) for c in listed] == [(5901, "novnc", False)]
    assert not listed[0].obj_attr_is_set("token_hash")

    compute.revoke_token(reg.token)
    with pytest.raises(InvalidToken) as revoked:
        proxy.validate(reg.token)
    assert reg.token not in str(revoked.value)
    assert reg.token not in json.dumps(problem_of(revoked.value))
    with pytest.raises(InvalidToken):
        compute.revoke_token(reg.token)
    assert compute.list_consoles(instance_uuid) == []

    tokens = [compute.register_console(instance_uuid, "10.0.0.5", p, "novnc").token for p in (1, 2)]
    assert len(compute.list_consoles(instance_uuid)) == 2
    compute.revoke_all(instance_uuid)
    assert compute.list_consoles(instance_uuid) == []
    for token in tokens:
        with pytest.raises(InvalidToken):
            proxy.validate(token)

    last = compute.register_console(instance_uuid, "10.0.0.5", 5902, "serial")
    compute.delete_instance(instance_uuid)
    with pytest.raises(InvalidToken):
        proxy.validate(last.token)
    with pytest.raises(NotFound):
        compute.list_consoles(instance_uuid)


def test_purge_expired(admin: Client, proxy: Client):
    instance_uuid = new_instance(admin)
    short = admin.register_console(instance_uuid, "10.0.0.5", 5900, "novnc", ttl=1)
    admin.register_console(instance_uuid, "10.0.0.5", 5901, "novnc", ttl=600)
    deadline = time.monotonic() + 5
    deleted = 0
    while deleted == 0 and time.monotonic() < deadline:
        result = admin.purge_expired(COMPUTE)
        assert isinstance(result, PurgeResult)
        deleted = result.deleted
        time.sleep(0.25)
    assert deleted == 1
    assert [c.port for c in admin.list_consoles(instance_uuid)] == [5901]
    assert admin.purge_expired(COMPUTE).deleted == 0
    with pytest.raises(InvalidToken):
        proxy.validate(short.token)


def test_a_token_stops_validating_at_its_expiry(admin: Client, proxy: Client):
    instance_uuid = new_instance(admin)
    time.sleep((0.6 - time.time() % 1) % 1)  # register 0.6 s into a wall-clock second
    reg = admin.register_console(instance_uuid, "10.0.0.5", 5900, "novnc", ttl=1)
    assert proxy.validate(reg.token).port == 5900
    time.sleep(max(0.0, reg.expires_at.timestamp() + 0.15 - time.time()))
    with pytest.raises(InvalidToken):
        proxy.validate(reg.token)


def test_health_and_readiness(admin: Client):
    assert admin.health() == {"status": "ok"}
    assert admin.readiness() == {"database": "ok", "redis": "ok"}


def test_object_version_1_0(admin: Client, keys: Keys, connect: Callable[..., Client]):
    instance_uuid = new_instance(admin)
    reg = admin.register_console(instance_uuid, "10.0.0.5", 5900, "novnc")
    old_proxy = connect(keys.mint("proxy"), object_version="1.0")
    connection = old_proxy.validate(reg.token)
    assert connection.port == 5900
    assert not connection.obj_attr_is_set("console_type")


# -- typed exceptions ------------------------------------------------------------------
@pytest.mark.parametrize("key", ["not-a-key", "placeholder"])
def test_unauthorized_with_a_bad_key(connect: Callable[..., Client], key: str):
    client = connect(generate_key() if key == "placeholder" else key)  # well-formed, unknown
    with pytest.raises(Unauthorized) as caught:
        client.put_instance(str(uuid.uuid4()), COMPUTE)
    assert problem_of(caught.value)["status"] == 401


def test_forbidden_with_a_wrong_role_or_host(
    admin: Client, proxy: Client, keys: Keys, connect: Callable[..., Client]
):
    with pytest.raises(Forbidden) as caught:
        proxy.put_instance(str(uuid.uuid4()), COMPUTE)
    assert problem_of(caught.value)["type"] == "/problems/forbidden"
    with pytest.raises(Forbidden):
        admin.validate("whatever")
    other_compute = connect(keys.mint("compute", host="compute-2"))
    with pytest.raises(NotFound):  # another host's instance is answered as a missing one
        other_compute.list_consoles(new_instance(admin))


def test_validation_failed_lists_the_fields(admin: Client):
    instance_uuid = new_instance(admin)
    with pytest.raises(ValidationFailed) as caught:
        admin.register_console(instance_uuid, "10.0.0.5", 0, "novnc")
    assert type(caught.value) is ValidationFailed
    assert set(caught.value.errors) == {"port"}
    assert caught.value.errors["port"]
    assert problem_of(caught.value)["status"] == 422
    with pytest.raises(ValidationFailed) as several:
        admin.register_console(instance_uuid, "", 70000, "telnet")
    assert {"host", "port", "console_type"} <= set(several.value.errors)


def test_not_found_for_an_unknown_instance(admin: Client):
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFound) as caught:
        admin.register_console(unknown, "10.0.0.5", 5900, "novnc")
    assert type(caught.value) is NotFound  # not InvalidToken, the other 404
    with pytest.raises(NotFound):
        admin.list_consoles(unknown)
    with pytest.raises(NotFound):
        admin.delete_instance(unknown)


def test_not_acceptable_object_version(admin: Client, keys: Keys, connect: Callable[..., Client]):
    instance_uuid = new_instance(admin)
    future = connect(keys.mint("admin"), object_version="7.0")
    with pytest.raises(NotAcceptable) as caught:
        future.list_consoles(instance_uuid)
    assert "7.0" in str(caught.value)


def test_backend_unavailable_when_nothing_listens():
    with Client(f"http://127.0.0.1:{free_port()}", generate_key(), timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as caught:
            client.health()
    assert time.monotonic() - started < 5
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


def test_backend_unavailable_when_the_service_does_not_answer():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # accepts into the backlog, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with Client(url, generate_key(), timeout=0.3) as client, pytest.raises(BackendUnavailable):
            client.validate("a-token")


# -- answers that are not the API's ----------------------------------------------------
def fake(status: str, content_type: str, body: bytes, headers: tuple[Any, ...] = ()) -> Any:
    def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        sent = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        token = json.loads(sent)["token"] if sent else ""
        start_response(status, [("Content-Type", content_type), *headers])
        return [body.replace(b"{token}", token.encode())]

    return wsgi


def test_non_problem_http_errors_raise_tokensvc_error(serve: Callable[[Any], Served]):
    gateway = serve(fake("502 Bad Gateway", "text/html", b"<h1>bad gateway</h1>"))
    with Client(gateway.url, generate_key()) as client, pytest.raises(TokensvcError) as caught:
        client.health()
    assert type(caught.value) is TokensvcError
    assert "502" in str(caught.value)


def test_redirects_are_not_followed(serve: Callable[[Any], Served]):
    elsewhere = serve(fake("200 OK", "application/json", b'{"connection": {}}'))
    redirect = ("Location", f"{elsewhere.url}/v1/tokens/validate")
    mover = serve(fake("307 Temporary Redirect", "text/plain", b"", (redirect,)))
    with Client(mover.url, generate_key()) as client, pytest.raises(TokensvcError) as caught:
        client.validate("secret-token-value")
    assert "307" in str(caught.value)
    assert elsewhere.accepted == 0  # the token was never replayed to the other host


def test_a_token_echoed_in_a_problem_is_blanked(serve: Callable[[Any], Served]):
    problem = b'{"type": "/problems/invalid-token", "status": 404, "detail": "no {token} here"}'
    echo = serve(fake("404 Not Found", "application/problem+json", problem))
    with Client(echo.url, generate_key()) as client, pytest.raises(InvalidToken) as caught:
        client.validate("secret-token-value")
    assert "secret-token-value" not in str(caught.value)
    assert "secret-token-value" not in json.dumps(problem_of(caught.value))
    assert str(caught.value) == "no <token> here"


# -- the client itself -----------------------------------------------------------------
def test_from_key_file(tmp_path, keys: Keys, served: Served):
    path = tmp_path / "admin.key"
    path.write_text(f"  {keys.mint('admin')}\n\n")
    with Client.from_key_file(served.url, path, timeout=2.0) as client:
        assert client.timeout == 2.0
        instance = client.put_instance(str(uuid.uuid4()), COMPUTE)
    assert instance.host == COMPUTE
    (tmp_path / "empty.key").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        Client.from_key_file(served.url, tmp_path / "empty.key")


def pool_of(session: requests.Session, url: str) -> HTTPConnectionPool:
    """The session's only connection pool (a second one would mean a second host)."""
    adapter = session.get_adapter(url)
    assert isinstance(adapter, HTTPAdapter)
    pools = adapter.poolmanager.pools
    [pool] = [pools[key] for key in pools.keys()]  # noqa: SIM118 (no __iter__)
    assert isinstance(pool, HTTPConnectionPool)
    return pool


def test_one_session_and_pooled_connection_serve_every_call(keys: Keys, served: Served):
    # The werkzeug server answers "Connection: close" (it has no keep-alive), so the
    # reuse is seen in the client's pool here and over TCP in the next test.
    with Client(served.url, keys.mint("admin")) as client:
        instance_uuid = new_instance(client)
        reg = client.register_console(instance_uuid, "10.0.0.5", 5900, "novnc")
        client.list_consoles(instance_uuid)
        client.health()
        client.revoke_token(reg.token)
        client.revoke_all(instance_uuid)
        pool = pool_of(client.session, served.url)
        assert (pool.num_requests, pool.num_connections) == (6, 1)


class KeepAlive(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: one handler instance per accepted TCP connection."""

    protocol_version = "HTTP/1.1"
    accepted = 0

    def setup(self) -> None:
        type(self).accepted += 1
        super().setup()

    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def keep_alive() -> Iterator[tuple[str, type[KeepAlive]]]:
    handler = type("Counted", (KeepAlive,), {"accepted": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_one_tcp_connection_serves_many_calls(keep_alive: tuple[str, type[KeepAlive]]):
    url, handler = keep_alive
    with Client(url, generate_key()) as client:
        for _ in range(5):
            assert client.health() == {"status": "ok"}
        assert handler.accepted == 1
    with Client(url, generate_key()) as other:  # the counter does count connections
        other.health()
    assert handler.accepted == 2


def test_a_given_session_is_used_and_left_open(keep_alive: tuple[str, type[KeepAlive]]):
    url, handler = keep_alive
    with requests.Session() as session:
        with Client(url, generate_key(), session=session) as client:
            client.health()
        with Client(url, generate_key(), session=session) as again:
            again.health()  # close() left the caller's session and its connection alone
        assert handler.accepted == 1
        assert pool_of(session, url).num_requests == 2

"""`tokensvc serve` as operators run it: real processes, real MariaDB and Redis."""

from __future__ import annotations

import json
import re
import socket
import stat

import pytest
import requests

from tests.e2e.support import INSTANCE, Server, register
from tests.support import MariaDB
from tokensvc import tokens
from tokensvc.db import schema


def validations(server: Server, proxy: str, token: str, times: int = 12) -> set[int]:
    return {
        server.post("/v1/tokens/validate", proxy, {"token": token}).status_code
        for _ in range(times)
    }


REVOCATIONS = {
    "revoke": lambda s, admin, token: s.post("/v1/tokens/revoke", admin, {"token": token}),
    "rotate": lambda s, admin, token: register(s, admin),
    "delete": lambda s, admin, token: s.call("DELETE", f"/v1/instances/{INSTANCE}", admin),
    "move": lambda s, admin, token: s.call(
        "PUT", f"/v1/instances/{INSTANCE}", admin, {"host": "compute-2"}
    ),
}


@pytest.mark.parametrize("kind", list(REVOCATIONS))
def test_revocation_reaches_every_worker_on_the_next_validate(production, kind):
    server, admin, proxy = production
    token = register(server, admin)
    assert validations(server, proxy, token) == {200}  # cached in Redis, keys in both workers
    REVOCATIONS[kind](server, admin, token)
    assert validations(server, proxy, token) == {404}


def test_metrics_add_up_over_worker_processes(production):
    server, admin, proxy = production

    def hits() -> float:
        text = server.call("GET", "/metrics", admin).text
        found = re.search(r'^tokensvc_validate_total\{result="hit"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    token = register(server, admin, port=5999)
    before = hits()
    assert validations(server, proxy, token, times=10) == {200}
    assert hits() - before == 10


def test_logs_hold_no_token_and_no_hash(production):
    server, admin, proxy = production
    issued = [register(server, admin, port=port) for port in (6001, 6002)]
    for token in issued:
        validations(server, proxy, token, times=2)
        server.post("/v1/tokens/revoke", admin, {"token": token})
        validations(server, proxy, token, times=1)
    server.post("/v1/tokens/validate", proxy, {"token": tokens.generate_token() + "x"})
    log = server.log.read_text()
    assert "Listening at" in log  # the capture works
    for token in issued:
        assert token not in log and tokens.hash_token(token) not in log


def test_zero_configuration_serves_sqlite_with_a_bootstrap_key(tmp_path):
    server = Server({}, tmp_path)
    server.start()
    try:
        key_file = tmp_path / "tokensvc-admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        admin = key_file.read_text().strip()
        output = server.log.read_text()
        assert str(key_file) in output and admin not in output
        assert (tmp_path / "tokensvc.db").exists()
        proxy = json.loads(server.cli("keys", "create", "--role", "proxy", "--json").stdout)["key"]
        token = register(server, admin)
        assert validations(server, proxy, token, times=3) == {200}
        ready = requests.get(f"{server.url}/readyz", timeout=5).json()
        assert ready == {"database": "ok", "redis": "disabled"}
        # The default worker count is one the server does not warn about.
        assert "[WARNING]" not in server.log.read_text()
    finally:
        server.stop()


def test_serve_refuses_an_old_mysql_schema(tmp_path):
    mariadb = MariaDB()
    url = mariadb.create("old")
    try:
        result = Server({"TOKENSVC_DATABASE_URL": url}, tmp_path).cli("serve")
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"tokensvc: database schema is at no revision, this tokensvc needs "
            f"{schema.head_revision()}: run `tokensvc db upgrade`"
        ]
    finally:
        mariadb.drop(url)


def test_an_existing_admin_key_file_is_never_overwritten(tmp_path):
    existing = tmp_path / "tokensvc-admin.key"
    existing.write_text("the key of another database\n")
    server = Server({"TOKENSVC_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"}, tmp_path)
    server.start()
    try:
        written = tmp_path / "tokensvc-admin-2.key"
        assert existing.read_text() == "the key of another database\n"
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
        output = server.log.read_text()
        assert f"bootstrap admin key written to {written}" in output
        assert "tokensvc-admin.key exists already and was left as it is" in output
        admin = written.read_text().strip()
        answer = server.call("GET", f"/v1/instances/{INSTANCE}/consoles", admin)
        assert answer.status_code == 404  # the key works: the instance is just unknown
    finally:
        server.stop()


def test_metrics_labels_stay_bounded_whatever_the_method(production):
    """A method is a label only if it is one of HTTP's own: sent names would grow /metrics."""
    server, admin, _ = production
    sent = [f"X{n}{'Q' * 4000}" for n in range(20)]
    for method in sent:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(f"{method} /v1/leases HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.recv(65536)
    text = server.call("GET", "/metrics", admin).text
    assert 'method="other"' in text  # the requests were counted, as one label
    assert not any(method in text for method in sent)
    assert len(text) < 200_000

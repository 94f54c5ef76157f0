"""The session audit trail of a real `tokensvc serve`: one line per event, never a token."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import INSTANCE, Server, deployment, register
from tokensvc import tokens

CLIENT = "198.51.100.7:53211"
CONSOLE = f"{INSTANCE}/10.2.0.9:5900"


def run_sessions(server: Server, admin: str, proxy: str) -> tuple[str, list[str]]:
    """connect + disconnect, then connect + force-disconnect: the token and the leases."""
    token = register(server, admin)
    leases = []
    for end in ("disconnect", "force"):
        body: dict[str, object] = {"token": token, "proxy_id": "proxy-a", "client": CLIENT}
        connected = server.post("/v1/tokens/connect", proxy, body)
        assert connected.status_code == 200, connected.text
        lease_id = connected.json()["lease"]["data"]["id"]
        if end == "disconnect":
            ended = server.post(f"/v1/leases/{lease_id}/disconnect", proxy, {})
            assert ended.status_code == 204, ended.text
        else:
            assert server.call("DELETE", f"/v1/leases/{lease_id}", admin).status_code == 202
        leases.append(lease_id)
    return token, leases


def logged(server: Server, wanted: str, count: int) -> str:
    """The log once it holds `wanted` `count` times (workers write as they go)."""
    deadline = time.monotonic() + 5
    text = server.log.read_text()
    while text.count(wanted) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        text = server.log.read_text()
    return text


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, str, str]]:
    with deployment("logs", tmp_path, request.param) as (server, _):
        admin, proxy = server.create_key("admin"), server.create_key("proxy")
        server.start()
        yield server, admin, proxy


def assert_secret_free(log: str, token: str) -> None:
    assert token not in log and tokens.hash_token(token) not in log


@pytest.mark.parametrize("served", [{}], indirect=True)
def test_text_lines_name_the_lease_proxy_console_and_client(served):
    server, admin, proxy = served
    token, (first, second) = run_sessions(server, admin, proxy)
    log = logged(server, "tokensvc.sessions: session ", 3)
    lines = [line for line in log.splitlines() if "tokensvc.sessions: session " in line]
    events = {line.split("tokensvc.sessions: session ")[1].split()[0]: line for line in lines}
    assert sorted(events) == ["connect", "disconnect", "forced"] and len(lines) == 4
    for event, lease_id in (("disconnect", first), ("forced", second)):
        line = events[event]
        assert line.split()[2] == "INFO"
        for field in (f"lease_id={lease_id}", "proxy_id=proxy-a", f"console={CONSOLE}"):
            assert field in line.split(), line
        assert f"client={CLIENT}" in line.split()
    assert "reason=forced" in events["forced"].split()
    assert_secret_free(log, token)


@pytest.mark.parametrize("served", [{"TOKENSVC_LOG_FORMAT": "json"}], indirect=True)
def test_json_lines_are_objects_with_the_fields_as_keys(served):
    server, admin, proxy = served
    token, (first, second) = run_sessions(server, admin, proxy)
    log = logged(server, '"logger": "tokensvc.sessions"', 4)
    parsed = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line
    assert any("Listening at" in line["message"] for line in parsed)  # granian's, as json
    sessions = [line for line in parsed if line["logger"] == "tokensvc.sessions"]
    assert [line["event"] for line in sessions] == ["connect", "disconnect", "connect", "forced"]
    for line, lease_id in zip(sessions, (first, first, second, second), strict=True):
        assert line["level"] == "INFO" and line["message"] == f"session {line['event']}"
        assert line["lease_id"] == lease_id and line["proxy_id"] == "proxy-a"
        assert line["console"] == CONSOLE and line["client"] == CLIENT
        assert {"time", "duration", "reason"} <= line.keys()
    assert sessions[-1]["reason"] == "forced"
    assert_secret_free(log, token)


@pytest.mark.parametrize("served", [{"TOKENSVC_LOG_LEVEL": "WARNING"}], indirect=True)
def test_warning_level_drops_the_session_lines(served):
    server, admin, proxy = served
    token, _ = run_sessions(server, admin, proxy)
    time.sleep(0.5)
    log = server.log.read_text()
    assert "Listening at" in log  # the capture works; granian's start lines stay
    assert "session connect" not in log and "tokensvc.sessions" not in log
    assert_secret_free(log, token)

"""`tokensvc proxy` end to end: the service, the proxy, the console and the user are real.

The service is a two-worker `tokensvc serve` on MariaDB + Redis with a 3 s lease TTL
(heartbeats every second); the proxy runs as `tokensvc proxy` in its own process; the
console is a TCP server that greets like VNC and echoes; the user is websocket-client.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import websocket

from tests.e2e.consoles import (
    BANNER,
    ORIGIN,
    Proxies,
    ProxyProcess,
    Service,
    accepts,
    close_frame,
    eventually,
    receive,
    refusal,
    running_service,
    user,
)
from tests.netproxy import TcpProxy
from tests.support import free_port

LEASE_TTL = 3
BEAT = LEASE_TTL / 3  # the proxy heartbeats every lease_ttl / 3
SLACK = 3.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Like `production`, with a 3 s lease TTL, and a proxy key in a 0600 file."""
    directory = tmp_path_factory.mktemp("proxy-service")
    with running_service("proxy", directory, {"TOKENSVC_LEASE_TTL": str(LEASE_TTL)}) as started:
        yield started


@pytest.fixture(scope="module")
def web_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web")
    (root / "vnc.html").write_text("<title>noVNC</title>\n")
    return root


@pytest.fixture(scope="module")
def proxy(proxies: Proxies, web_root: Path) -> ProxyProcess:
    """The proxy most tests share: no origin check, static files from ``web_root``."""
    return proxies.start("shared", "--web", str(web_root))


# -- sessions ------------------------------------------------------------------------------
def test_bytes_flow_both_ways(service, proxy, console):
    token, _ = service.register(console.port)
    ws = user(proxy.port, token)
    assert receive(ws, len(BANNER)) == BANNER
    ws.send_binary(b"key events")
    assert receive(ws, 10) == b"key events"
    ws.close()
    assert console.wait_live(0)


def test_a_second_user_is_refused_as_busy(service, proxy, console):
    token, _ = service.register(console.port)
    first = user(proxy.port, token)
    assert receive(first, len(BANNER)) == BANNER
    code, reason = refusal(proxy.port, token)
    assert code == 4009 and "busy" in reason
    first.send_binary(b"still mine")
    assert receive(first, 10) == b"still mine"
    assert console.accepted == 1
    first.close()


def test_the_listings_show_the_lease_while_the_user_is_on(service, proxy, console):
    token, instance = service.register(console.port)
    ws = user(proxy.port, token)
    receive(ws, len(BANNER))
    (listed,) = service.leases(instance)
    lease = listed["data"]
    assert (lease["proxy_id"], lease["client"]) == ("shared", "127.0.0.1") and lease["since"]
    (connection,) = service.api("GET", f"/v1/instances/{instance}/consoles")["connections"]
    assert connection["data"]["connected"] is True
    assert connection["data"]["lease"]["data"] == lease
    ws.close()

    def gone() -> bool:
        listed = service.api("GET", f"/v1/instances/{instance}/consoles")["connections"]
        return not service.leases(instance) and listed[0]["data"]["lease"] is None

    assert eventually(gone), "the lease outlived the session"


@pytest.mark.parametrize("kind", ["revoke", "delete", "force"])
def test_revocation_closes_the_live_session_within_a_heartbeat(service, proxy, console, kind):
    token, instance = service.register(console.port)
    ws = user(proxy.port, token)
    receive(ws, len(BANNER))
    (lease,) = service.leases(instance)
    revocation = {
        "revoke": ("POST", "/v1/tokens/revoke", {"token": token}),
        "delete": ("DELETE", f"/v1/instances/{instance}", None),
        "force": ("DELETE", f"/v1/leases/{lease['data']['id']}", None),
    }
    service.api(*revocation[kind])
    code, reason = close_frame(ws, BEAT + SLACK)
    assert code == 4010 and "revoked" in reason
    assert console.wait_live(0)
    assert eventually(lambda: not service.leases(instance)), "the lease was not disconnected"


def test_sigkill_takes_the_relayed_connections_down_and_a_restart_resets(service, proxies, console):
    doomed = proxies.start("doomed")
    token, instance = service.register(console.port)
    ws = user(doomed.port, token)
    receive(ws, len(BANNER))
    assert console.live == 1
    doomed.kill()
    assert service.leases(instance), "the lease should outlive the process for a while"
    assert console.wait_live(0, timeout=5), "a relay outlived the proxy process"
    ws.settimeout(5)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        ws.recv()
    restarted = proxies.start("doomed", port=doomed.port)
    again = user(restarted.port, token)
    assert receive(again, len(BANNER)) == BANNER
    (lease,) = service.leases(instance)
    assert lease["data"]["proxy_id"] == "doomed"
    again.close()


def test_sigterm_stops_accepting_then_closes_sessions_with_1001(service, proxies, console):
    graceful = proxies.start_graceful("graceful", grace=1.5)
    token, instance = service.register(console.port)
    ws = user(graceful.port, token)
    receive(ws, len(BANNER))
    graceful.process.terminate()
    assert eventually(lambda: not accepts(graceful.port)), "still accepting after SIGTERM"
    ws.send_binary(b"grace")
    assert receive(ws, 5) == b"grace"
    code, reason = close_frame(ws, 1.5 + SLACK)
    assert code == 1001 and "shutting down" in reason
    assert graceful.process.wait(10) == 0
    assert not service.leases(instance)


# -- refusals ------------------------------------------------------------------------------
def test_an_expired_token_is_refused(service, proxy, console):
    token, _ = service.register(console.port, ttl=1)
    assert eventually(lambda: service.validate(token) == 404), "the token did not expire"
    assert refusal(proxy.port, token) == (4001, "invalid token")
    assert refusal(proxy.port, "tok_" + "0" * 40)[0] == 4001
    assert refusal(proxy.port, "")[0] == 4001
    assert console.accepted == 0


@pytest.fixture(scope="module")
def strict(proxies: Proxies) -> ProxyProcess:
    return proxies.start("strict", "--allowed-origin", ORIGIN, "--console-type", "novnc")


def test_origins_and_console_types_other_than_the_allowed_ones_are_refused(
    service, strict, console
):
    token, _ = service.register(console.port)
    assert refusal(strict.port, token, origin="https://evil.example")[0] == 4003
    assert refusal(strict.port, token, suppress_origin=True)[0] == 4003
    serial, _ = service.register(console.port, console_type="serial")
    assert refusal(strict.port, serial) == (4001, "invalid token")
    assert console.accepted == 0
    ws = user(strict.port, token, origin=ORIGIN)
    assert receive(ws, len(BANNER)) == BANNER
    ws.close()


def test_service_unreachable_means_try_again_later(service, proxies, console):
    token, _ = service.register(console.port)
    nowhere = proxies.start("nowhere", url=f"http://127.0.0.1:{free_port()}")
    assert refusal(nowhere.port, token)[0] == 1013
    link = TcpProxy("127.0.0.1", service.server.port)
    try:
        cut_off = proxies.start("cut-off", url=f"http://127.0.0.1:{link.port}")
        ws = user(cut_off.port, token)
        receive(ws, len(BANNER))
        link.cut()
        other, _ = service.register(console.port)
        assert refusal(cut_off.port, other)[0] == 1013
        # Its lease can no longer be renewed: before it lapses, the session ends too.
        code, reason = close_frame(ws, LEASE_TTL + SLACK)
        assert code == 1013 and "lapsed" in reason
    finally:
        link.close()
    assert console.wait_live(0)


def test_static_files_are_served_with_web(proxy, strict):
    page = requests.get(f"http://127.0.0.1:{proxy.port}/vnc.html", timeout=5)
    assert page.status_code == 200 and "noVNC" in page.text
    assert requests.get(f"http://127.0.0.1:{strict.port}/vnc.html", timeout=5).status_code == 405


def test_tls_for_users_and_ca_file_for_the_service(service, proxies, console, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    names = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run([*openssl, *names, *files], check=True, capture_output=True, timeout=30)
    secure = proxies.start("tls", "--tls-cert", str(cert), "--tls-key", str(key))
    token, _ = service.register(console.port)
    ws = user(secure.port, token, scheme="wss", sslopt={"ca_certs": str(cert)})
    assert receive(ws, len(BANNER)) == BANNER
    ws.close()
    # Against a TLS server of that CA (not a tokensvc: its reset answers HTTP 501), only the
    # proxy given --ca-file gets through the handshake, whatever REQUESTS_CA_BUNDLE says.
    https = f"https://127.0.0.1:{secure.port}"
    trusting = proxies.start("trusting", "--ca-file", str(cert), url=https)
    doubting = proxies.start("doubting", url=https)
    assert "HTTP 501" in trusting.output and "SSLError" in doubting.output


# -- websockify with the token plugin -------------------------------------------------------
def test_unmodified_websockify_with_the_token_plugin(service, proxies, console):
    websockify = proxies.start_websockify().port
    token, _ = service.register(console.port)
    ws = user(websockify, token)
    assert receive(ws, len(BANNER)) == BANNER
    ws.send_binary(b"plugin")
    assert receive(ws, 6) == b"plugin"
    ws.close()
    with pytest.raises((websocket.WebSocketException, ConnectionError)):
        user(websockify, "tok_" + "1" * 40).recv()
    assert console.accepted == 1


# -- logs ----------------------------------------------------------------------------------
def test_no_token_in_any_proxy_output(service, proxies, console):
    chatty = proxies.start("chatty", "--allowed-origin", ORIGIN)
    token, _ = service.register(console.port)
    near_miss = token[:-1] + ("B" if token.endswith("A") else "A")
    ws = user(chatty.port, token)
    receive(ws, len(BANNER))
    assert refusal(chatty.port, token)[0] == 4009
    assert refusal(chatty.port, token, origin="https://evil.example")[0] == 4003
    assert refusal(chatty.port, near_miss)[0] == 4001
    for request in (f"GET /?token={token} HTTP/1.1 junk", f"GET /x?token={token} HTTP/1.1"):
        with socket.create_connection(("127.0.0.1", chatty.port), timeout=5) as raw:
            raw.sendall(request.encode() + b"\r\nHost: x\r\n\r\n")
            answer = raw.recv(4096)
            assert b"400" in answer or b"405" in answer
    service.api("POST", "/v1/tokens/revoke", {"token": token})
    assert close_frame(ws, BEAT + SLACK)[0] == 4010
    chatty.stop()
    assert "lease" in chatty.output and "refused" in chatty.output
    secrets = [near_miss, *service.issued]
    for started in proxies.started:
        if started.proxy_id != "websockify":  # which logs request paths, tokens included
            assert not [secret for secret in secrets if secret in started.output], started.log

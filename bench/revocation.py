"""Revocation lag: from a revoke's HTTP answer to the 4010 close frame at the user.

``sessions`` users hold live sessions through one `tokensvc proxy` (the default 30 s
lease TTL, so the heartbeat comes every 10 s); their tokens are revoked one by one,
each timed until its websocket gets the close frame. The consoles are one TCP server
that greets like VNC; the users speak just enough websocket (RFC 6455) to read frames.

python -m bench.revocation URL ADMIN_KEY_FILE PROXY_KEY_FILE [SESSIONS] runs it alone.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import socketserver
import statistics
import struct
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import requests

from bench.processes import _port_open, _process, free_port

BANNER = b"RFB 003.008\n"
CLOSE_OPCODE = 0x8
LOOPBACK = "127.0.0.0/8"  # where the bench's console listens (allowed on both sides)


class _Greeter(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(BANNER)
        with contextlib.suppress(OSError):
            while self.request.recv(4096):
                pass


class _Consoles(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def console() -> Iterator[int]:
    server = _Consoles(("127.0.0.1", 0), _Greeter)
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def proxy(service_url: str, key_file: Path) -> Iterator[int]:
    port = free_port()
    command = [str(Path(sys.executable).with_name("tokensvc")), "proxy"]
    command += ["--listen", f"127.0.0.1:{port}", "--proxy-id", f"bench-revoke-{port}"]
    command += ["--service-url", service_url, "--key-file", str(key_file)]
    command += ["--allow-console-network", LOOPBACK]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSVC_")}
    with _process(command, "tokensvc proxy", lambda: _port_open(port), env):
        yield port


class User:
    """A websocket to the proxy: the handshake, then frames read until a close frame."""

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /websockify?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nOrigin: http://bench\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: binary\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head[:40]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the proxy closed the socket")
        return chunk

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def frame(self) -> tuple[int, bytes]:
        first, second = self._take(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._take(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._take(8))[0]
        return first & 0x0F, self._take(length)  # (a server's frames are not masked)

    def greeted(self) -> None:
        data = b""
        while len(data) < len(BANNER):
            data += self.frame()[1]

    def close_code(self) -> int:
        while True:
            opcode, payload = self.frame()
            if opcode == CLOSE_OPCODE:
                return int(struct.unpack("!H", payload[:2])[0])

    def close(self) -> None:
        self.sock.close()


def _register(http: requests.Session, url: str, console_port: int) -> str:
    instance = str(uuid.uuid4())
    http.put(f"{url}/v1/instances/{instance}", json={"host": "bench-compute"}).raise_for_status()
    body = {"instance_uuid": instance, "host": "127.0.0.1", "port": console_port}
    answer = http.post(f"{url}/v1/consoles", json=body | {"console_type": "novnc"})
    answer.raise_for_status()
    return str(answer.json()["token"])


def measure(url: str, admin_key: str, proxy_key_file: Path, sessions: int) -> dict[str, float]:
    """The lags' p50, p99 and max in ms over ``sessions`` revokes, one at a time."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {admin_key}"
    lags: list[float] = []
    with console() as console_port, proxy(url, proxy_key_file) as proxy_port:
        tokens = [_register(http, url, console_port) for _ in range(sessions)]
        users = [User(proxy_port, token) for token in tokens]
        try:
            for one in users:
                one.greeted()
            time.sleep(2.0)  # past the heartbeat's first beat: the next is 10 s away
            for token, one in zip(tokens, users, strict=True):
                http.post(f"{url}/v1/tokens/revoke", json={"token": token}).raise_for_status()
                answered = time.monotonic()
                code = one.close_code()
                lags.append(time.monotonic() - answered)
                assert code == 4010, f"close code {code}, not 4010"
        finally:
            for one in users:
                one.close()
    lags_ms = sorted(lag * 1000 for lag in lags)
    return {
        "revocation_sessions": float(sessions),
        "revocation_lag_p50_ms": statistics.median(lags_ms),
        "revocation_lag_p99_ms": lags_ms[min(len(lags_ms) - 1, int(len(lags_ms) * 0.99))],
        "revocation_lag_max_ms": lags_ms[-1],
    }


if __name__ == "__main__":
    base, admin_file, proxy_file = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    admin = Path(admin_file).read_text().strip()
    for name, value in measure(base, admin, Path(proxy_file), count).items():
        print(f"{name}: {value:.2f}")

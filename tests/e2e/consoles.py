"""Both ends of a proxied console session for tests, and the proxy between them.

``ConsoleServer``: a threaded TCP server that greets like VNC, then echoes. It
listens on 127.0.0.1 only, counts its live connections, and polls with short
timeouts so that ``close()`` returns promptly. ``Proxies``: proxy subprocesses,
stopped (terminate, then kill) by ``stop_all()``. The user: websocket-client
helpers, every wait bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import websocket

from tests.e2e.support import LOOPBACK, TOKENSVC, Server, deployment, register
from tests.netproxy import Listener
from tests.support import free_port, wait_until

BANNER = b"RFB 003.008\n"
ORIGIN = "https://console.example"  # what users send unless a test says otherwise
_POLL = 0.05
_WEBSOCKIFY = str(Path(sys.executable).with_name("websockify"))
# `tokensvc proxy` with a short SIGTERM grace (the command line keeps the default 10 s).
_GRACEFUL = (
    "import json, sys; from pathlib import Path\n"
    "from tokensvc.integrations.options import ProxyOptions\n"
    "from tokensvc.integrations.proxy import run\n"
    "from tokensvc.networks import parse_networks\n"
    "a = json.loads(sys.argv[1])\n"
    "run(ProxyOptions(listen_host='127.0.0.1', listen_port=a['port'], service_url=a['url'],\n"
    "    key_file=Path(a['key']), proxy_id=a['id'], grace=a['grace'],\n"
    f"    allowed_networks=parse_networks(['{LOOPBACK}'])))\n"
)


class ConsoleServer(Listener):
    """Sends ``BANNER`` to each connection, then echoes whatever it receives."""

    def __init__(self) -> None:
        self._live: set[socket.socket] = set()
        super().__init__(max_connections=1024, name="console-server")

    @property
    def live(self) -> int:
        """Connections open right now."""
        with self._lock:
            return len(self._live)

    def wait_live(self, count: int, timeout: float = 10.0) -> bool:
        """True once exactly ``count`` connections are open, False at the deadline."""
        return wait_until(lambda: self.live == count, timeout)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        with self._lock:
            self._live.add(conn)
        self._spawn(self._serve, conn, name="console-server-conn")

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.sendall(BANNER)
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._live.discard(conn)
            conn.close()

    def _close_connections(self) -> None:
        """Each peer sees EOF."""
        with self._lock:
            live = list(self._live)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> ConsoleServer:
        return self


# -- the service -----------------------------------------------------------------------------
class Service:
    """A running `tokensvc serve` as an admin sees it; ``issued``: every token it gave."""

    def __init__(self, server: Server, admin: str, key_file: Path) -> None:
        self.server, self.admin, self.key_file = server, admin, key_file
        self.issued: list[str] = []

    @classmethod
    def start(cls, server: Server, directory: Path) -> Service:
        """Starts ``server`` with an admin key, and a proxy key in a 0600 file there."""
        admin = server.create_key("admin")
        key_file = directory / "proxy.key"
        key_file.write_text(server.create_key("proxy") + "\n")
        key_file.chmod(0o600)
        server.start()
        return cls(server, admin, key_file)

    def api(self, method: str, path: str, body: object = None) -> Any:
        answer = self.server.call(method, path, self.admin, body)
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else None

    def register(self, console_port: int, **fields: Any) -> tuple[str, str]:
        """A console of a new instance at 127.0.0.1:console_port: (token, instance uuid)."""
        instance = str(uuid.uuid4())
        fields.setdefault("host", "127.0.0.1")
        token = register(self.server, self.admin, console_port, instance, **fields)
        self.issued.append(token)
        return token, instance

    def validate(self, token: str) -> int:
        """The status the service answers a proxy validating ``token``."""
        key = self.key_file.read_text().strip()
        return self.server.post("/v1/tokens/validate", key, {"token": token}).status_code

    def leases(self, instance: str) -> list[dict[str, Any]]:
        leases: list[dict[str, Any]] = self.api("GET", "/v1/leases")["leases"]
        return [lease for lease in leases if lease["console"]["instance_uuid"] == instance]


@contextlib.contextmanager
def running_service(
    label: str, directory: Path, env: dict[str, str] | None = None
) -> Iterator[Service]:
    """A ``deployment`` started as a ``Service``; everything stopped and dropped afterwards."""
    with deployment(label, directory, env) as (server, _):
        yield Service.start(server, directory)


# -- the proxy -------------------------------------------------------------------------------
class ProxyProcess:
    """A proxy subprocess, started once it printed ``ready``; its output goes to one file."""

    def __init__(
        self, command: list[str], port: int, proxy_id: str, log: Path, ready: str = "listening on"
    ) -> None:
        self.port, self.proxy_id, self.log = port, proxy_id, log
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSVC_")}
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 20
        while ready not in self.output:
            assert self.process.poll() is None, self.output
            assert time.monotonic() < deadline, f"proxy did not start:\n{self.output}"
            time.sleep(_POLL)

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)


class Proxies:
    """Starts `tokensvc proxy` processes against one service; ``stop_all()`` ends them."""

    def __init__(self, service_url: str, key_file: Path, directory: Path) -> None:
        self.service_url, self.key_file, self.directory = service_url, key_file, directory
        self.started: list[ProxyProcess] = []

    def start(
        self,
        proxy_id: str,
        *extra: str,
        port: int | None = None,
        url: str | None = None,
        networks: tuple[str, ...] = (LOOPBACK,),
    ) -> ProxyProcess:
        """``networks``: the --allow-console-network flags (the tests' consoles: loopback)."""
        port = port or free_port()
        command = [TOKENSVC, "proxy", "--listen", f"127.0.0.1:{port}", "--proxy-id", proxy_id]
        command += ["--service-url", url or self.service_url, "--key-file", str(self.key_file)]
        for network in networks:
            command += ["--allow-console-network", network]
        return self._started(ProxyProcess([*command, *extra], port, proxy_id, self._log(proxy_id)))

    def start_graceful(self, proxy_id: str, grace: float) -> ProxyProcess:
        """A proxy whose sessions get ``grace`` seconds after SIGTERM."""
        port = free_port()
        options = {"port": port, "url": self.service_url, "id": proxy_id, "grace": grace}
        command = [
            sys.executable,
            "-c",
            _GRACEFUL,
            json.dumps(options | {"key": str(self.key_file)}),
        ]
        return self._started(ProxyProcess(command, port, proxy_id, self._log(proxy_id)))

    def start_websockify(self) -> ProxyProcess:
        """An unmodified websockify with our token plugin (it logs tokens: see the plugin)."""
        port, plugin = free_port(), "tokensvc.integrations.websockify.TokenPlugin"
        command = [_WEBSOCKIFY, "--token-plugin", plugin, f"127.0.0.1:{port}"]
        command += ["--token-source", f"{self.service_url},{self.key_file}"]
        started = ProxyProcess(command, port, "websockify", self._log("websockify"), "proxying")
        return self._started(started)

    def _log(self, proxy_id: str) -> Path:
        return self.directory / f"proxy-{proxy_id}-{len(self.started)}.log"

    def _started(self, proxy: ProxyProcess) -> ProxyProcess:
        self.started.append(proxy)
        return proxy

    def stop_all(self) -> None:
        for proxy in self.started:
            proxy.stop()


# -- the user ----------------------------------------------------------------------------------
def user(port: int, token: str, scheme: str = "ws", **options: Any) -> websocket.WebSocket:
    """A websocket to the proxy as noVNC opens it (``token`` query parameter, ``binary``)."""
    url = f"{scheme}://127.0.0.1:{port}/websockify?token={token}"
    options.setdefault("origin", ORIGIN)
    return websocket.create_connection(url, timeout=10, subprotocols=["binary"], **options)


def receive(ws: websocket.WebSocket, count: int) -> bytes:
    """``count`` bytes of relayed data, whatever the frames they came in."""
    data = b""
    while len(data) < count:
        chunk = ws.recv()
        data += chunk if isinstance(chunk, bytes) else chunk.encode()
    return data


def close_frame(ws: websocket.WebSocket, within: float) -> tuple[int, str]:
    """The close code and reason the proxy sends within ``within`` seconds."""
    deadline = time.monotonic() + within
    while (remaining := deadline - time.monotonic()) > 0:
        ws.settimeout(remaining)
        try:
            opcode, frame = ws.recv_data_frame(True)
        except websocket.WebSocketTimeoutException:
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code: int = struct.unpack("!H", frame.data[:2])[0]
            return code, frame.data[2:].decode()
    raise AssertionError(f"no close frame within {within} s")


def refusal(port: int, token: str, **options: Any) -> tuple[int, str]:
    """How the proxy refuses a user: the handshake succeeds, then a close frame."""
    ws = user(port, token, **options)
    try:
        return close_frame(ws, 10)
    finally:
        ws.close()


def eventually(check: Callable[[], bool], within: float = 5.0) -> bool:
    return wait_until(check, within, poll=0.1)


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True

"""`tokensvc proxy`: a websockify console proxy that validates tokens and holds leases.

Design: one process, one thread per connection (websockify's request handler on a
threading TCP server), never websockify's process per connection. The relayed
sockets belong to this process only, so when it dies, even by SIGKILL, the kernel
closes every user's and every console's connection with it: no orphaned relay
keeps a port that the service believes free once the proxy's leases lapse or are
reset. Sessions and heartbeats: tokensvc.integrations.sessions; the websocket
handling: tokensvc.integrations.handler.

Tokens never reach a log line: the handler drops query strings from what it logs,
and a filter on the log handler drops them from anything else that might.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from types import FrameType
from typing import Any

from tokensvc.errors import TokensvcError
from tokensvc.integrations.gate import Admitted, Gate
from tokensvc.integrations.handler import ConsoleProxyHandler, RedactQueries
from tokensvc.integrations.options import (
    INVALID_TOKEN_WINDOW,
    ProxyOptions,
    machine_max_connections,
)
from tokensvc.integrations.sessions import GOING_AWAY, CloseFeed, Heartbeat, Service, Sessions
from tokensvc.ratelimit import RateLimiter

log = logging.getLogger("tokensvc.proxy")

CLOSE_TIMEOUT = 5.0  # seconds sessions get to close and release their leases at the end
REFUSAL_LOG_INTERVAL = 10.0  # seconds: connections over the limit are logged as a count
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class ConsoleProxyServer(socketserver.ThreadingTCPServer):
    """Accepts websocket clients (and static-file requests with ``--web``), a thread each.

    A new connection waits in the gate (tokensvc.integrations.gate) until its request
    has arrived, and only then gets its thread; at most ``max_connections`` are open.
    """

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        options: ProxyOptions,
        service: Service,
        sessions: Sessions,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.service, self.sessions, self.tls = service, sessions, tls
        self.console_type = options.console_type
        self.allowed_origins = {o.strip().lower().rstrip("/") for o in options.allowed_origins}
        self.allowed_networks = options.allowed_networks
        # Per user address, in this process: a user who floods invalid tokens is turned
        # away here, before it spends the proxy's own failure budget at the service
        # (which counts per caller address, and every user shares the proxy's).
        self.invalid_tokens = RateLimiter(
            window=INVALID_TOKEN_WINDOW,
            failed_auth_limit=0,
            invalid_token_limit=options.invalid_token_limit,
        )
        self.web_root = str(options.web.resolve()) if options.web else None
        self.draining = False
        self.max_connections = options.max_connections or machine_max_connections()
        self._open, self._refused, self._refusals_logged = 0, 0, 0.0
        self._count_lock = threading.Lock()
        self.gate = Gate(tls, options.handshake_timeout, self._admitted, self._release)
        # What websockify's request handler reads from its server.
        self.only_upgrade = options.web is None
        self.file_only = True
        self.verbose = self.daemon = self.record = self.run_once = False
        self.traffic = self.web_auth = self.host_token = False
        self.handler_id = 0
        self.logger = log
        if ":" in options.listen_host:
            self.address_family = socket.AF_INET6
        super().__init__((options.listen_host, options.listen_port), ConsoleProxyHandler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self.gate.start()
        super().serve_forever(poll_interval)

    def server_close(self) -> None:
        """Stop accepting; connections still waiting in the gate are dropped."""
        super().server_close()
        self.gate.stop()

    def process_request(self, request: Any, client_address: Any) -> None:
        """In the accepting thread: into the gate, or refused at once when over the limit."""
        with self._count_lock:
            admit = self._open < self.max_connections
            self._open += admit
        if admit:
            self.gate.admit(request, client_address)
        else:
            self._refuse(request)

    def _refuse(self, request: socket.socket) -> None:
        with contextlib.suppress(OSError):
            request.setblocking(False)
            if self.tls is None:
                request.send(_BUSY)
        request.close()
        self._refused += 1
        now = time.monotonic()
        if now - self._refusals_logged >= REFUSAL_LOG_INTERVAL:
            log.warning(
                "refused %d connection(s): %d open, the limit (--max-connections)",
                self._refused,
                self.max_connections,
            )
            self._refused, self._refusals_logged = 0, now

    def _admitted(self, admitted: Admitted, client_address: Any) -> None:
        """From the gate: the request arrived, the connection gets its thread."""
        socketserver.ThreadingMixIn.process_request(self, admitted, client_address)  # type: ignore[arg-type]

    def _release(self) -> None:
        with self._count_lock:
            self._open -= 1

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request.sock if isinstance(request, Admitted) else request)
        self._release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, no traceback (a traceback could quote a request path)."""
        error = sys.exc_info()[1]
        log.warning("%s: connection failed (%s)", client_address[0], type(error).__name__)


def run(options: ProxyOptions) -> None:
    """Serve until SIGTERM/SIGINT, then drain: ``options.grace`` seconds, then 1001."""
    _log_to_stderr()
    service, sessions = Service(options), Sessions()
    try:
        service.ensure_reset()
    except TokensvcError as exc:
        log.warning("could not drop this proxy's old leases yet (%s): retried first", exc.detail)
    server = ConsoleProxyServer(options, service, sessions, _tls_context(options))
    heartbeat, feed = Heartbeat(service, sessions), CloseFeed(service, sessions)
    heartbeat.start()
    feed.start()
    stop = threading.Event()
    _on_signals(stop)
    threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True).start()
    scheme = "wss" if server.tls else "ws"
    host, port = server.socket.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    print(f"tokensvc proxy {options.proxy_id} listening on {scheme}://{host}:{port}", flush=True)
    while not stop.wait(1.0):
        pass
    _drain(server, sessions, options.grace)
    feed.stop()
    heartbeat.stop()
    log.info("stopped")


def _drain(server: ConsoleProxyServer, sessions: Sessions, grace: float) -> None:
    """Stop accepting, let sessions run for ``grace`` seconds, then close them with 1001."""
    log.info("stopping: no new connections, %d session(s) get %g s", len(sessions), grace)
    server.draining = True
    server.shutdown()
    server.server_close()
    _wait_until_empty(sessions, grace)
    sessions.close_all(GOING_AWAY, "proxy shutting down")
    _wait_until_empty(sessions, CLOSE_TIMEOUT)


def _wait_until_empty(sessions: Sessions, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(sessions) and time.monotonic() < deadline:
        time.sleep(0.1)


def _on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _tls_context(options: ProxyOptions) -> ssl.SSLContext | None:
    if options.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    key = str(options.tls_key) if options.tls_key else None
    context.load_cert_chain(str(options.tls_cert), key)
    return context


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactQueries())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)

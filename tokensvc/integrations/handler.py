"""The websocket side of `tokensvc proxy`: a websockify request handler that checks late.

websockify checks the token before the websocket handshake, so a refused user only
sees a failed HTTP upgrade. This handler completes the handshake first, then checks
the Origin and the token, takes the console's lease and relays; every refusal is a
websocket close code the user's browser can show (docs/connection-tracking.md).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import select
import socket
import time
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from websockify.websocketproxy import ProxyRequestHandler  # type: ignore[import-untyped]
from websockify.websocketserver import (  # type: ignore[import-untyped]
    WebSocketRequestHandlerMixIn,
)

from tokensvc.errors import (
    AlreadyConnected,
    BackendUnavailable,
    InvalidToken,
    TokensvcError,
    TooManyRequests,
)
from tokensvc.integrations import sessions as s
from tokensvc.integrations.dialer import ConsoleRefused, ConsoleUnreachable, dial
from tokensvc.integrations.gate import Admitted
from tokensvc.networks import IPNetwork
from tokensvc.objects.console import ConsoleConnection
from tokensvc.ratelimit import TOKEN, RateLimiter
from tokensvc.tokens import is_well_formed

log = logging.getLogger("tokensvc.proxy")

POLL = 0.2  # seconds: how often a relay looks whether its session must close
CLOSE_WAIT = 2.0  # seconds to wait for the user's answer to our close frame
DIAL_TIMEOUT = 5.0
SEND_TIMEOUT = 30.0  # seconds a write may block before the peer counts as gone
BUFFER = 65536
_QUERY = re.compile(r"\?[^\s'\"]*")


def redact(text: str) -> str:
    """``text`` without URL query strings: the token travels in one."""
    return _QUERY.sub("?<query dropped>", text)


class RedactQueries(logging.Filter):
    """Drops query strings from every record a handler emits, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


class ProxyServer(Protocol):
    """What a handler uses of its server (tokensvc/integrations/proxy.py), which imports
    this module: declared here, so that the two do not import each other."""

    service: s.Service
    sessions: s.Sessions
    invalid_tokens: RateLimiter
    console_type: str | None
    allowed_origins: set[str]
    allowed_networks: tuple[IPNetwork, ...]
    web_root: str | None
    draining: bool


class ConsoleProxyHandler(ProxyRequestHandler):  # type: ignore[misc]
    """One client connection: static files, or a websocket relayed under a lease."""

    server: ProxyServer
    request: Any  # an Admitted, then its socket, then websockify's websocket
    rfile: Any
    timeout = 10  # seconds for the HTTP part (handshake, static files)

    def setup(self) -> None:
        admitted: Admitted = self.request
        self.request = admitted.sock
        if self.server.web_root is not None:
            self.directory = self.server.web_root
        super().setup()
        # The gate read the request line and headers; the websocket then reads the socket.
        self.rfile.close()
        self.rfile = io.BytesIO(admitted.head)

    def end_headers(self) -> None:
        # One request per connection (only the gate reads requests): say so, but not in
        # the 101 answer, and not twice (send_error says it already).
        sent = b"".join(getattr(self, "_headers_buffer", []))
        if not sent.startswith(b"HTTP/1.1 101") and b"\nconnection:" not in sent.lower():
            self.send_header("Connection", "close")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        self.logger.info("%s - %s", self.client_address[0], redact(format % args))

    def handle_upgrade(self) -> None:
        # Skip websockify's validate_connection(): the checks run after the handshake.
        WebSocketRequestHandlerMixIn.handle_upgrade(self)

    def handle_websocket(self) -> None:
        self.connection.settimeout(SEND_TIMEOUT)
        # What websockify's send_frames()/recv_frames() expect.
        self.send_parts: list[bytes] = []
        self.recv_part, self.start_time = None, int(time.time() * 1000)
        session: s.Session | None = None
        try:
            session, console = self._admit()
            with self._dial(console) as target:
                self._relay(session, target)
        except self.CClose as exc:
            self._close(int(exc.args[0]), str(exc.args[1]))
        except OSError as exc:
            log.info("%s: connection lost (%s)", self.client_address[0], type(exc).__name__)
        finally:
            if session is not None:
                self._release(session)

    # -- admission: origin, token, lease -----------------------------------------------
    def _admit(self) -> tuple[s.Session, ConsoleConnection]:
        if self.server.draining:
            raise self.CClose(s.GOING_AWAY, "proxy shutting down")
        self._check_origin()
        service, peer = self.server.service, str(self.client_address[0])
        try:
            self.server.invalid_tokens.check(peer, token=True)
        except TooManyRequests as exc:
            log.info("%s: too many invalid tokens, turned away", peer)
            reason = f"too many invalid tokens, retry in {exc.retry_after} s"
            raise self.CClose(s.TOO_MANY_INVALID, reason) from None
        token = self._token()
        try:
            service.ensure_reset()
            with service.client() as client, self.server.sessions.admission():
                client.validate(token, self.server.console_type)
                asked = time.monotonic()
                console, lease = client.connect(token, service.proxy_id, client=peer)
                ttl = (lease.expires - lease.since).total_seconds()
                session = s.Session(lease.id, ttl if ttl > 0 else 30.0, peer, renewed_at=asked)
                self.server.sessions.add(session)
        except TokensvcError as exc:
            raise self.CClose(*self._refusal(exc)) from None
        log.info("%s: session on %s:%s, lease %s", peer, console.host, console.port, lease.id)
        return session, console

    def _check_origin(self) -> None:
        allowed = self.server.allowed_origins
        origin = (self.headers.get("Origin") or "").strip().lower().rstrip("/")
        if allowed and origin not in allowed:
            log.info("%s: origin %r refused", self.client_address[0], origin)
            raise self.CClose(s.ORIGIN_REFUSED, "origin not allowed")

    def _token(self) -> str:
        values = parse_qs(urlsplit(self.path).query).get("token")
        if not values or not values[0]:
            raise self.CClose(s.INVALID_TOKEN, "no token given")
        if not is_well_formed(values[0]):  # too long, say: no need to ask the service
            log.info("%s: invalid token refused", self.client_address[0])
            self.server.invalid_tokens.failed(str(self.client_address[0]), TOKEN)
            raise self.CClose(s.INVALID_TOKEN, "invalid token")
        return values[0]

    def _refusal(self, exc: TokensvcError) -> tuple[int, str]:
        """The close code and reason for a user the service did not let in."""
        peer = self.client_address[0]
        if isinstance(exc, InvalidToken):
            log.info("%s: invalid token refused", peer)
            self.server.invalid_tokens.failed(str(peer), TOKEN)
            return s.INVALID_TOKEN, "invalid token"
        if isinstance(exc, AlreadyConnected):
            log.info("%s: console busy", peer)
            return s.CONSOLE_BUSY, "console busy: another user is connected to it"
        log.warning("%s: refused, tokensvc failed: %s", peer, exc.detail)
        if isinstance(exc, BackendUnavailable | TooManyRequests) or exc.status >= 500:
            return s.TRY_AGAIN_LATER, "console service unavailable, try again later"
        return s.INTERNAL_ERROR, "proxy error"

    def _dial(self, console: ConsoleConnection) -> socket.socket:
        where = f"{console.host!r}:{console.port}"  # repr: the host may hold anything
        try:
            target = dial(console.host, console.port, self.server.allowed_networks, DIAL_TIMEOUT)
        except ConsoleRefused as exc:
            log.warning("console %s refused: %s (--allow-console-network)", where, exc)
            raise self.CClose(s.INTERNAL_ERROR, "console address not allowed") from None
        except ConsoleUnreachable as exc:
            log.warning("cannot reach console %s: %s", where, exc)
            raise self.CClose(s.INTERNAL_ERROR, "cannot reach the console") from None
        target.settimeout(SEND_TIMEOUT)
        target.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return target

    # -- relay ---------------------------------------------------------------------------
    def _relay(self, session: s.Session, target: socket.socket) -> None:
        """Bytes both ways until the user leaves (returns) or anything else ends it (CClose).

        Writes block for at most SEND_TIMEOUT: a peer that stops reading is dropped.
        """
        while session.close_code is None:
            readable = select.select([self.request, target], [], [], POLL)[0]
            if self.request in readable:
                frames, closed = self.recv_frames()
                target.sendall(b"".join(frames))
                if closed:
                    return
            if target in readable:
                data = target.recv(BUFFER)
                if not data:
                    raise self.CClose(1000, "console closed")
                self.send_frames([data])
        raise self.CClose(session.close_code, session.close_reason)

    def _close(self, code: int, reason: str) -> None:
        """Send the close frame, then wait (bounded) for the user's answer."""
        deadline = time.monotonic() + CLOSE_WAIT
        with contextlib.suppress(OSError):
            self.send_close(code, reason)
            while self.request.socket is not None and time.monotonic() < deadline:
                if select.select([self.request], [], [], POLL)[0] and self.recv_frames()[1]:
                    break

    def _release(self, session: s.Session) -> None:
        log.info("%s: session of lease %s ended", session.client, session.lease_id)
        if not self.server.service.release(session.lease_id):
            self.server.sessions.add_orphan(session.lease_id)  # the heartbeat retries
        self.server.sessions.remove(session)

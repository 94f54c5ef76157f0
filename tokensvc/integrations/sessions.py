"""What `tokensvc proxy` keeps about its users: live sessions, their leases, the heartbeat.

Every session holds a lease on its console port. One heartbeat thread renews all the
proxy's leases at once every ``lease_ttl / 3`` seconds and marks the sessions the
service names in its answer for closing; each session's relay loop sees the mark
within a fraction of a second, sends the close code, then disconnects its lease.
A close-feed thread long-polls the service meanwhile, so a revocation marks its
session at once rather than at the next heartbeat (which stays the safety net).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from tokensvc.client import Client
from tokensvc.errors import TokensvcError
from tokensvc.integrations.options import ProxyOptions

log = logging.getLogger("tokensvc.proxy")

# Close codes the proxy sends (docs/connection-tracking.md).
INVALID_TOKEN, ORIGIN_REFUSED, CONSOLE_BUSY, TOO_MANY_INVALID = 4001, 4003, 4009, 4029
SESSION_REVOKED, SESSION_EXPIRED = 4010, 4011
TRY_AGAIN_LATER, GOING_AWAY, INTERNAL_ERROR = 1013, 1001, 1011

IDLE_INTERVAL = 1.0  # seconds between heartbeat checks while no session runs
FEED_WAIT = 20.0  # seconds one close-feed call may wait (the service caps it)
FEED_IDLE = 0.2  # seconds between checks for a first session while none runs
FEED_BUSY_PAUSE = 1.0  # the service had no waiter free: ask again after this
FEED_BACKOFF = (1.0, 2.0, 5.0, 10.0)  # pauses after failed close-feed calls


@dataclasses.dataclass
class Session:
    """One user on one console; ``close_code`` set means: end it now."""

    lease_id: str
    lease_ttl: float
    client: str
    renewed_at: float = dataclasses.field(default_factory=time.monotonic)
    close_code: int | None = None
    close_reason: str = ""

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_reason, self.close_code = reason, code


def close_code_for(reason: str) -> tuple[int, str]:
    """The close code and reason of a lease the service wants closed."""
    if reason == "expired":
        return SESSION_EXPIRED, "session expired"
    return SESSION_REVOKED, f"session revoked ({reason})"


class Service:
    """tokensvc as the proxy sees it: a new client per use, so threads never share one."""

    def __init__(self, options: ProxyOptions) -> None:
        self.url = options.service_url
        self.proxy_id = options.proxy_id
        self._key = _read_key(options.key_file)
        self._ca_file = str(options.ca_file) if options.ca_file else None
        self._reset_done = False
        self._reset_lock = threading.Lock()

    def client(self, timeout: float = 5.0) -> Client:
        client = Client(self.url, self._key, timeout=timeout)
        if self._ca_file is not None:
            client.session.close()
            client.session = _VerifyWith(self._ca_file)  # the client owns and closes it
        return client

    def ensure_reset(self) -> None:
        """Drop the leases of this proxy id's previous life, once (raises if unreachable)."""
        with self._reset_lock:
            if not self._reset_done:
                with self.client() as client:
                    client.reset_proxy(self.proxy_id)
                self._reset_done = True
                log.info("dropped the leases of proxy %s's previous run", self.proxy_id)

    def release(self, lease_id: str) -> bool:
        """Disconnect a lease; False (logged) when the service could not be told."""
        try:
            with self.client() as client:
                client.disconnect(lease_id)
        except TokensvcError as exc:
            log.warning("could not release lease %s: %s", lease_id, exc.detail)
            return False
        return True


class _VerifyWith(requests.Session):
    """Verifies TLS with one CA file, which REQUESTS_CA_BUNDLE cannot override.

    (A plain session's ``verify`` loses to that variable whenever a request does not
    pass ``verify`` itself, and the client does not.)
    """

    def __init__(self, ca_file: str) -> None:
        super().__init__()
        self.verify = ca_file

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        # The environment only overrides a verify of True or None: pass ours instead.
        return super().merge_environment_settings(url, proxies, stream, self.verify, cert)


def _read_key(path: Path) -> str:
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ValueError(f"the key file {path} is empty")
    return key


class Sessions:
    """The live sessions by lease id, and the leases still to disconnect."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, Session] = {}
        self._admitting = 0
        self._orphans: set[str] = set()  # leases whose disconnect failed: retried each beat

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """Around connect + add: a lease taken but not yet added is never thought orphaned."""
        with self._lock:
            self._admitting += 1
        try:
            yield
        finally:
            with self._lock:
                self._admitting -= 1

    def add(self, session: Session) -> None:
        with self._lock:
            self._live[session.lease_id] = session

    def remove(self, session: Session) -> None:
        with self._lock:
            self._live.pop(session.lease_id, None)

    def get(self, lease_id: str) -> Session | None:
        with self._lock:
            return self._live.get(lease_id)

    def is_orphan(self, lease_id: str) -> bool:
        with self._lock:
            return self._admitting == 0 and lease_id not in self._live

    def add_orphan(self, lease_id: str) -> None:
        with self._lock:
            self._orphans.add(lease_id)

    def take_orphans(self) -> set[str]:
        with self._lock:
            orphans, self._orphans = self._orphans, set()
            return orphans

    def idle(self) -> bool:
        with self._lock:
            return not self._live and not self._orphans

    def snapshot(self) -> list[Session]:
        with self._lock:
            return list(self._live.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def close_all(self, code: int, reason: str) -> None:
        for session in self.snapshot():
            session.close(code, reason)

    def interval(self) -> float:
        ttls = [session.lease_ttl for session in self.snapshot()]
        return min(ttls) / 3 if ttls else IDLE_INTERVAL


class Heartbeat(threading.Thread):
    """Renews every lease of the proxy each ``lease_ttl / 3`` and closes what it is told to."""

    def __init__(self, service: Service, sessions: Sessions) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.service = service
        self.sessions = sessions
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)

    def run(self) -> None:
        while not self._stopping.wait(self.sessions.interval()):
            if not self.sessions.idle():
                self.beat()

    def beat(self) -> None:
        started, sessions = time.monotonic(), self.sessions.snapshot()
        try:
            # A slow answer must not outlast the interval: lapses are checked after it.
            with self.service.client(timeout=min(5.0, self.sessions.interval())) as client:
                answer = client.heartbeat(self.service.proxy_id)
        except TokensvcError as exc:
            log.warning("heartbeat failed: %s", exc.detail)
            self._close_lapsed(sessions)
            return
        for session in sessions:
            session.renewed_at = started
        self._close_named(answer)
        for lease_id in self.sessions.take_orphans():
            if not self.service.release(lease_id):
                self.sessions.add_orphan(lease_id)

    def _close_named(self, answer: dict[str, Any]) -> None:
        close_named(self.sessions, answer)

    def _close_lapsed(self, sessions: list[Session]) -> None:
        """Never relay without a lease: close what would lapse before the next heartbeat.

        The service keeps whole seconds, so a lease may end up to a second before
        ``renewed_at + lease_ttl`` (``renewed_at`` is when the renewing call began).
        """
        now, interval = time.monotonic(), self.sessions.interval()
        for session in sessions:
            if now + interval >= session.renewed_at + session.lease_ttl - 1:
                log.warning("lease %s is lapsing, tokensvc unreachable: closing", session.lease_id)
                session.close(TRY_AGAIN_LATER, "lease lapsed: console service unreachable")


def close_named(sessions: Sessions, answer: dict[str, Any]) -> None:
    """Mark the sessions an answer (heartbeat or close feed) names for closing."""
    for item in answer.get("close", []):
        lease_id, reason = str(item["lease_id"]), str(item["reason"])
        session = sessions.get(lease_id)
        if session is not None:
            if session.close_code is None:
                log.info("closing session of lease %s: %s", lease_id, reason)
            session.close(*close_code_for(reason))
        elif sessions.is_orphan(lease_id):
            sessions.add_orphan(lease_id)


class CloseFeed(threading.Thread):
    """Long-polls the service's close feed while sessions run; marks what it names.

    Each answer carries a cursor naming the closes it listed; the next call passes it,
    so the service waits until something changes rather than repeating itself.
    """

    def __init__(self, service: Service, sessions: Sessions) -> None:
        super().__init__(name="close-feed", daemon=True)
        self.service = service
        self.sessions = sessions
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Stop asking (a call in flight is abandoned: the thread is a daemon)."""
        self._stopping.set()
        self.join(1.0)

    def run(self) -> None:
        cursor: str | None = None
        failures = 0
        while not self._stopping.is_set():
            if not len(self.sessions):
                self._stopping.wait(FEED_IDLE)
                continue
            try:
                answer = self._ask(cursor)
            except TokensvcError as exc:
                pause = FEED_BACKOFF[min(failures, len(FEED_BACKOFF) - 1)]
                failures += 1
                log.warning("close feed failed (%s): again in %g s", exc.detail, pause)
                cursor = None  # after an outage, take the whole current list first
                self._stopping.wait(pause)
                continue
            failures = 0
            if not self._stopping.is_set():
                close_named(self.sessions, answer)
            cursor = str(answer.get("cursor") or "") or None
            if answer.get("busy"):
                self._stopping.wait(FEED_BUSY_PAUSE)

    def _ask(self, cursor: str | None) -> dict[str, Any]:
        with self.service.client(timeout=FEED_WAIT + 5.0) as client:
            return client.close_feed(self.service.proxy_id, cursor, FEED_WAIT)

"""The close feed: a proxy learns that a session must end as soon as it is decided.

A proxy long-polls ``GET /v1/proxies/<id>/closes``. The call answers as soon as the
set of that proxy's live leases with a close reason differs from the one its cursor
names, or empty when the wait is over. Whoever sets a close reason publishes the
proxy id on Redis after the commit; one subscriber thread per API process wakes the
waiters of that id, which then read the database. Without Redis (or while the
subscriber is not listening) the waiters poll the database a few times a second.
The heartbeat still names every close: the feed only makes it fast.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Collection, Iterator

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tokensvc.stores import keys
from tokensvc.stores.breaker import CircuitBreaker
from tokensvc.stores.leases import LeaseStore

log = logging.getLogger("tokensvc.closefeed")

POLL_INTERVAL = 0.25  # seconds between database checks of a waiter nobody can wake
RECHECK_INTERVAL = 2.0  # a woken waiter still checks this often: a publish may have failed
RECONNECT_PAUSES = (0.2, 0.5, 1.0, 2.0, 5.0)  # the subscriber's pauses after failures
LISTEN_TIMEOUT = 1.0  # the subscriber looks at its stop flag this often
HEALTH_CHECK_INTERVAL = 10  # seconds: a silently dead subscription is noticed (PING)

Closes = list[tuple[str, str]]  # (lease id, reason)


# What cursor_of() spells (base64url), as the route checks it and /openapi.json says.
CURSOR_PATTERN = "^[A-Za-z0-9_-]{1,64}$"


def cursor_of(closes: Closes) -> str:
    """Names a set of closes: equal cursors, same leases closing for the same reasons."""
    text = "\n".join(sorted(f"{lease_id} {reason}" for lease_id, reason in closes))
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class ClosePublisher:
    """Tells every API process whose leases got a close reason; never raises."""

    def __init__(self, client: redis.Redis, breaker: CircuitBreaker | None = None) -> None:
        self.client = client
        self.breaker = breaker  # the cache's: while it is open, Redis is known to be down

    def __call__(self, proxy_ids: Collection[str]) -> None:
        if self.breaker is not None and self.breaker.is_open:
            return  # no timeout to wait out: the waiters' own database checks deliver it
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for proxy_id in proxy_ids:
                    pipe.publish(keys.close_channel(proxy_id), b"1")
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            # The revoke stands: the waiters' recheck or the next heartbeat delivers it.
            log.warning("could not publish a close (%s): delivered by polling", type(exc).__name__)


class CloseSubscriber:
    """One PSUBSCRIBE per process over every proxy's channel, fanned out to the waiters.

    Started by the first waiter; reconnects after failures. While it is not listening,
    ``listening`` is clear and the waiters poll; when it (re)starts listening it wakes
    every waiter, since a close may have been published while nobody listened.
    """

    def __init__(self, url: str, *, connect_timeout: float) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.listening = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, proxy_id: str) -> Iterator[threading.Event]:
        """An event set whenever a close of ``proxy_id`` may have happened."""
        channel, event = keys.close_channel(proxy_id), threading.Event()
        with self._lock:
            self._start()
            self._waiters.setdefault(channel, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                waiting = self._waiters.get(channel, set())
                waiting.discard(event)
                if not waiting:
                    self._waiters.pop(channel, None)

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(LISTEN_TIMEOUT * 3)

    def _start(self) -> None:
        if self._stopping.is_set() or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(target=self._run, name="close-subscriber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._listen()
                failures = 0
            except (redis.RedisError, OSError) as exc:
                pause = RECONNECT_PAUSES[min(failures, len(RECONNECT_PAUSES) - 1)]
                failures += 1
                log.warning("close subscriber: %s, again in %g s", type(exc).__name__, pause)
                self._stopping.wait(pause)

    def _listen(self) -> None:
        client = redis.Redis.from_url(
            self.url,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=LISTEN_TIMEOUT * 5,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=HEALTH_CHECK_INTERVAL,
        )
        pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.psubscribe(keys.close_channel_pattern())
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=LISTEN_TIMEOUT)
                if message is None:
                    continue
                if message["type"] == "psubscribe":
                    self.listening.set()
                    self._wake(None)
                elif message["type"] == "pmessage":
                    self._wake(message["channel"].decode())
        finally:
            self.listening.clear()
            pubsub.close()
            client.close()

    def _wake(self, channel: str | None) -> None:
        """Wake the waiters of one channel, or (None) all of them."""
        with self._lock:
            if channel is None:
                events = [e for waiting in self._waiters.values() for e in waiting]
            else:
                events = list(self._waiters.get(channel, ()))
        for event in events:
            event.set()


@dataclasses.dataclass(frozen=True)
class FeedAnswer:
    close: Closes
    cursor: str
    # Too many waiters in this process: answered without waiting, ask again after a pause.
    busy: bool = False


class CloseFeed:
    """The waiting side of the feed; at most ``max_waiters`` request threads wait at once.

    A waiting call holds a request thread, and validate needs them: above the cap a call
    is answered at once (``busy``), so proxies can never take every thread.
    """

    def __init__(
        self,
        leases: LeaseStore,
        *,
        max_wait: float,
        max_waiters: int,
        enforce_expiry: bool,
        subscriber: CloseSubscriber | None,
    ) -> None:
        self.leases = leases
        self.max_wait = max_wait
        self.max_waiters = max_waiters
        self.enforce_expiry = enforce_expiry
        self.subscriber = subscriber
        self._slots = threading.BoundedSemaphore(max_waiters) if max_waiters > 0 else None
        self._stopping = threading.Event()

    def wait(self, proxy_id: str, cursor: str | None, wait: float) -> FeedAnswer:
        """The proxy's closes once they differ from ``cursor``, or after ``wait`` seconds."""
        deadline = time.monotonic() + min(max(wait, 0.0), self.max_wait)
        if cursor is None or deadline <= time.monotonic():
            return self._check(proxy_id)
        if self._slots is None or not self._slots.acquire(blocking=False):
            return dataclasses.replace(self._check(proxy_id), busy=True)
        try:
            return self._wait(proxy_id, cursor, deadline)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Answer every waiter now and stop the subscriber."""
        self._stopping.set()
        if self.subscriber is not None:
            self.subscriber._wake(None)
            self.subscriber.close()

    def _check(self, proxy_id: str) -> FeedAnswer:
        closes = self.leases.closing(proxy_id, enforce_expiry=self.enforce_expiry)
        return FeedAnswer(closes, cursor_of(closes))

    def _wait(self, proxy_id: str, cursor: str, deadline: float) -> FeedAnswer:
        with self._woken_by(proxy_id) as event:
            while True:
                # Cleared before reading: a close committed after the read sets it again.
                event.clear()
                answer = self._check(proxy_id)
                remaining = deadline - time.monotonic()
                if answer.cursor != cursor or remaining <= 0 or self._stopping.is_set():
                    return answer
                event.wait(min(remaining, self._pause()))

    @contextlib.contextmanager
    def _woken_by(self, proxy_id: str) -> Iterator[threading.Event]:
        if self.subscriber is None:
            yield threading.Event()  # nobody sets it: the waiter polls
            return
        with self.subscriber.watch(proxy_id) as event:
            yield event

    def _pause(self) -> float:
        listening = self.subscriber is not None and self.subscriber.listening.is_set()
        return RECHECK_INTERVAL if listening else POLL_INTERVAL

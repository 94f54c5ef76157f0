"""Failed attempts per client address: failed key checks and invalid tokens (README.md,
"Failed attempts").

Two counters per client address over fixed windows of ``RATE_LIMIT_WINDOW`` seconds:
failed key checks (every 401) and invalid-token answers of validate and connect. Over
its limit, an address's requests that the counter covers are refused with 429 before
any lookup of their key or token, until the window ends.

The client address is WSGI's ``REMOTE_ADDR``: behind a reverse proxy every client is
the proxy's address, and ``X-Forwarded-For`` is not trusted (anyone can send it).
IPv6 clients count per /64, the block one host usually gets.

Where the count lives: with a cache Redis, in Redis (shared by every process), else in
this process. Either way each process keeps a local view of the addresses that failed
lately, which is all the hot path reads: a success from an address that never failed is
one dict lookup, no Redis. Redis is touched only to count a failure (INCR and EXPIRE in
one round trip); its answer becomes the local view. A process that has not yet seen a
failure from an address learns the shared count at that address's next failure there,
so with N processes an address gets at most N - 1 failures past the limit per window,
for no Redis read on any success. A Redis failure (or the cache's open breaker) falls back
to the local count: never a 5xx.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis
from werkzeug.wrappers import Response

from tokensvc.errors import TooManyRequests, Unauthorized
from tokensvc.stores import keys

if TYPE_CHECKING:
    from tokensvc.auth import KeyAuthenticator
    from tokensvc.db.service_keys import ServiceKey
    from tokensvc.stores.breaker import CircuitBreaker

# The counters, as indexes into an address's local entry [window, auth, token].
AUTH = 1
TOKEN = 2
_NAMES = {AUTH: "auth", TOKEN: "token"}
_WHAT = {AUTH: "failed key checks", TOKEN: "invalid tokens"}
# The routes whose invalid-token answers count (and are refused over the limit).
TOKEN_ROUTES = frozenset({"/v1/tokens/validate", "/v1/tokens/connect"})
# Addresses with failures remembered per process: a flood from many addresses drops the
# oldest windows first, and memory stays bounded (about 150 bytes an address).
MAX_ADDRESSES = 65536


class RateLimiter:
    def __init__(
        self,
        *,
        window: int,
        failed_auth_limit: int,
        invalid_token_limit: int,
        client: redis.Redis | None = None,
        breaker: CircuitBreaker | None = None,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.time,  # wall clock: processes agree on windows
    ) -> None:
        self.window = window
        self.limits = {AUTH: failed_auth_limit, TOKEN: invalid_token_limit}
        self.client = client
        self.breaker = breaker
        self.max_addresses = max_addresses
        self._clock = clock
        self._seen: OrderedDict[str, list[int]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, address: str, *, token: bool = False) -> None:
        """429 if ``address`` is over the key-check limit (or, with ``token``, the
        invalid-token limit) in this window."""
        seen = self._seen.get(client_of(address))
        if seen is None:  # the common case: no failure from this address lately
            return
        for counter in (AUTH, TOKEN) if token else (AUTH,):
            limit = self.limits[counter]
            if limit and seen[counter] >= limit:
                now = self._clock()
                if seen[0] == self._window_of(now):
                    retry_after = math.ceil((seen[0] + 1) * self.window - now)
                    raise TooManyRequests(
                        f"too many {_WHAT[counter]} from this address; retry later",
                        retry_after=max(1, retry_after),
                    )

    def failed(self, address: str, counter: int) -> None:
        """Count one failure (``AUTH`` or ``TOKEN``) of ``address``."""
        if not self.limits[counter]:
            return
        address = client_of(address)
        window = self._window_of(self._clock())
        shared = self._count_shared(address, counter, window)
        with self._lock:
            seen = self._seen.get(address)
            if seen is None or seen[0] != window:
                seen = self._seen[address] = [window, 0, 0]
            self._seen.move_to_end(address)
            seen[counter] = max(seen[counter] + 1, shared)
            while len(self._seen) > self.max_addresses:
                self._seen.popitem(last=False)

    def authenticate(
        self,
        authenticator: KeyAuthenticator,
        presented: Callable[[], str],
        address: str,
        *,
        token: bool = False,
    ) -> ServiceKey:
        """The caller's key (``presented`` reads it from the request), every 401 counted;
        429 first if the address is over its limits."""
        self.check(address, token=token)
        try:
            return authenticator.authenticate(presented())
        except Unauthorized:
            self.failed(address, AUTH)
            raise

    def count_invalid_tokens(self, address: str) -> Callable[[Response], Response]:
        """An after-request function for validate and connect: counts their 404s, which on
        these routes (a body, no path parameters) are only ever invalid-token answers."""

        def count(response: Response) -> Response:
            if response.status_code == 404:
                self.failed(address, TOKEN)
            return response

        return count

    def _window_of(self, now: float) -> int:
        return int(now // self.window)

    def _count_shared(self, address: str, counter: int, window: int) -> int:
        """The address's count in Redis after this failure, 0 without (or failing) Redis."""
        if self.client is None or (self.breaker is not None and not self.breaker.available()):
            return 0
        name = keys.failed_attempts_key(_NAMES[counter], window, address)
        try:
            pipeline = self.client.pipeline(transaction=False)
            pipeline.incr(name)
            pipeline.expire(name, self.window + 1)
            count, _ = pipeline.execute()
        except redis.RedisError:
            if self.breaker is not None:
                self.breaker.trip()  # the cache is skipped too, as after any Redis failure
            return 0
        return int(count)


@functools.lru_cache(maxsize=4096)
def _ipv6_client(address: str) -> str:
    try:
        ip = ipaddress.IPv6Address(address.partition("%")[0])  # (no zone id)
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


def client_of(address: str) -> str:
    """Whom an address counts as: itself, or for IPv6 its /64."""
    return _ipv6_client(address) if ":" in address else address

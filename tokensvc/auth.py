"""Service keys: generation, hashing, the cached key check, and role checks.

Key checks are cached in-process for ``KEY_CACHE_TTL`` seconds (bounded, so
a revocation takes effect within that bound). While the database is
unreachable, the last known answer serves for up to ``KEY_CACHE_STALE``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from tokensvc.db.service_keys import ServiceKeyStore
from tokensvc.errors import BackendUnavailable, Forbidden, Unauthorized
from tokensvc.objects.console import utcnow
from tokensvc.service_key import ServiceKey

KEY_PREFIX = "tsk_"
_KEY_SHAPE = re.compile(r"tsk_[A-Za-z0-9_-]{43}")


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def bearer_key(authorization: str | None) -> str:
    """The key of an ``Authorization: Bearer`` header, shape-checked before any I/O."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not _KEY_SHAPE.fullmatch(key.strip()):
        raise Unauthorized("a service key is required: Authorization: Bearer <key>")
    return key.strip()


class KeyAuthenticator:
    def __init__(
        self,
        keys: ServiceKeyStore,
        *,
        ttl: float,
        stale: float,
        retry_after: float = 2.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.ttl = ttl
        self.stale = stale
        # After a failed lookup, the database is left alone this long (like the cache's breaker).
        self.retry_after = retry_after
        self._database_down_until = 0.0
        self.max_entries = max_entries
        self._clock = clock
        # Found keys and unknown ones are cached apart, each bounded on its own: a flood
        # of random keys churns only the unknown ones, so it never pushes a real key out
        # (whose stale answer is what serves while the database is down).
        self._found: OrderedDict[str, tuple[ServiceKey | None, float]] = OrderedDict()
        self._unknown: OrderedDict[str, tuple[ServiceKey | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, key: str) -> ServiceKey:
        found = self._lookup(hash_key(key))
        if found is None or not found.usable(utcnow()):
            raise Unauthorized("unknown, expired or revoked service key")
        return found

    def _lookup(self, key_hash: str) -> ServiceKey | None:
        now = self._clock()
        with self._lock:
            cached = self._found.get(key_hash) or self._unknown.get(key_hash)
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        if now < self._database_down_until:  # do not pay a timeout per request
            return self._stale(cached, now)
        try:
            found = self.keys.find(key_hash)
        except SQLAlchemyError:
            self._database_down_until = self._clock() + self.retry_after
            return self._stale(cached, now)
        self._remember(key_hash, found, now)
        return found

    def _remember(self, key_hash: str, found: ServiceKey | None, now: float) -> None:
        cache, other = (
            (self._unknown, self._found) if found is None else (self._found, self._unknown)
        )
        with self._lock:
            other.pop(key_hash, None)  # (a key deleted, or created, since)
            cache[key_hash] = (found, now)
            cache.move_to_end(key_hash)
            while len(cache) > self.max_entries:
                cache.popitem(last=False)

    def _stale(
        self, cached: tuple[ServiceKey | None, float] | None, now: float
    ) -> ServiceKey | None:
        """The last known answer while the database is unreachable, if recent enough."""
        if cached is not None and now - cached[1] < self.stale:
            return cached[0]
        raise BackendUnavailable("database unavailable to check the service key")


def require_role(key: ServiceKey, roles: tuple[str, ...]) -> None:
    if key.role not in roles:
        raise Forbidden(f"this route needs the {' or '.join(roles)} role, not {key.role}")


def require_host(key: ServiceKey, compute_host: str) -> None:
    """Compute keys act only on instances of their own compute host."""
    if key.role == "compute" and key.host != compute_host:
        raise Forbidden("this compute key may not act on instances of another compute host")


def require_proxy(key: ServiceKey, proxy_id: str) -> None:
    """A proxy key bound to one proxy id acts only as that proxy."""
    if key.role == "proxy" and key.proxy_id is not None and key.proxy_id != proxy_id:
        raise Forbidden("this proxy key is bound to another proxy id")

"""Redis cache-aside in front of the database store (docs/storage-and-cache.md).

Writes commit to the database first, then touch Redis; a Redis failure never
fails a write the database accepted. Revocations leave tombstones and clear
their outbox rows only once Redis has taken them. Validate on a hit is one
plain GET; on a miss, one indexed SQL lookup, then a guarded fill.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import redis

from tokensvc.objects.console import Authorize, ConsoleConnection
from tokensvc.objects.instance import Instance
from tokensvc.stores.base import (
    BACKEND_CAPABILITIES,
    InstanceWrite,
    PurgeResult,
    ValidConsole,
)
from tokensvc.stores.breaker import CircuitBreaker
from tokensvc.stores.cache import RedisCache
from tokensvc.stores.database import DatabaseStore
from tokensvc.stores.entries import decode_entry, encode_entry
from tokensvc.stores.rows import valid_console

log = logging.getLogger(__name__)


class CacheEvents(Protocol):
    """What the cache tells its observer (the app's metrics)."""

    def lookup(self, result: str) -> None:
        """``hit``, ``miss`` (then filled from the database) or ``database`` (breaker open)."""

    def cache_error(self) -> None: ...


class CachedStore:
    """:class:`~tokensvc.stores.base.ConsoleRecords`: Redis in front of a DatabaseStore."""

    capabilities = BACKEND_CAPABILITIES["database"]

    def __init__(
        self,
        database: DatabaseStore,
        cache: RedisCache,
        *,
        max_ttl: int,
        breaker_reset: float,
        events: CacheEvents,
    ) -> None:
        self.database = database
        self.cache = cache
        self.max_ttl_ms = max_ttl * 1000
        self.breaker = CircuitBreaker(breaker_reset, self._recover)
        self.events = events
        # Test seam: runs between a miss's database read and its fill.
        self.before_fill: Callable[[], None] = lambda: None

    # -- the hot path -------------------------------------------------------------------
    def lookup(self, token_hash: str) -> ValidConsole | None:
        if self.breaker.available():
            try:
                value = self.cache.get(token_hash)
            except redis.RedisError:
                self._cache_failed()
            else:
                if value is not None:
                    self.events.lookup("hit")
                    return decode_entry(value)
                self.events.lookup("miss")
                return self._fill_from_database(token_hash)
        self.events.lookup("database")
        return self.database.lookup(token_hash)

    def _fill_from_database(self, token_hash: str) -> ValidConsole | None:
        read_started = time.monotonic()
        found = self.database.get_by_token_hash(token_hash)
        live = None if found is None or found.is_expired() else found
        self.before_fill()
        if live is None:
            self._guarded(lambda: self.cache.set_negative(token_hash))
            return None
        self._guarded(lambda: self._write(live, read_started))
        return valid_console(live)

    def _write(self, connection: ConsoleConnection, read_started: float) -> None:
        """Fill or warm; the script refuses to overwrite a tombstone or to write a stale read
        (``read_started``: time.monotonic() before the database read or write began)."""
        assert connection.token_hash is not None
        ttl_ms = self._ttl_ms(connection.expires)
        if ttl_ms <= 0:
            return
        entry = encode_entry(valid_console(connection))
        age_ms = int((time.monotonic() - read_started) * 1000)
        self.cache.fill(connection.token_hash, entry, ttl_ms, age_ms)

    def _ttl_ms(self, expires: dt.datetime | None) -> int:
        if expires is None:
            return self.max_ttl_ms
        # The precise clock: utcnow() drops microseconds and would outlive the expiry.
        left = int((expires - dt.datetime.now(dt.UTC)).total_seconds() * 1000)
        return min(left, self.max_ttl_ms)

    # -- cache maintenance ----------------------------------------------------------------
    def _guarded(self, operation: Callable[[], object]) -> bool:
        if not self.breaker.available():
            return False
        try:
            operation()
        except redis.RedisError:
            self._cache_failed()
            return False
        return True

    def _cache_failed(self) -> None:
        log.warning("cache unavailable; using the database for %.1fs", self.breaker.reset_after)
        self.breaker.trip()
        self.events.cache_error()

    def is_cache_reachable(self) -> bool:
        """Whether Redis answers a ping now (the readiness check; the breaker aside)."""
        try:
            self.cache.ping()
        except redis.RedisError:
            return False
        return True

    def import_console(self, connection: ConsoleConnection) -> bool:
        """The database store's import, then the console cached (as after a write)."""
        started = time.monotonic()
        if not self.database.import_console(connection):
            return False
        self.warm(connection, started)
        return True

    def warm(self, connection: ConsoleConnection, write_started: float) -> None:
        """Cache a console just written to the database (over a negative entry, never
        over a tombstone); ``write_started``: time.monotonic() before the write began."""
        self._guarded(lambda: self._write(connection, write_started))

    def _invalidate(self, token_hashes: Sequence[str]) -> None:
        """Tombstone, then clear the outbox rows; what Redis refused stays for the retry job."""
        if token_hashes and self._guarded(lambda: self.cache.tombstone(token_hashes)):
            self.database.clear_invalidations(token_hashes)

    def _recover(self) -> None:
        """The half-open probe: apply every pending invalidation before trusting the cache."""
        self.cache.ping()
        self.flush_outbox()

    def flush_outbox(self) -> int:
        """Tombstone every pending outbox row, then clear it (raises while Redis refuses)."""
        flushed = 0
        while pending := self.database.pending_invalidations():
            self.cache.tombstone(pending)
            self.database.clear_invalidations(pending)
            flushed += len(pending)
        return flushed

    # -- writes: database first, then the cache ---------------------------------------------
    def put_instance(self, instance: Instance) -> InstanceWrite:
        written = self.database.put_instance(instance)
        self._invalidate(written.revoked)
        return written

    def delete_instance(self, uuid: str) -> list[str]:
        revoked = self.database.delete_instance(uuid)
        self._invalidate(revoked)
        return revoked

    def save_console(
        self,
        connection: ConsoleConnection,
        *,
        ports: Sequence[int] = (),
        force: bool = False,
        authorize: Authorize | None = None,
    ) -> str | None:
        started = time.monotonic()
        replaced = self.database.save_console(
            connection, ports=ports, force=force, authorize=authorize
        )
        if replaced is not None:
            self._invalidate([replaced])
        self.warm(connection, started)
        return replaced

    def revoke_token(self, token_hash: str) -> bool:
        if not self.database.revoke_token(token_hash):
            return False
        self._invalidate([token_hash])
        return True

    def revoke_all(self, instance_uuid: str) -> list[str]:
        revoked = self.database.revoke_all(instance_uuid)
        self._invalidate(revoked)
        return revoked

    # -- reads that the cache does not serve -------------------------------------------------
    def get_instance(self, uuid: str) -> Instance:
        return self.database.get_instance(uuid)

    def get_by_token_hash(self, token_hash: str) -> ConsoleConnection | None:
        return self.database.get_by_token_hash(token_hash)

    def list_by_instance(self, instance_uuid: str) -> list[ConsoleConnection]:
        return self.database.list_by_instance(instance_uuid)

    def purge_expired(
        self,
        compute_host: str,
        batch_size: int,
        on_batch: Callable[[list[str]], None] = lambda hashes: None,
    ) -> PurgeResult:
        def forget(token_hashes: list[str]) -> None:
            # Their cache TTL ends at expiry anyway; this frees the memory now.
            if token_hashes:
                self._guarded(lambda: self.cache.forget(token_hashes))
            on_batch(token_hashes)

        return self.database.purge_expired(compute_host, batch_size, forget)

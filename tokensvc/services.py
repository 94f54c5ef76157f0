"""The app's long-lived parts, built once per process from the settings."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine

from tokensvc.auth import KeyAuthenticator
from tokensvc.closefeed import CloseFeed, ClosePublisher, CloseSubscriber
from tokensvc.config import Settings
from tokensvc.db import schema
from tokensvc.db.engine import READ_TIMEOUT, make_engine, make_read_engine
from tokensvc.db.service_keys import ServiceKeyStore
from tokensvc.legacy import LegacyReadStore
from tokensvc.metrics import Metrics
from tokensvc.ratelimit import RateLimiter
from tokensvc.stores.base import TokenStore
from tokensvc.stores.cache import RedisCache, make_client
from tokensvc.stores.cached import CachedStore
from tokensvc.stores.database import DatabaseStore
from tokensvc.stores.leases import LeaseStore
from tokensvc.stores.memcached import MemcachedEntries, MemcachedStore
from tokensvc.stores.memcached import make_client as make_memcached_client

# A tombstone must outlive any fill that read the database before the revoke.
TOMBSTONE_TTL = 60
# Seconds to wait for memcached (the deprecated backend, or the legacy read).
MEMCACHED_TIMEOUT = 1.0


class MetricsEvents:
    """Feeds the cache's events into the metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def lookup(self, result: str) -> None:
        self.metrics.validate.labels(result).inc()

    def cache_error(self) -> None:
        self.metrics.cache_errors.inc()


@dataclasses.dataclass
class Services:
    settings: Settings
    engine: Engine
    database: DatabaseStore
    store: TokenStore
    cached: CachedStore | None
    keys: ServiceKeyStore
    authenticator: KeyAuthenticator
    metrics: Metrics
    leases: LeaseStore
    closes: CloseFeed
    limiter: RateLimiter

    def dispose(self) -> None:
        """Close the pooled connections: both engines and the cache's Redis (and answer
        the close feed's waiters, stopping its subscriber)."""
        self.closes.close()
        self.engine.dispose()
        self.database.reader.dispose()
        if self.cached is not None:
            self.cached.cache.client.close()

    @property
    def memcached_backend(self) -> bool:
        return self.settings.console_tokens_backend == "memcached"

    @classmethod
    def build(cls, settings: Settings, *, read_timeout: int = READ_TIMEOUT) -> Services:
        engine = make_engine(settings.database_url, read_timeout=read_timeout)
        schema.ensure_schema(engine)
        metrics = Metrics()
        memcached = settings.console_tokens_backend == "memcached"
        uses_redis = settings.redis_url is not None and not memcached
        reader = make_read_engine(engine, read_timeout=read_timeout)
        database = DatabaseStore(engine, outbox=uses_redis, reader=reader)
        cached = _cached_store(settings, database, metrics) if uses_redis else None
        entries = None
        if memcached or settings.legacy_memcached_read:
            entries = MemcachedEntries(
                make_memcached_client(settings.memcached_servers, MEMCACHED_TIMEOUT)
            )
        store: TokenStore = cached or database
        if memcached:
            assert entries is not None
            store = MemcachedStore(database, entries)
        elif entries is not None:  # switching from memcached: tokens only memcached holds
            store = LegacyReadStore(
                cached or database,
                entries,
                max_token_ttl=settings.max_token_ttl,
                imported=metrics.legacy_imports.inc,
            )
        keys = ServiceKeyStore(engine)
        authenticator = KeyAuthenticator(
            keys,
            ttl=settings.key_cache_ttl,
            stale=settings.key_cache_stale,
            retry_after=settings.breaker_reset,
        )
        leases = LeaseStore(engine, lease_ttl=settings.lease_ttl)
        closes = _close_feed(settings, leases, database, cached)
        return cls(
            settings,
            engine,
            database,
            store,
            cached,
            keys,
            authenticator,
            metrics,
            leases,
            closes,
            _limiter(settings, cached),
        )


def _close_feed(
    settings: Settings, leases: LeaseStore, database: DatabaseStore, cached: CachedStore | None
) -> CloseFeed:
    """With Redis, closes are published and one subscriber wakes the waiters; else they poll."""
    subscriber = None
    if cached is not None and settings.redis_url is not None:
        publish = ClosePublisher(cached.cache.client, cached.breaker)
        leases.notify = database.notify_closes = publish
        subscriber = CloseSubscriber(settings.redis_url, connect_timeout=settings.redis_timeout)
    return CloseFeed(
        leases,
        max_wait=settings.close_feed_wait,
        # A waiter holds a request thread: at most half of them wait, validate keeps the rest.
        max_waiters=settings.threads // 2,
        enforce_expiry=settings.enforce_session_timeout,
        subscriber=subscriber,
    )


def _limiter(settings: Settings, cached: CachedStore | None) -> RateLimiter:
    """Counts failed attempts in the cache Redis (behind the cache's breaker), if any."""
    return RateLimiter(
        window=settings.rate_limit_window,
        failed_auth_limit=settings.failed_auth_limit,
        invalid_token_limit=settings.invalid_token_limit,
        client=None if cached is None else cached.cache.client,
        breaker=None if cached is None else cached.breaker,
    )


def _cached_store(settings: Settings, database: DatabaseStore, metrics: Metrics) -> CachedStore:
    assert settings.redis_url is not None
    cache = RedisCache(
        make_client(settings.redis_url, settings.redis_timeout),
        negative_ttl=settings.negative_cache_ttl,
        tombstone_ttl=TOMBSTONE_TTL,
    )
    return CachedStore(
        database,
        cache,
        max_ttl=settings.cache_max_ttl,
        breaker_reset=settings.breaker_reset,
        events=MetricsEvents(metrics),
    )

"""The app's long-lived parts, built once per process from the settings."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine

from tokensvc.auth import KeyAuthenticator
from tokensvc.config import ConfigError, Settings
from tokensvc.db import schema
from tokensvc.db.engine import make_engine
from tokensvc.db.service_keys import ServiceKeyStore
from tokensvc.metrics import Metrics
from tokensvc.stores.base import TokenStore
from tokensvc.stores.cache import RedisCache, make_client
from tokensvc.stores.cached import CachedStore
from tokensvc.stores.database import DatabaseStore
from tokensvc.stores.leases import LeaseStore

# A tombstone must outlive any fill that read the database before the revoke.
TOMBSTONE_TTL = 60


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

    @classmethod
    def build(cls, settings: Settings) -> Services:
        if settings.console_tokens_backend != "database":
            raise ConfigError(
                "TOKENSVC_CONSOLE_TOKENS_BACKEND: the memcached backend is not available yet; "
                "use database"
            )
        engine = make_engine(settings.database_url)
        schema.ensure_schema(engine)
        metrics = Metrics()
        database = DatabaseStore(engine, outbox=settings.redis_url is not None)
        cached = None
        if settings.redis_url is not None:
            cache = RedisCache(
                make_client(settings.redis_url, settings.redis_timeout),
                negative_ttl=settings.negative_cache_ttl,
                tombstone_ttl=TOMBSTONE_TTL,
            )
            cached = CachedStore(
                database,
                cache,
                max_ttl=settings.cache_max_ttl,
                breaker_reset=settings.breaker_reset,
                events=MetricsEvents(metrics),
            )
        keys = ServiceKeyStore(engine)
        authenticator = KeyAuthenticator(
            keys, ttl=settings.key_cache_ttl, stale=settings.key_cache_stale
        )
        store: TokenStore = cached if cached is not None else database
        leases = LeaseStore(engine, lease_ttl=settings.lease_ttl)
        return cls(settings, engine, database, store, cached, keys, authenticator, metrics, leases)

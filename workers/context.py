"""What jobs work with: the service's stores and the queue Redis, one set per worker process.

RQ imports job functions by name and calls them with JSON arguments only, so
a job cannot be handed connections; it asks for this process's context,
built on first use from the settings (never at import time).
"""

from __future__ import annotations

import dataclasses
import functools

import redis

from tokensvc.config import ConfigError, Settings
from tokensvc.services import Services


@dataclasses.dataclass(frozen=True)
class WorkerContext:
    services: Services
    queue_redis: redis.Redis

    @property
    def settings(self) -> Settings:
        return self.services.settings


def queue_connection(settings: Settings) -> redis.Redis:
    if settings.queue_redis_url is None:
        raise ConfigError("TOKENSVC_REDIS_URL: not set; workers and the scheduler need Redis")
    return redis.Redis.from_url(settings.queue_redis_url)


# Purge batches may take a while on a loaded database; the API's 3 s would fail them.
WORKER_READ_TIMEOUT = 120


@functools.cache
def context() -> WorkerContext:
    settings = Settings.from_env()
    services = Services.build(settings, read_timeout=WORKER_READ_TIMEOUT)
    return WorkerContext(services, queue_connection(settings))

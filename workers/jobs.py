"""The jobs. Their arguments are ids (host names, cycle numbers), never token hashes:
RQ logs arguments. Each is idempotent: running it twice does no harm."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from tokensvc.config import Settings
from tokensvc.stores import keys
from tokensvc.stores.base import console_records
from workers.context import context
from workers.queues import queue


def purge_host(compute_host: str, cycle: int) -> dict[str, int]:
    """Delete every expired console of one compute host, batch after batch, resting
    PURGE_PAUSE seconds between batches."""
    services = context().services
    size = services.settings.purge_batch
    result = console_records(services.store).purge_expired(
        compute_host, size, resting(services.settings)
    )
    return {"deleted": result.deleted, "batches": result.batches, "cycle": cycle}


def resting(
    settings: Settings, then: Callable[[list[str]], object] | None = None
) -> Callable[[list[str]], None]:
    """The purge's after-batch callback: ``then(batch)``, then PURGE_PAUSE seconds of rest
    after a full batch, so the hot path keeps the database's CPU."""

    def after(batch: list[str]) -> None:
        if then is not None:
            then(batch)
        if len(batch) == settings.purge_batch:  # (a short batch was the last one)
            time.sleep(settings.purge_pause)

    return after


def purge_job_timeout(purge_interval: int) -> int:
    """Long enough for a large backlog (about a million rows, with the pauses), bounded
    all the same: what a timed-out job left, the next cycle purges."""
    return max(900, 10 * purge_interval)


def fan_out_purges() -> list[str]:
    """Queue one purge per compute host with expired consoles, once per cycle.

    The cycle is the current PURGE_INTERVAL slot; the lock keyed by host and
    cycle makes a second scheduler, or a late fan-out, queue nothing twice.
    """
    ctx = context()
    interval = ctx.settings.purge_interval
    cycle = int(time.time() // interval)
    queued = []
    for host in ctx.services.database.hosts_with_expired():
        if ctx.queue_redis.set(keys.purge_lock_key(host, cycle), 1, nx=True, ex=2 * interval):
            queue(ctx.queue_redis).enqueue(
                purge_host,
                host,
                cycle,
                job_timeout=purge_job_timeout(interval),
                description=f"purge expired consoles of {host}",
            )
            queued.append(host)
    return queued


def retry_invalidations(attempts: int = 6, first_delay: float = 0.5) -> int:
    """Apply the outbox to the cache, backing off while Redis refuses; how many rows."""
    cached = context().services.cached
    if cached is None:
        return 0
    delay = first_delay
    for _ in range(attempts - 1):
        try:
            return cached.flush_outbox()
        except redis.RedisError:
            time.sleep(delay)
            delay *= 2
    return cached.flush_outbox()  # the last attempt's error fails the job


def reap_leases() -> int:
    """Delete lapsed leases (a lapsed lease is already free: this only tidies)."""
    return context().services.leases.reap()

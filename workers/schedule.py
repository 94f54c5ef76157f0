"""`tokensvc scheduler`: rq-scheduler running the periodic jobs, JSON-only.

Periodic jobs have fixed ids, so a restarted (or a second) scheduler replaces
them instead of adding copies; rq-scheduler's own lock lets one scheduler at a
time move due jobs to the queue.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import redis

from tokensvc.config import Settings
from tokensvc.stores.base import Capability, backend_capabilities
from workers import jobs
from workers.queues import scheduler

# How often invalidations left in the outbox are retried, seconds.
OUTBOX_RETRY_INTERVAL = 10
PURGE_FAN_OUT = "tokensvc-purge-fan-out"
JOB_IDS = (PURGE_FAN_OUT, "tokensvc-retry-invalidations", "tokensvc-reap-leases")
# What each periodic job does, as `tokensvc scheduler` says at start.
DESCRIPTIONS = {
    PURGE_FAN_OUT: "a purge per compute host with expired consoles",
    JOB_IDS[1]: "the retry of pending cache invalidations",
    JOB_IDS[2]: "the removal of lapsed leases",
}


def periodic_jobs(settings: Settings) -> dict[str, tuple[Callable[..., Any], int]]:
    """Job id -> (function, interval in seconds)."""
    periodic: dict[str, tuple[Callable[..., Any], int]] = {
        PURGE_FAN_OUT: (jobs.fan_out_purges, settings.purge_interval),
        JOB_IDS[1]: (jobs.retry_invalidations, OUTBOX_RETRY_INTERVAL),
        JOB_IDS[2]: (jobs.reap_leases, settings.lease_ttl),
    }
    if Capability.RECORDS not in backend_capabilities(settings):
        # A backend that cannot purge (memcached): no job that would fail every cycle.
        del periodic[PURGE_FAN_OUT]
    return periodic


def run(settings: Settings, connection: redis.Redis) -> None:
    periodic = periodic_jobs(settings)
    poll = min(5, *(interval for _, interval in periodic.values()))
    rq_scheduler = scheduler(connection, poll_interval=poll)
    for job_id in JOB_IDS:  # also one a scheduler of another backend left
        rq_scheduler.cancel(job_id)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # rq-scheduler wants naive UTC
    for job_id, (function, interval) in periodic.items():
        rq_scheduler.schedule(
            scheduled_time=now,  # the first cycle runs as soon as the scheduler starts
            func=function,
            interval=interval,
            repeat=None,
            id=job_id,
            timeout=jobs.purge_job_timeout(settings.purge_interval),
            result_ttl=10 * interval,
        )
    rq_scheduler.run()

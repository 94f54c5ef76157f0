"""The scheduler's periodic jobs, per backend."""

from __future__ import annotations

from tokensvc.config import Settings
from workers import jobs
from workers.schedule import JOB_IDS, OUTBOX_RETRY_INTERVAL, periodic_jobs


def test_database_backend_runs_every_periodic_job() -> None:
    settings = Settings(purge_interval=45, lease_ttl=12)
    assert periodic_jobs(settings) == {
        "tokensvc-purge-fan-out": (jobs.fan_out_purges, 45),
        "tokensvc-retry-invalidations": (jobs.retry_invalidations, OUTBOX_RETRY_INTERVAL),
        "tokensvc-reap-leases": (jobs.reap_leases, 12),
    }
    assert set(JOB_IDS) == set(periodic_jobs(settings))


def test_memcached_backend_queues_no_purge_that_would_fail_every_cycle() -> None:
    periodic = periodic_jobs(Settings(console_tokens_backend="memcached"))
    assert set(periodic) == {"tokensvc-retry-invalidations", "tokensvc-reap-leases"}

"""`tokensvc worker`, `tokensvc scheduler` and `tokensvc purge`."""

from __future__ import annotations

import json
import sys
import time

import click
import redis

from tokensvc import logs
from tokensvc.config import ConfigError, Settings
from tokensvc.services import Services
from workers import jobs, queues, schedule
from workers.context import WORKER_READ_TIMEOUT, queue_connection


def _settings() -> Settings:
    from tokensvc.cli import load_settings  # the one place that reports bad settings

    return load_settings()


def _queue_redis(settings: Settings) -> redis.Redis:
    from tokensvc.cli import config_error

    try:
        return queue_connection(settings)
    except ConfigError as exc:
        config_error(exc)


@click.command()
@click.option("--burst", is_flag=True, help="stop when the queue is empty")
def worker(burst: bool) -> None:
    """Run queued jobs (SIGTERM: finish the current one, then stop)."""
    settings = _settings()
    logs.configure(settings)  # before rq's own set-up, which then adds no handler
    queues.worker(_queue_redis(settings)).work(burst=burst, logging_level=settings.log_level)


@click.command()
def scheduler() -> None:
    """Queue the periodic jobs.

    Per-host purges every PURGE_INTERVAL seconds, outbox retries, the lease reaper.
    """
    settings = _settings()
    logs.configure(settings)
    schedule.run(settings, _queue_redis(settings))


@click.command()
@click.option("--host", "hosts", multiple=True, help="a compute host (repeatable)")
@click.option("--all", "every_host", is_flag=True, help="every compute host with expired rows")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def purge(hosts: tuple[str, ...], every_host: bool, as_json: bool) -> None:
    """Delete expired consoles now.

    In batches of PURGE_BATCH, resting PURGE_PAUSE seconds between full batches
    (as the workers' purge does).
    """
    if hosts and every_host:
        raise click.UsageError("--host and --all: give one of them, not both")
    if not hosts and not every_host:
        raise click.UsageError("give --host H (repeatable) or --all")
    services = Services.build(_settings(), read_timeout=WORKER_READ_TIMEOUT)
    database = services.database
    targets = list(hosts) or database.hosts_with_expired()
    started = time.monotonic()
    deleted = batches = 0
    show_bar = sys.stdout.isatty() and not as_json
    total = sum(database.count_expired(host) for host in targets)
    with click.progressbar(length=total, label="purging", hidden=not show_bar) as bar:
        after_batch = jobs.resting(services.settings, lambda batch: bar.update(len(batch)))
        for host in targets:
            result = services.store.purge_expired(host, services.settings.purge_batch, after_batch)
            deleted, batches = deleted + result.deleted, batches + result.batches
    elapsed = time.monotonic() - started
    if as_json:
        summary = {"deleted": deleted, "batches": batches, "hosts": len(targets)}
        click.echo(json.dumps(summary | {"seconds": round(elapsed, 3)}))
    else:
        click.echo(
            f"purged {_count(deleted, 'expired console')} of "
            f"{_count(len(targets), 'compute host')} in {_count(batches, 'batch')} "
            f"({elapsed:.1f}s)"
        )


def _count(number: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("ch") else "s")
    return f"{number} {noun if number == 1 else plural}"

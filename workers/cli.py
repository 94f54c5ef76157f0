"""`tokensvc worker`, `tokensvc scheduler` and `tokensvc purge`."""

from __future__ import annotations

import json
import logging
import sys
import time

import click
import redis

from tokensvc import logs
from tokensvc.cli_settings import config_error, load_settings
from tokensvc.config import ConfigError, Settings
from tokensvc.services import Services
from tokensvc.stores.base import console_records
from workers import jobs, queues, schedule
from workers.context import WORKER_READ_TIMEOUT, queue_connection


def _settings() -> Settings:
    return load_settings()


def _queue_redis(settings: Settings) -> redis.Redis:
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
    connection = _queue_redis(settings)
    click.echo(
        f"tokensvc worker: running the jobs of queue {queues.QUEUE_NAME!r} on "
        f"{_where(connection)}{' until it is empty' if burst else ''}; each failure is "
        "logged, routine jobs are not",
        err=True,
    )
    # rq logs three lines per job at INFO (every 10 s for the outbox retry alone):
    # routine. Its failures are ERRORs and stay loud.
    level = logging.getLevelName(settings.log_level)
    quiet = level if level == logging.DEBUG else max(logging.WARNING, level)
    queues.worker(connection).work(burst=burst, logging_level=quiet)


@click.command()
def scheduler() -> None:
    """Queue the periodic jobs.

    Per-host purges every PURGE_INTERVAL seconds, outbox retries, the lease reaper.
    """
    settings = _settings()
    logs.configure(settings)
    connection = _queue_redis(settings)
    every = ", ".join(
        f"{schedule.DESCRIPTIONS[job_id]} every {interval} s"
        for job_id, (_, interval) in schedule.periodic_jobs(settings).items()
    )
    click.echo(f"tokensvc scheduler: queues {every} on {_where(connection)}", err=True)
    logging.getLogger("rq_scheduler").setLevel(logging.WARNING)  # its routine INFO lines
    schedule.run(settings, connection)


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
    store = console_records(services.store)  # unsupported-in-backend before any work
    database = services.database
    targets = list(hosts) or database.hosts_with_expired()
    started = time.monotonic()
    deleted = batches = 0
    show_bar = sys.stdout.isatty() and not as_json
    total = sum(database.count_expired(host) for host in targets)
    with click.progressbar(length=total, label="purging", hidden=not show_bar) as bar:
        after_batch = jobs.resting(services.settings, lambda batch: bar.update(len(batch)))
        for host in targets:
            result = store.purge_expired(host, services.settings.purge_batch, after_batch)
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


def _where(connection: redis.Redis) -> str:
    """The queue Redis as a start line names it: no password."""
    kwargs = connection.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
    return f"Redis {where} db {kwargs.get('db', 0)}"


def _count(number: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("ch") else "s")
    return f"{number} {noun if number == 1 else plural}"

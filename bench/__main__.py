"""One bench run: load, serve, measure every row side by side, print one table.

python -m bench [--quick] (bench/run installs what it needs first)
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click
import redis

from bench import data, idle, report, revocation, scenarios
from bench.load import Load, Result
from bench.processes import REPO, SERVERS, memcached_server, redis_server, worker, wsgi_server
from tokensvc.config import Settings
from tokensvc.services import Services
from workers.jobs import purge_host, purge_job_timeout
from workers.queues import queue


@dataclasses.dataclass(frozen=True)
class Size:
    duration: int
    rounds: int
    hot: int
    cold: int
    connect: int
    memcached: int
    purge_rows: int
    sessions: int  # live sessions whose tokens the revocation row revokes


FULL = Size(
    duration=8,
    rounds=3,
    hot=20_000,
    cold=60_000,
    connect=4_000,
    memcached=2_000,
    purge_rows=1_000_000,
    sessions=100,
)
QUICK = Size(
    duration=2,
    rounds=1,
    hot=2_000,
    cold=10_000,
    connect=500,
    memcached=200,
    purge_rows=20_000,
    sessions=10,
)


@dataclasses.dataclass
class Run:
    size: Size
    mysql: str
    database: str
    directory: Path
    only: set[str] = dataclasses.field(default_factory=set)  # empty: every row
    extra: dict[str, float] = dataclasses.field(default_factory=dict)

    def wants(self, row: str) -> bool:
        return not self.only or row in self.only

    def settings(self, database: str, redis_url: str | None) -> dict[str, str]:
        env = {"TOKENSVC_DATABASE_URL": database, "TOKENSVC_CACHE_MAX_TTL": "7200"}
        # The revocation row's console listens on loopback.
        env["TOKENSVC_CONSOLE_NETWORKS"] = revocation.LOOPBACK
        # Row g floods invalid tokens from one address to measure the negative cache; with
        # the failed-attempt limit on it would measure 429 answers after the first 500.
        env["TOKENSVC_INVALID_TOKEN_LIMIT"] = "0"  # noqa: S105 (a setting, not a secret)
        return env | ({"TOKENSVC_REDIS_URL": redis_url} if redis_url else {})


@click.command()
@click.option("--quick", is_flag=True, help="a smoke run: small data, 2 s per row, one round")
@click.option(
    "--servers",
    default=",".join(SERVERS),
    show_default=True,
    help="WSGI servers to run (the first one gets every row and the targets)",
)
@click.option("--mysql", default="mysql+pymysql://root@127.0.0.1:3306", show_default=True)
@click.option(
    "--database",
    default="tokensvc_bench",
    show_default=True,
    help="MariaDB database to (re)create; NAME_memcached for the memcached backend",
)
@click.option("--rows", "only", default="", help="comma-separated row keys to run (default: all)")
@click.option("--duration", type=int, help="seconds per row and round (overrides the mode)")
@click.option("--rounds", type=int, help="rounds (overrides the mode)")
@click.option("--purge-rows", type=int, help="expired rows the worker purges (overrides the mode)")
@click.option("--sessions", type=int, help="sessions the revocation row revokes (overrides)")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=REPO / "bench" / "results",
    show_default=True,
)
def main(
    quick: bool,
    servers: str,
    mysql: str,
    database: str,
    only: str,
    duration: int | None,
    rounds: int | None,
    purge_rows: int | None,
    sessions: int | None,
    output: Path,
) -> None:
    size = QUICK if quick else FULL
    size = dataclasses.replace(
        size,
        duration=duration or size.duration,
        rounds=rounds or size.rounds,
        purge_rows=purge_rows or size.purge_rows,
        sessions=sessions or size.sessions,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        run = Run(size, mysql, database, Path(scratch), {key for key in only.split(",") if key})
        summaries = measure(run, servers.split(","))
    text = report.table(summaries)
    on_serve = {s.key: s for s in summaries if s.server == servers.split(",")[0]}
    checks = report.targets(on_serve, run.extra)
    lines = [text, "", *(f"- {name}: {value:,.2f}" for name, value in run.extra.items()), ""]
    lines += [f"- target {target.line()}" for target in checks]
    lines.append(
        f"\n{size.rounds} round(s) of {size.duration:g} s per row, 16 connections, "
        f"2 wrk threads; {time.monotonic() - started:.0f} s in all."
    )
    click.echo("\n".join(lines))
    report.write(output, summaries, run.extra, "\n".join(lines))
    click.echo(f"\nwritten: {output}/results.json, report.md, benchmarks.png")


def measure(run: Run, kinds: list[str]) -> list[report.Summary]:
    with redis_server() as redis_url, memcached_server() as memcached:
        database = data.recreate_database(run.mysql, run.database)
        mc_database = data.recreate_database(run.mysql, f"{run.database}_memcached")
        fixtures = prepare(run, database, redis_url, mc_database)
        summaries: list[report.Summary] = []
        for n, kind in enumerate(kinds):
            with serving(
                run, kind, database, redis_url, (mc_database, memcached) if n == 0 else None
            ) as servers:
                if n == 0:
                    fixtures = dataclasses.replace(
                        fixtures,
                        memcached=scenarios.register_through_api(
                            servers.memcached or "",
                            fixtures.keys.admin,
                            run.size.memcached,
                            run.directory,
                        ),
                    )
                rows = scenarios.rows(servers, fixtures, key_rows_only=n > 0)
                summaries += rounds(run, kind, [r for r in rows if run.wants(r.key)])
                if n == 0 and run.wants("purge"):
                    summaries.append(purge_under_load(run, servers, fixtures, database, redis_url))
                if n == 0 and run.wants("idle"):
                    summaries.append(idle_sockets(run, servers, fixtures))
                if n == 0 and run.wants("revoke"):
                    run.extra |= revocation_lag(run, servers, fixtures)
        return summaries


def prepare(run: Run, database: str, redis_url: str, mc_database: str) -> scenarios.Fixtures:
    size, directory = run.size, run.directory
    click.echo(
        f"loading {size.hot + size.cold + size.connect:,} consoles "
        f"and {size.purge_rows:,} expired rows ...",
        err=True,
    )
    keys = data.make_keys(database, mc_database)
    hot = data.load_tokens(database, "hot", size.hot, directory)
    cold = data.load_tokens(database, "cold", size.cold, directory)
    connect = data.load_tokens(database, "connect", size.connect, directory)
    instances = data.load_instances(database, 200, directory)
    data.load_purge_backlog(database, size.purge_rows)
    cache = redis.Redis.from_url(redis_url)
    before = int(cache.info("memory")["used_memory"])
    services = Services.build(Settings.from_env(run.settings(database, redis_url)))
    warmed = data.warm(services.store, hot.hashes)
    services.dispose()  # (its client connections' buffers are not memory per token)
    assert warmed == len(hot.hashes), f"only {warmed} of {len(hot.hashes)} tokens found"
    assert cache.dbsize() == len(hot.hashes)
    used = int(cache.info("memory")["used_memory"])
    run.extra["redis_bytes_per_token"] = (used - before) / warmed
    return scenarios.Fixtures(
        keys, hot, cold, connect, scenarios.invalid_tokens(directory), instances, None, cache
    )


@contextlib.contextmanager
def serving(
    run: Run, kind: str, database: str, redis_url: str, memcached: tuple[str, str] | None
) -> Iterator[scenarios.Servers]:
    floors_env = {"BENCH_REDIS_URL": redis_url, "BENCH_MYSQL_URL": database}
    with contextlib.ExitStack() as stack:

        def start(target: str, env: dict[str, str], service: bool = True) -> str:
            probe = "/healthz" if service else "/hello"
            return stack.enter_context(wsgi_server(kind, target, env, service=service, probe=probe))

        floors = start("bench.floors:create_app", floors_env, service=False)
        cache = start("tokensvc.app:create_app", run.settings(database, redis_url))
        only_db = start("tokensvc.app:create_app", run.settings(database, None))
        mc = None
        if memcached is not None:
            mc_env = run.settings(memcached[0], None) | {
                "TOKENSVC_CONSOLE_TOKENS_BACKEND": "memcached",
                "TOKENSVC_MEMCACHED_SERVERS": memcached[1],
            }
            mc = start("tokensvc.app:create_app", mc_env)
        yield scenarios.Servers(floors, cache, only_db, mc)


def rounds(run: Run, kind: str, rows: list[scenarios.Row]) -> list[report.Summary]:
    load = Load(run.size.duration)
    results: dict[str, list[Result]] = {row.key: [] for row in rows}
    for number in range(1, run.size.rounds + 1):
        for row in rows:  # interleaved: every row once per round
            results[row.key].append(result := row.run(load))
            click.echo(
                f"{kind} round {number} {row.key:>3}: {result.rps:9,.0f}/s "
                f"p99 {result.p99_ms:6.2f} ms {result.statuses or ''}",
                err=True,
            )
    summaries = []
    for row in rows:
        sent = max(r.requests for r in results[row.key])
        note = (
            f"wrapped: {sent:,} requests > {row.limit:,} tokens"
            if row.limit and sent > row.limit
            else ""
        )
        summaries.append(report.summarize(kind, row.key, row.label, results[row.key], note))
    return summaries


def idle_sockets(run: Run, servers: scenarios.Servers, fx: scenarios.Fixtures) -> report.Summary:
    # Windows shorter than the server's header deadline (5 s), which drops the sockets.
    load = Load(min(run.size.duration, 4))
    validate = scenarios.rows(servers, fx, key_rows_only=True)[2].run
    summary, extra = idle.validate_with_idle_sockets(servers.cache, validate, load, run.size.rounds)
    run.extra |= extra
    return summary


def revocation_lag(
    run: Run, servers: scenarios.Servers, fx: scenarios.Fixtures
) -> dict[str, float]:
    """The close feed: revoke to close frame, through one proxy (numbers, not a wrk row)."""
    key_file = run.directory / "revocation-proxy.key"
    key_file.write_text(fx.keys.proxy + "\n")
    key_file.chmod(0o600)
    sessions = run.size.sessions
    with_redis = revocation.measure(servers.cache, fx.keys.admin, key_file, sessions)
    # Without Redis nobody publishes: the waiting call polls the database.
    polled = revocation.measure(servers.database, fx.keys.admin, key_file, sessions)
    return with_redis | {f"{k}_database_only": v for k, v in polled.items() if "lag" in k}


def purge_under_load(
    run: Run, servers: scenarios.Servers, fx: scenarios.Fixtures, database: str, redis_url: str
) -> report.Summary:
    """Validate hits while the worker purges the backlog, against the same without it."""
    load = Load(run.size.duration)
    validate = scenarios.rows(servers, fx, key_rows_only=True)[2].run
    baseline = [validate(load) for _ in range(run.size.rounds)]
    queue_url = redis_url.rsplit("/", 1)[0] + "/1"
    settings = run.settings(database, redis_url) | {"TOKENSVC_QUEUE_REDIS_URL": queue_url}
    queue(redis.Redis.from_url(queue_url)).enqueue(
        purge_host, data.PURGE_HOST, 0, job_timeout=purge_job_timeout(60)
    )
    during: list[Result] = []
    started = time.monotonic()
    with worker(settings) as process:
        while process.poll() is None:
            during.append(validate(load))
        seconds = time.monotonic() - started
    left = data.count_expired(database)
    assert left == 0, f"the purge left {left} rows"
    run.extra["purge_rows"] = run.size.purge_rows
    run.extra["purge_seconds"] = seconds
    run.extra["validate_p99_baseline_ms"] = statistics.median(r.p99_ms for r in baseline)
    run.extra["validate_p99_during_purge_ms"] = statistics.median(r.p99_ms for r in during)
    run.extra["purge_p99_ratio"] = (
        run.extra["validate_p99_during_purge_ms"] / run.extra["validate_p99_baseline_ms"]
    )
    return report.summarize(
        "granian",
        "c+purge",
        "validate hit during the purge",
        during,
        f"{len(during)} window(s), {seconds:.0f} s purge",
    )


if __name__ == "__main__":
    main()

"""Workers and the scheduler as real processes, on real MariaDB and Redis."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from tests.e2e.support import TOKENSVC
from tests.netproxy import TcpProxy
from tests.support import MariaDB, RedisProcess, wait_until
from tokensvc import tokens
from tokensvc.app import create_app
from tokensvc.auth import generate_key, hash_key
from tokensvc.config import Settings
from tokensvc.db import schema
from tokensvc.db.engine import make_engine
from tokensvc.stores import keys as redis_keys
from tokensvc.stores.rows import consoles, instances, invalidations
from workers.queues import JSONJob, queue

HOSTS = ("compute-a", "compute-b", "compute-c")
PAST = dt.datetime(2020, 1, 1)


class Deployment:
    """A database, a Redis (cache db 0, queue db 1) and the worker processes on them."""

    def __init__(self, tmp_path: Path) -> None:
        self.mariadb = MariaDB()
        self.database_url = self.mariadb.create(uuid.uuid4().hex[:6])
        self.engine = make_engine(self.database_url)
        schema.upgrade(self.engine)
        self.redis = RedisProcess()
        self.redis.start()
        self.queue_redis = redis.Redis(port=self.redis.port, db=1)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSVC_")} | {
            "TOKENSVC_DATABASE_URL": self.database_url,
            "TOKENSVC_REDIS_URL": self.redis.url,
            "TOKENSVC_PURGE_INTERVAL": "2",
            "TOKENSVC_PURGE_BATCH": "500",
        }
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"{args[0]}-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [TOKENSVC, *args], env=self.env | env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(process)
        return process

    def purge(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`tokensvc purge` run to its end, its output captured."""
        return subprocess.run(
            [TOKENSVC, "purge", *args],
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.tmp_path.glob("*.log"))

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.engine.dispose()
        self.redis.stop()
        self.mariadb.drop(self.database_url)

    def count(self, where: sa.ColumnElement[bool] | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(consoles)
        with self.engine.connect() as conn:
            return int(conn.execute(query if where is None else query.where(where)).scalar_one())


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    built = Deployment(tmp_path)
    yield built
    built.close()


def insert_consoles(engine: sa.Engine, host: str, count: int, expires: dt.datetime) -> list[str]:
    """``count`` consoles of one compute host; their clear tokens."""
    instance = str(uuid.uuid4())
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    issued = [tokens.generate_token() for _ in range(count)]
    rows: list[dict[str, object]] = [
        {
            "instance_uuid": instance,
            "host": f"10.9.{port // 250}.{port % 250}",  # console addresses, not compute hosts
            "port": port + 1,
            "compute_host": host,
            "token_hash": tokens.hash_token(token),
            "access_url": None,
            "options": {},
            "expires": expires,
            "console_type": "novnc",
            "created_at": now,
            "updated_at": now,
        }
        for port, token in enumerate(issued)
    ]
    with engine.begin() as conn:
        conn.execute(
            instances.insert().values(uuid=instance, host=host, created_at=now, updated_at=now)
        )
        for start in range(0, len(rows), 2000):
            conn.execute(consoles.insert(), rows[start : start + 2000])
    return issued


def wait_for(deployment: Deployment, predicate, timeout: float, what: str) -> None:
    """Until ``predicate()``; every worker process must stay alive meanwhile."""

    def done() -> bool:
        if predicate():
            return True
        dead = [p.args for p in deployment.processes if p.poll() is not None]
        assert not dead, f"{dead} died:\n{deployment.logs()}"
        return False

    assert wait_until(done, timeout, poll=0.2), (
        f"timed out waiting for {what}:\n{deployment.logs()}"
    )


def purge_jobs(deployment: Deployment) -> list[Job]:
    q = queue(deployment.queue_redis)
    registry = FinishedJobRegistry(queue=q)
    found = [JSONJob.fetch(i, connection=deployment.queue_redis) for i in registry.get_job_ids()]
    return [job for job in found if job.func_name == "workers.jobs.purge_host"]


def test_scheduler_and_worker_purge_every_expired_row_and_no_live_one(deployment):
    expired_tokens = []
    for host, count in zip(HOSTS, (5000, 3000, 2000), strict=True):
        expired_tokens += insert_consoles(deployment.engine, host, count, PAST)
    future = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
    live = [t for host in HOSTS for t in insert_consoles(deployment.engine, host, 333, future)]
    live += insert_consoles(deployment.engine, "compute-d", 1, future)
    assert deployment.count() == 11_000

    deployment.spawn("scheduler")
    deployment.spawn("worker")
    wait_for(deployment, lambda: deployment.count(consoles.c.expires <= PAST) == 0, 90, "purge")

    assert deployment.count() == 1000

    def deleted() -> int:
        return sum((job.return_value() or {}).get("deleted", 0) for job in purge_jobs(deployment))

    wait_for(deployment, lambda: deleted() >= 10_000, 30, "the purge jobs to finish")
    results = [job.return_value() or {} for job in purge_jobs(deployment)]
    assert sum(r["deleted"] for r in results) == 10_000
    assert sum(r["batches"] for r in results) >= 10_000 // 500  # batched, never one big delete
    assert sorted({job.args[0] for job in purge_jobs(deployment)}) == list(HOSTS)

    app = create_app(Settings(database_url=deployment.database_url, redis_url=deployment.redis.url))
    proxy = generate_key()
    app.extensions["tokensvc"].keys.create(hash_key(proxy), "proxy")
    client, headers = app.test_client(), {"Authorization": f"Bearer {proxy}"}
    for token in expired_tokens[::997] + live[::101]:
        answer = client.post("/v1/tokens/validate", json={"token": token}, headers=headers)
        assert answer.status_code == (200 if token in live else 404)
    app.extensions["tokensvc"].dispose()


def test_two_schedulers_queue_each_host_once_per_cycle(deployment):
    for host in HOSTS:
        insert_consoles(deployment.engine, host, 3, PAST)
    deployment.spawn("worker")
    deployment.spawn("scheduler")
    time.sleep(0.7)
    # The second scheduler's first fan-out, and a late one queued by hand, land in a
    # cycle the first scheduler has already fanned out.
    deployment.spawn("scheduler")
    queue(deployment.queue_redis).enqueue("workers.jobs.fan_out_purges")
    deadline = time.monotonic() + 7  # three or four cycles of 2 s
    while time.monotonic() < deadline:
        for host in HOSTS:  # every cycle has work for every host
            insert_consoles(deployment.engine, host, 3, PAST)
        time.sleep(0.5)
    wait_for(deployment, lambda: deployment.count() == 0, 30, "the last purges")
    cycles = [(job.args[0], job.args[1]) for job in purge_jobs(deployment)]
    assert len(cycles) >= 2 * len(HOSTS)
    assert len(cycles) == len(set(cycles)), "a host was queued twice in one cycle"


def test_a_pickled_job_is_refused_not_run(deployment, tmp_path):
    marker = tmp_path / "pwned"
    pickled = Queue("tokensvc", connection=deployment.queue_redis)  # RQ's default: pickle
    job = pickled.enqueue("builtins.open", str(marker), "w")
    deployment.spawn("worker", "--burst").wait(60)
    assert not marker.exists()
    assert job.id in FailedJobRegistry(queue=queue(deployment.queue_redis)).get_job_ids()
    # A JSON job after it still runs.
    queue(deployment.queue_redis).enqueue("workers.jobs.reap_leases")
    deployment.spawn("worker", "--burst").wait(60)
    assert len(FinishedJobRegistry(queue=queue(deployment.queue_redis))) == 1


def test_outbox_retry_removes_the_entry_once_redis_is_back(deployment):
    cache_proxy = TcpProxy("127.0.0.1", deployment.redis.port)
    cache_url = f"redis://127.0.0.1:{cache_proxy.port}/0"
    queue_url = f"redis://127.0.0.1:{deployment.redis.port}/1"
    settings = Settings(
        database_url=deployment.database_url,
        redis_url=cache_url,
        queue_redis_url=queue_url,
        breaker_reset=300,  # this process must not apply the outbox itself
    )
    app = create_app(settings)
    services = app.extensions["tokensvc"]
    admin, proxy = generate_key(), generate_key()
    services.keys.create(hash_key(admin), "admin")
    services.keys.create(hash_key(proxy), "proxy")
    client = app.test_client()
    uuid_ = str(uuid.uuid4())
    client.put(
        f"/v1/instances/{uuid_}",
        json={"host": "compute-a"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    body = {"instance_uuid": uuid_, "host": "10.9.0.1", "port": 5900, "console_type": "novnc"}
    token = client.post(
        "/v1/consoles", json=body, headers={"Authorization": f"Bearer {admin}"}
    ).json["token"]
    key = redis_keys.console_key(tokens.hash_token(token))
    cache = redis.Redis(port=deployment.redis.port, db=0)
    assert cache.get(key)[:5] == b"novnc"

    cache_proxy.cut()
    revoked = client.post(
        "/v1/tokens/revoke", json={"token": token}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert revoked.status_code == 204
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(invalidations)).scalar_one() == 1
    assert cache.get(key)[:5] == b"novnc"  # the stale entry is still there

    worker_env = {"TOKENSVC_REDIS_URL": cache_url, "TOKENSVC_QUEUE_REDIS_URL": queue_url}
    queue(deployment.queue_redis).enqueue("workers.jobs.retry_invalidations")
    worker = deployment.spawn("worker", "--burst", **worker_env)
    time.sleep(1.5)  # the job is retrying with backoff while the cache is unreachable
    assert worker.poll() is None
    cache_proxy.restore()
    assert worker.wait(60) == 0
    assert cache.get(key) == b"~"  # tombstoned
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(invalidations)).scalar_one() == 0
    answer = client.post(
        "/v1/tokens/validate", json={"token": token}, headers={"Authorization": f"Bearer {proxy}"}
    )
    assert answer.status_code == 404
    services.dispose()
    cache_proxy.close()


def test_purge_cli_shows_a_bar_on_a_terminal_and_a_summary_when_piped(deployment):
    for host in HOSTS:
        insert_consoles(deployment.engine, host, 600, PAST)
    piped = deployment.purge("--host", "compute-a")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines() == [piped.stdout.strip()]
    assert piped.stdout.startswith("purged 600 expired consoles of 1 compute host in 2 batches")

    leader, follower = pty.openpty()
    on_tty = subprocess.run(
        [TOKENSVC, "purge", "--all"],
        env=deployment.env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        timeout=60,
        check=True,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert on_tty.returncode == 0
    text = shown.decode(errors="replace")
    assert "purging" in text and "100%" in text
    assert "purged 1200 expired consoles of 2 compute hosts" in text

    as_json = deployment.purge("--all", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stdout.startswith('{"deleted": 0, "batches": 0, "hosts": 0')


def test_purge_cli_refuses_host_and_all_together_and_rests_between_batches(deployment):
    both = deployment.purge("--all", "--host", "compute-a")
    assert both.returncode == 2 and "--host and --all: give one of them, not both" in both.stderr
    insert_consoles(deployment.engine, "compute-a", 1000, PAST)  # two full batches of 500
    paused = deployment.purge("--host", "compute-a", "--json", TOKENSVC_PURGE_PAUSE="1.5")
    assert paused.returncode == 0, paused.stderr
    summary = json.loads(paused.stdout)
    assert (summary["deleted"], summary["batches"]) == (1000, 2)
    assert summary["seconds"] >= 3.0  # PURGE_PAUSE after each full batch


def test_scheduler_and_worker_say_what_they_do_once_and_only_failures_after(deployment):
    scheduler = deployment.spawn("scheduler")
    wait_for(
        deployment,
        lambda: "tokensvc scheduler:" in deployment.logs(),
        20,
        "the scheduler's start line",
    )
    jobs_queue = queue(deployment.queue_redis)
    for _ in range(3):
        jobs_queue.enqueue("workers.jobs.reap_leases")  # routine
    jobs_queue.enqueue("workers.jobs.purge_host")  # fails: no compute host given
    deployment.spawn("worker", "--burst").wait(60)
    scheduler.terminate()
    scheduler.wait(15)
    logs = deployment.logs()
    (started,) = [line for line in logs.splitlines() if line.startswith("tokensvc scheduler:")]
    assert "a purge per compute host" in started and "every 2 s" in started
    assert "the retry of pending cache invalidations every 10 s" in started
    assert sum(line.startswith("tokensvc worker:") for line in logs.splitlines()) == 1
    assert "reap_leases" not in logs  # routine jobs: quiet
    assert "purge_host" in logs and "TypeError" in logs  # the failure: loud

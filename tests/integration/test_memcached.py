"""The deprecated memcached backend and the switch to the database, on real memcached."""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from pymemcache.client.base import Client as MemcacheClient  # type: ignore[import-untyped]

from tests.support import Keys, free_port, put_instance, register_console, wait_until
from tokensvc.stores.rows import consoles


class MemcachedProcess:
    def __init__(self, megabytes: int = 64) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                "memcached",
                "-u",
                "memcache",
                "-l",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-m",
                str(megabytes),
            ],
        )
        assert wait_until(self._answers, 10), "memcached did not start"

    def _answers(self) -> bool:
        try:
            MemcacheClient(("127.0.0.1", self.port), connect_timeout=0.5).version()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def memcached() -> Iterator[MemcachedProcess]:
    server = MemcachedProcess()
    yield server
    server.stop()


class Api:
    """An app and the keys to call it."""

    def __init__(self, app) -> None:
        keys = Keys(app)
        self.app, self.client = app, app.test_client()
        self.admin, self.proxy = keys.headers("admin"), keys.headers("proxy")
        self.instance = str(uuid.uuid4())

    def put_instance(self) -> None:
        put_instance(self.client, self.admin, self.instance)

    def register(self, port: int | None = 5900, **extra):
        extra.setdefault("host", "10.5.0.1")
        return register_console(self.client, self.admin, self.instance, port, **extra)

    def validate(self, token: str):
        answer = self.client.post("/v1/tokens/validate", json={"token": token}, headers=self.proxy)
        return answer.status_code


BACKENDS = ["database", "memcached"]


@pytest.fixture(params=BACKENDS)
def api(request, make_app, mariadb_url, redis_url, memcached) -> Api:
    servers = (("127.0.0.1", memcached.port),)
    app = make_app(
        database_url=mariadb_url,
        redis_url=redis_url,
        console_tokens_backend=request.param,
        memcached_servers=servers,
    )
    built = Api(app)
    built.put_instance()
    return built


def test_register_validate_revoke_work_on_both_backends(api):
    first = api.register(5900)
    assert first.status_code == 201
    token = first.json["token"]
    assert api.validate(token) == 200
    assert (
        api.client.post("/v1/tokens/revoke", json={"token": token}, headers=api.admin).status_code
        == 204
    )
    assert api.validate(token) == 404


def test_rotation_revoke_all_and_instance_delete_on_both_backends(api):
    old = api.register(5900).json["token"]
    new = api.register(5900).json["token"]
    assert (api.validate(old), api.validate(new)) == (404, 200)
    other = api.register(5901).json["token"]
    assert (
        api.client.delete(f"/v1/instances/{api.instance}/consoles", headers=api.admin).status_code
        == 204
    )
    assert (api.validate(new), api.validate(other)) == (404, 404)
    last = api.register(5902).json["token"]
    assert api.client.delete(f"/v1/instances/{api.instance}", headers=api.admin).status_code == 204
    assert api.validate(last) == 404


def test_threads_of_one_worker_share_the_backend_safely(api):
    """Server workers run requests in threads: one memcached client must not mix answers."""

    def register_and_validate(thread: int) -> list[tuple[int, int]]:
        client = api.app.test_client()
        statuses = []
        for n in range(20):
            port = 1000 * thread + n
            registered = register_console(client, api.admin, api.instance, port, host="10.5.0.1")
            token = registered.json["token"] if registered.status_code == 201 else "x"
            validated = client.post("/v1/tokens/validate", json={"token": token}, headers=api.proxy)
            statuses.append((registered.status_code, validated.status_code))
        return statuses

    with ThreadPoolExecutor(8) as pool:
        answers = [
            status for batch in pool.map(register_and_validate, range(1, 9)) for status in batch
        ]
    assert answers == [(201, 200)] * 160


def test_what_memcached_cannot_do_is_501_and_every_answer_is_deprecated(
    make_app, mariadb_url, memcached, caplog
):
    with caplog.at_level(logging.WARNING, logger="tokensvc.api"):
        app = make_app(
            database_url=mariadb_url,
            console_tokens_backend="memcached",
            memcached_servers=(("127.0.0.1", memcached.port),),
        )
    assert "deprecated" in caplog.text
    api = Api(app)
    api.put_instance()
    token = api.register().json["token"]
    unsupported = [
        api.client.get(f"/v1/instances/{api.instance}/consoles", headers=api.admin),
        api.client.post(
            "/v1/tokens/connect", json={"token": token, "proxy_id": "p"}, headers=api.proxy
        ),
        api.client.post("/v1/proxies/p/heartbeat", headers=api.proxy),
        api.client.get("/v1/leases", headers=api.admin),
        api.client.delete("/v1/hosts/compute-1/consoles/expired", headers=api.admin),
        api.register(None, host="h", ports=[1, 2], console_type="serial"),
    ]
    for answer in unsupported:
        assert answer.status_code == 501, answer.json
        assert answer.json["type"] == "/problems/unsupported-in-backend"
    validated = api.client.post("/v1/tokens/validate", json={"token": token}, headers=api.proxy)
    assert validated.status_code == 200
    for answer in [*unsupported, api.client.get("/healthz"), validated]:
        assert answer.headers["Deprecation"].startswith("@")
        assert "Sunset" in answer.headers


def test_database_backend_answers_carry_no_deprecation(api):
    answer = api.client.get("/healthz")
    if api.app.extensions["tokensvc"].memcached_backend:
        assert "Deprecation" in answer.headers
    else:
        assert "Deprecation" not in answer.headers


def test_eviction_loses_tokens_in_memcached_mode_but_never_in_the_database(make_app, mariadb_url):
    """Why the database backend exists: 2 MB of memcached cannot hold 600 big tokens."""
    tiny = MemcachedProcess(megabytes=2)
    try:
        lost = {}
        for backend in BACKENDS:
            app = make_app(
                database_url=mariadb_url,
                console_tokens_backend=backend,
                memcached_servers=(("127.0.0.1", tiny.port),),
            )
            api = Api(app)
            api.put_instance()
            padding = {"note": "x" * 3900}  # options up to 4 KiB: large entries fill it fast
            issued = [api.register(port, options=padding).json["token"] for port in range(1, 601)]
            lost[backend] = sum(api.validate(token) == 404 for token in issued)
        assert lost["database"] == 0
        assert lost["memcached"] > 100
    finally:
        tiny.stop()


def test_switching_to_the_database_keeps_memcached_tokens_with_legacy_read(
    make_app, mariadb_url, redis_url, memcached
):
    servers = (("127.0.0.1", memcached.port),)
    old = make_app(
        database_url=mariadb_url, console_tokens_backend="memcached", memcached_servers=servers
    )
    before = Api(old)
    before.put_instance()
    token = before.register().json["token"]
    # The rows written in memcached mode are the index; drop them to stand for a real
    # memcached deployment whose tokens exist only in memcached.
    old.extensions["tokensvc"].database.revoke_all(before.instance)
    assert before.validate(token) == 200  # memcached still has it

    without = Api(
        make_app(database_url=mariadb_url, redis_url=redis_url, memcached_servers=servers)
    )
    assert without.validate(token) == 404

    new = make_app(
        database_url=mariadb_url,
        redis_url=redis_url,
        memcached_servers=servers,
        legacy_memcached_read=True,
    )
    after = Api(new)
    assert after.validate(token) == 200
    assert new.extensions["tokensvc"].metrics.legacy_imports._value.get() == 1
    memcached.stop()  # imported: it no longer needs memcached
    assert after.validate(token) == 200
    connect = after.client.post(
        "/v1/tokens/connect", json={"token": token, "proxy_id": "p"}, headers=after.proxy
    )
    assert connect.status_code == 200


def test_memcached_down_is_a_clear_503(make_app, mariadb_url):
    app = make_app(
        database_url=mariadb_url,
        console_tokens_backend="memcached",
        memcached_servers=(("127.0.0.1", free_port()),),
    )
    api = Api(app)
    api.put_instance()
    answer = api.register()
    assert answer.status_code == 503
    assert answer.json["type"] == "/problems/backend-unavailable"
    assert "Traceback" not in answer.get_data(as_text=True)
    assert "Retry-After" in answer.headers
    with app.extensions["tokensvc"].engine.connect() as conn:  # nothing half-written
        assert conn.execute(sa.select(sa.func.count()).select_from(consoles)).scalar_one() == 0

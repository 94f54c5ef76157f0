"""The rows of the table: each one wrk run against one server, with its preparation."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests

from bench.data import CONSOLE_HOST, Keys, TokenSet
from bench.load import Load, Result, run_wrk
from tokensvc.stores import keys as cache_keys
from tokensvc.tokens import generate_token

PROXY_ID = "bench-proxy"
VALIDATE = "/v1/tokens/validate"


@dataclasses.dataclass(frozen=True)
class Servers:
    """Base URLs of one WSGI server kind's four servers (memcached: granian only)."""

    floors: str
    cache: str
    database: str
    memcached: str | None = None


@dataclasses.dataclass(frozen=True)
class Fixtures:
    keys: Keys
    hot: TokenSet  # cached before the run: validate hits
    cold: TokenSet  # never cached: each request a miss, then a fill
    connect: TokenSet  # consoles for connect/disconnect pairs
    invalid: Path  # well-formed tokens that exist nowhere
    instances: Path  # instances without consoles, for register
    memcached: Path | None
    cache: redis.Redis


@dataclasses.dataclass(frozen=True)
class Row:
    key: str
    label: str
    run: Callable[[Load], Result]
    # How many requests the row may send before its numbers mean something else.
    limit: int | None = None


def bearer(key: str) -> str:
    return f"Bearer {key}"


def rows(servers: Servers, fx: Fixtures, *, key_rows_only: bool = False) -> list[Row]:
    proxy = bearer(fx.keys.proxy)

    def validate(url: str, tokens: Path) -> Callable[[Load], Result]:
        return lambda load: run_wrk(load, url, "post_tokens.lua", VALIDATE, str(tokens), proxy)

    def floor(path: str) -> Callable[[Load], Result]:
        return lambda load: run_wrk(load, servers.floors, "post_tokens.lua", path, str(fx.hot.path))

    table = [
        Row(
            "a",
            "bare hello (floor)",
            lambda load: run_wrk(load, servers.floors, "get.lua", "/hello"),
        ),
        Row("b", "bare Flask + Redis GET (cache floor)", floor("/naive-cache")),
        Row("c", "validate, cache hit", validate(servers.cache, fx.hot.path)),
        Row("d", "validate, database only (MariaDB)", validate(servers.database, fx.hot.path)),
        Row("db", "bare Flask + PyMySQL select (DB floor)", floor("/naive-db")),
    ]
    if key_rows_only:
        return table
    table += [
        Row("e", "validate, cache miss then fill", _cold(servers, fx), len(fx.cold.hashes)),
        Row("g", "validate, invalid token flood", validate(servers.cache, fx.invalid)),
        Row("h", "connect + disconnect (2 requests)", _pairs(servers, fx)),
        Row("reg", "register (new console)", _register(servers, fx)),
        Row("rot", "register again (token rotation)", _rotate(servers, fx)),
    ]
    if servers.memcached is not None and fx.memcached is not None:
        table.insert(
            6, Row("f", "validate, memcached backend", validate(servers.memcached, fx.memcached))
        )
    return table


def _cold(servers: Servers, fx: Fixtures) -> Callable[[Load], Result]:
    def run(load: Load) -> Result:
        forget(fx.cache, fx.cold.hashes)
        return run_wrk(
            load,
            servers.cache,
            "post_tokens.lua",
            VALIDATE,
            str(fx.cold.path),
            bearer(fx.keys.proxy),
        )

    return run


def _pairs(servers: Servers, fx: Fixtures) -> Callable[[Load], Result]:
    def run(load: Load) -> Result:
        # Leases the last round left held (their disconnect never sent): a proxy restart.
        reset = requests.delete(
            f"{servers.cache}/v1/proxies/{PROXY_ID}/leases",
            headers={"Authorization": bearer(fx.keys.proxy)},
            timeout=10,
        )
        reset.raise_for_status()
        args = (str(fx.connect.path), bearer(fx.keys.proxy), PROXY_ID)
        return run_wrk(load, servers.cache, "connect_pairs.lua", *args)

    return run


ROTATE_PORTS = 60_000  # rotation's port (one per instance and wrk thread) starts here


def _register(servers: Servers, fx: Fixtures) -> Callable[[Load], Result]:
    """New consoles: each run a fresh block of ports (1,000 per run, below ROTATE_PORTS)."""
    runs = itertools.count()

    def run(load: Load) -> Result:
        base = 1024 + 1000 * next(runs)
        assert base + 1000 < ROTATE_PORTS, "too many register runs for the port range"
        args = (str(fx.instances), bearer(fx.keys.compute), CONSOLE_HOST, "new", str(base))
        return run_wrk(load, servers.cache, "register.lua", *args)

    return run


def _rotate(servers: Servers, fx: Fixtures) -> Callable[[Load], Result]:
    """The same consoles registered again: new token, old one revoked (after a first,
    unmeasured second that registers them)."""
    args = (str(fx.instances), bearer(fx.keys.compute), CONSOLE_HOST, "rotate")
    first = itertools.count()

    def run(load: Load) -> Result:
        if next(first) == 0:
            run_wrk(
                dataclasses.replace(load, duration=1),
                servers.cache,
                "register.lua",
                *args,
                str(ROTATE_PORTS),
            )
        return run_wrk(load, servers.cache, "register.lua", *args, str(ROTATE_PORTS))

    return run


def forget(cache: redis.Redis, hashes: list[str]) -> None:
    with cache.pipeline(transaction=False) as pipe:
        for n, token_hash in enumerate(hashes, 1):
            pipe.delete(cache_keys.console_key(token_hash))
            if n % 5000 == 0:
                pipe.execute()
        pipe.execute()


def invalid_tokens(directory: Path, count: int = 1000) -> Path:
    path = directory / "invalid.txt"
    path.write_text("".join(generate_token() + "\n" for _ in range(count)))
    return path


def register_through_api(url: str, admin: str, count: int, directory: Path) -> Path:
    """Consoles registered through the API (the memcached backend has no bulk path)."""
    session = requests.Session()
    session.headers["Authorization"] = bearer(admin)
    instances = [str(uuid.uuid4()) for _ in range(-(-count // 100))]
    for instance in instances:
        put = session.put(f"{url}/v1/instances/{instance}", json={"host": "bench-mc"}, timeout=10)
        put.raise_for_status()

    def register(n: int) -> str:
        body = {"instance_uuid": instances[n // 100], "host": CONSOLE_HOST, "port": 5900 + n % 100}
        answer = session.post(
            f"{url}/v1/consoles", json=body | {"console_type": "novnc", "ttl": 7200}, timeout=10
        )
        answer.raise_for_status()
        return str(answer.json()["token"])

    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(register, range(count)))
    path = directory / "memcached.txt"
    path.write_text("".join(token + "\n" for token in tokens))
    return path

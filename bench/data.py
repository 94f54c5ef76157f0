"""What the bench loads: a MariaDB database with live consoles, keys and a purge backlog.

Rows go in with bulk inserts through the storage layer's own tables and column helpers
(registering 100,000 consoles one request at a time would take longer than the load).
The purge backlog is generated inside MariaDB (its sequence engine) for the same reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

from tokensvc.auth import generate_key, hash_key
from tokensvc.db import schema
from tokensvc.db.engine import make_engine
from tokensvc.db.service_keys import ServiceKeyStore
from tokensvc.objects.console import ConsoleConnection, utcnow
from tokensvc.stores.base import TokenStore
from tokensvc.stores.rows import consoles, instances, row_values
from tokensvc.tokens import generate_token, hash_token

CONSOLE_HOST = "10.0.0.8"  # the console address the proxy would dial
COMPUTE_HOST = "bench-compute"
PURGE_HOST = "bench-purge"
PORTS_PER_INSTANCE = 100
INSERT_CHUNK = 5000


@dataclasses.dataclass(frozen=True)
class TokenSet:
    """Clear tokens in a file (for wrk) and their hashes (for the cache)."""

    name: str
    path: Path
    hashes: list[str]


@dataclasses.dataclass(frozen=True)
class Keys:
    admin: str
    proxy: str
    compute: str  # of COMPUTE_HOST: registers as a compute host does


def recreate_database(server_url: str, name: str) -> str:
    """An empty MariaDB database at the current schema; its URL."""
    server = sa.create_engine(server_url)
    with server.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    server.dispose()
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    return url


def make_keys(*database_urls: str) -> Keys:
    """Admin, proxy and compute keys, the same in every database."""
    keys = Keys(generate_key(), generate_key(), generate_key())
    for url in database_urls:
        engine = make_engine(url)
        store = ServiceKeyStore(engine)
        store.create(hash_key(keys.admin), "admin")
        store.create(hash_key(keys.proxy), "proxy")
        store.create(hash_key(keys.compute), "compute", host=COMPUTE_HOST)
        engine.dispose()
    return keys


def _console_rows(
    count: int, expires: dt.datetime, compute_host: str
) -> Iterator[tuple[list[dict[str, object]], list[dict[str, object]], list[str]]]:
    """Chunks of (instance rows, console rows, clear tokens): 100 ports per instance."""
    now = utcnow()
    for start in range(0, count, INSERT_CHUNK):
        size = min(INSERT_CHUNK, count - start)
        uuids = [str(uuid.uuid4()) for _ in range(-(-size // PORTS_PER_INSTANCE))]
        tokens = [generate_token() for _ in range(size)]
        rows = []
        for n, token in enumerate(tokens):
            connection = ConsoleConnection(
                instance_uuid=uuids[n // PORTS_PER_INSTANCE],
                host=CONSOLE_HOST,
                port=5900 + n % PORTS_PER_INSTANCE,
                console_type="novnc",
                access_url="https://console.example.net/vnc_auto.html?path=%3Ftoken%3D{token}",
                options={},
                token_hash=hash_token(token),
                expires=expires,
            )
            key = {"instance_uuid": connection.instance_uuid, "host": CONSOLE_HOST}
            rows.append(key | {"port": connection.port, "created_at": now})
            rows[-1].update(row_values(connection, compute_host, now))
        instance_rows = [
            {"uuid": u, "host": compute_host, "created_at": now, "updated_at": now} for u in uuids
        ]
        yield instance_rows, rows, tokens


def load_tokens(database_url: str, name: str, count: int, directory: Path) -> TokenSet:
    """``count`` live consoles (two hours left), their tokens written to ``name``.txt."""
    engine = make_engine(database_url)
    path, hashes = directory / f"{name}.txt", list[str]()
    expires = utcnow() + dt.timedelta(hours=2)
    with path.open("w") as listing:
        for instance_rows, rows, tokens in _console_rows(count, expires, COMPUTE_HOST):
            with engine.begin() as conn:
                conn.execute(instances.insert(), instance_rows)
                conn.execute(consoles.insert(), rows)
            listing.writelines(token + "\n" for token in tokens)
            hashes.extend(str(row["token_hash"]) for row in rows)
    engine.dispose()
    return TokenSet(name, path, hashes)


def load_instances(database_url: str, count: int, directory: Path) -> Path:
    """Instances of the compute host with no console yet (for register); their list."""
    engine = make_engine(database_url)
    now = utcnow()
    uuids = [str(uuid.uuid4()) for _ in range(count)]
    rows = [{"uuid": u, "host": COMPUTE_HOST, "created_at": now, "updated_at": now} for u in uuids]
    with engine.begin() as conn:
        conn.execute(instances.insert(), rows)
    engine.dispose()
    path = directory / "instances.txt"
    path.write_text("".join(u + "\n" for u in uuids))
    return path


def load_purge_backlog(database_url: str, rows: int) -> None:
    """``rows`` expired consoles of PURGE_HOST (1,000 ports an instance), made by MariaDB."""
    instance_count = -(-rows // 1000)
    engine = make_engine(database_url, read_timeout=600)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO instances (uuid, host, created_at, updated_at)"
                " SELECT CONCAT('00000000-0000-4000-8000-', LPAD(seq, 12, '0')), :host,"
                " UTC_TIMESTAMP(), UTC_TIMESTAMP()"
                f" FROM seq_1_to_{instance_count}"
            ),
            {"host": PURGE_HOST},
        )
        conn.execute(
            sa.text(
                "INSERT INTO console_connections (instance_uuid, host, port, compute_host,"
                " token_hash, access_url, options, expires, console_type, created_at, updated_at)"
                " SELECT CONCAT('00000000-0000-4000-8000-', LPAD(i.seq, 12, '0')), :console,"
                " 1000 + p.seq, :host, SHA2(CONCAT('purge-', i.seq, '-', p.seq), 256), NULL,"
                " '{}', UTC_TIMESTAMP() - INTERVAL 1 HOUR, 'novnc', UTC_TIMESTAMP(),"
                " UTC_TIMESTAMP()"
                f" FROM seq_1_to_{instance_count} AS i JOIN seq_1_to_1000 AS p"
                " WHERE (i.seq - 1) * 1000 + p.seq <= :rows"
            ),
            {"console": CONSOLE_HOST, "host": PURGE_HOST, "rows": rows},
        )
    engine.dispose()


def count_expired(database_url: str) -> int:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).where(consoles.c.compute_host == PURGE_HOST)
        ).scalar_one()
    engine.dispose()
    return int(count)


def warm(store: TokenStore, hashes: list[str], threads: int = 8) -> int:
    """Look every token up through the service's store (a miss fills the cache)."""
    with ThreadPoolExecutor(threads) as pool:
        return sum(found is not None for found in pool.map(store.lookup, hashes))

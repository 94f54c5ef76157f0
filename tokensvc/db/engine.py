"""Engines: one per process, set up for SQLite (embedded) or MySQL/MariaDB."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, RowMapping, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable


def normalize_url(database_url: str) -> URL:
    """MySQL URLs always go through PyMySQL with utf8mb4."""
    url = make_url(database_url)
    if url.get_backend_name() in ("mysql", "mariadb"):
        url = url.set(drivername=f"{url.get_backend_name()}+pymysql")
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


# A database that stops answering must cost seconds, not a hung request: PyMySQL
# waits forever by default. API statements are small; workers pass a longer read
# timeout for their batches.
CONNECT_TIMEOUT = 2
READ_TIMEOUT = 3


def make_engine(database_url: str, *, read_timeout: int = READ_TIMEOUT, **kwargs: Any) -> Engine:
    # Statement parameters hold token hashes: keep them out of error messages and logs.
    kwargs.setdefault("hide_parameters", True)
    url = normalize_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "do_connect", _create_private_file)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", 3600)
    kwargs.setdefault("isolation_level", "READ COMMITTED")
    timeouts = {
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": read_timeout,
        "write_timeout": read_timeout,
    }
    return create_engine(url, connect_args=timeouts, **kwargs)


def make_read_engine(engine: Engine, *, read_timeout: int = READ_TIMEOUT) -> Engine:
    """For single-statement reads (validate's lookup, the instance check): one round trip.

    The general engine costs three on MySQL: the pre-ping, the SELECT, and the ROLLBACK
    that ends the read's transaction. Here each statement commits itself (autocommit, so
    the rollback is skipped), and there is no pre-ping: a pooled connection that died
    fails its read, which :func:`single_statement` repeats once on a fresh connection.
    SQLite has no round trips to save (and an in-memory database is one connection).
    """
    if is_sqlite(engine):
        return engine
    return make_engine(
        engine.url.render_as_string(hide_password=False),
        read_timeout=read_timeout,
        isolation_level="AUTOCOMMIT",
        skip_autocommit_rollback=True,
        pool_pre_ping=False,
    )


def single_statement(
    engine: Engine, statement: Executable, parameters: Mapping[str, Any] | None = None
) -> list[RowMapping]:
    """Run one statement on a :func:`make_read_engine` engine: its rows (none for DML).

    Autocommit on MySQL: one round trip. Once more if the pooled connection turned out
    dead (safe: the statements given here are reads and idempotent deletes). On SQLite,
    in a transaction of its own.
    """
    for attempt in (1, 2):
        try:
            with engine.begin() if is_sqlite(engine) else engine.connect() as conn:
                result = conn.execute(statement, parameters)
                return list(result.mappings()) if result.returns_rows else []
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def _create_private_file(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> None:
    """Create a new SQLite file 0600 before sqlite3 does (it would use 0644 less the umask).

    The file holds key and token hashes. SQLite gives its -wal, -shm and -journal
    files the database file's mode, so they are 0600 too. An existing file is left
    as its owner made it.
    """
    database = cargs[0] if cargs else cparams.get("database", "")
    if not isinstance(database, str) or database in ("", ":memory:"):
        return
    if database.startswith("file:") or cparams.get("uri"):
        return  # a URI names its file in its own syntax: left to sqlite3
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Without foreign_keys=ON SQLite ignores ON DELETE CASCADE.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    if dbapi_connection.execute("PRAGMA database_list").fetchone()[2]:  # a file, not :memory:
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()

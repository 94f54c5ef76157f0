"""Alembic migrations on real SQLite and MariaDB."""

from __future__ import annotations

import datetime as dt
import multiprocessing

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tokensvc.db import schema
from tokensvc.db.engine import make_engine
from tokensvc.db.models import Base
from tokensvc.errors import SchemaOutOfDate

BOTH = pytest.mark.parametrize("fresh_database_url", ["sqlite", "mariadb"], indirect=True)


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_exactly_one_head():
    heads = ScriptDirectory.from_config(schema.alembic_config()).get_heads()
    assert heads == [schema.head_revision()]


@BOTH
def test_upgrade_downgrade_upgrade(fresh_database_url):
    engine = make_engine(fresh_database_url)
    schema.upgrade(engine)
    assert table_names(fresh_database_url) == set(Base.metadata.tables)
    schema.downgrade(engine, "base")
    assert table_names(fresh_database_url) == set()
    assert schema.current_revision(engine) is None
    schema.upgrade(engine)
    assert schema.current_revision(engine) == schema.head_revision()
    engine.dispose()


@BOTH
def test_models_match_migrations(fresh_database_url):
    engine = make_engine(fresh_database_url)
    schema.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


@pytest.mark.parametrize("fresh_database_url", ["mariadb"], indirect=True)
def test_mysql_refuses_an_old_schema(fresh_database_url):
    engine = make_engine(fresh_database_url)
    with pytest.raises(SchemaOutOfDate, match="run `tokensvc db upgrade`"):
        schema.ensure_schema(engine)
    assert table_names(fresh_database_url) == set()  # it did not migrate by itself
    schema.upgrade(engine)
    schema.ensure_schema(engine)
    engine.dispose()


def _ensure(url: str) -> None:
    engine = make_engine(url)
    schema.ensure_schema(engine)
    engine.dispose()


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_sqlite_migrates_itself_once_under_concurrent_starts(fresh_database_url):
    # Four processes start at once, as WSGI workers do; the file lock serialises them.
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_ensure, args=(fresh_database_url,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert schema.current_revision(make_engine(fresh_database_url)) == schema.head_revision()


ID_COLUMNS = [
    ("instances", "host"),
    ("console_connections", "host"),
    ("console_connections", "compute_host"),
    ("service_keys", "host"),
    ("service_keys", "proxy_id"),
    ("console_leases", "host"),
    ("console_leases", "proxy_id"),
]


def id_collations(engine: sa.Engine) -> set[str]:
    query = sa.text(
        "SELECT COLLATION_NAME FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table AND COLUMN_NAME = :column"
    )
    with engine.connect() as conn:
        return {
            conn.execute(query, {"table": table, "column": column}).scalar_one()
            for table, column in ID_COLUMNS
        }


def database_collation(engine: sa.Engine) -> str:
    query = "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA"
    with engine.connect() as conn:
        name: str = conn.execute(sa.text(f"{query} WHERE SCHEMA_NAME = DATABASE()")).scalar_one()
        return name


def hosts_matching(engine: sa.Engine, host: str) -> int:
    with engine.connect() as conn:
        count: int = conn.execute(
            sa.text("SELECT COUNT(*) FROM instances WHERE host = :host"), {"host": host}
        ).scalar_one()
        return count


@BOTH
def test_ids_compare_exactly_at_head_and_loosely_on_mysql_before(fresh_database_url):
    engine = make_engine(fresh_database_url)
    mysql = engine.dialect.name == "mysql"
    schema.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO instances (uuid, host, created_at, updated_at)"
                " VALUES ('123e4567-e89b-12d3-a456-426614174000', 'compute-b', :now, :now)"
            ),
            {"now": dt.datetime(2026, 11, 28)},
        )
    variants = ("COMPUTE-B", "compute-b ", "Compute-B  ")
    assert [hosts_matching(engine, h) for h in ("compute-b", *variants)] == [1, 0, 0, 0]
    if mysql:
        assert id_collations(engine) == {"utf8mb4_nopad_bin"}

    schema.downgrade(engine, "0004")  # what the migration fixed (SQLite was exact all along)
    loosely = [hosts_matching(engine, h) for h in variants]
    assert loosely == ([1, 1, 1] if mysql else [0, 0, 0])
    if mysql:
        assert id_collations(engine) == {database_collation(engine)}

    schema.upgrade(engine)
    assert [hosts_matching(engine, h) for h in ("compute-b", *variants)] == [1, 0, 0, 0]
    engine.dispose()

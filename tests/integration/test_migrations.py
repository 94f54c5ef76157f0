"""Alembic migrations on real SQLite and MariaDB."""

from __future__ import annotations

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

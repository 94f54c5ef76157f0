"""Schema management through alembic: upgrade, downgrade, current, start-up check.

With SQLite the app migrates itself at start (under a file lock, so several
worker processes do it once); with MySQL an operator runs ``tokensvc db
upgrade`` and the app refuses to start on an old schema.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from tokensvc.db.engine import is_sqlite
from tokensvc.errors import SchemaOutOfDate


def script_location() -> Path:
    """The alembic scripts: ``tokensvc.migrations`` when installed (the build maps the
    top-level ``migrations/`` there); else the ``migrations/`` beside the package, as when
    a checkout's own ``tokensvc/`` is imported (it shadows an installed one from the
    checkout's directory, and has no such subpackage)."""
    try:
        return Path(str(files("tokensvc.migrations")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    """An in-memory alembic config; ``migrations/env.py`` runs on ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def ensure_schema(engine: Engine) -> None:
    """Bring SQLite up to date; refuse a MySQL schema that is not at head."""
    if is_sqlite(engine):
        with _migration_lock(engine):
            upgrade(engine)
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"database schema is at {current or 'no revision'}, this tokensvc needs {head}: "
            "run `tokensvc db upgrade`"
        )


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)

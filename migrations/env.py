"""Alembic environment: runs on the engine tokensvc hands over (see db/schema.py).

Run standalone (``alembic -c ...``) it falls back to ``TOKENSVC_DATABASE_URL``
through the settings module, the only place env is read.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from tokensvc.config import Settings
from tokensvc.db.engine import make_engine
from tokensvc.db.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine: Engine | None = context.config.attributes.get("engine")
    if engine is None:
        engine = make_engine(Settings.from_env().database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()

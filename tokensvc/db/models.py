"""SQLAlchemy 2 models: the tables of docs/storage-and-cache.md.

The schema itself is only ever created by alembic (``migrations/``); these
models must match it exactly (a test compares them with autogenerate).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import (
    CHAR,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Naive UTC in the database, aware UTC in Python (MySQL DATETIME has no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class JSONText(TypeDecorator[dict[str, Any]]):
    """A JSON object kept as TEXT: same column type on SQLite and MariaDB."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> Any:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else json.loads(value)


def exact_collation(dialect: Dialect) -> str:
    """MySQL's binary collation without trailing-space padding (``utf8mb4_bin`` pads)."""
    return "utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


class IdString(TypeDecorator[str]):
    """A host name or proxy id, compared byte for byte.

    MySQL's default collations ignore case and trailing spaces, so a key for ``PROXY-Q``
    would act on ``proxy-q``'s rows. SQLite's default (BINARY) is already exact.
    """

    impl = String(255)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "mysql":
            return dialect.type_descriptor(String(255, collation=exact_collation(dialect)))
        return dialect.type_descriptor(String(255))


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class InstanceRow(Base):
    __tablename__ = "instances"

    uuid: Mapped[str] = mapped_column(CHAR(36), primary_key=True)
    # The compute host that runs the instance (what compute keys are scoped to).
    host: Mapped[str] = mapped_column(IdString())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ConsoleConnectionRow(Base):
    __tablename__ = "console_connections"
    __table_args__ = (Index(None, "compute_host", "expires"),)

    instance_uuid: Mapped[str] = mapped_column(
        CHAR(36), ForeignKey("instances.uuid", ondelete="CASCADE"), primary_key=True
    )
    # The address the proxy dials, not the compute host.
    host: Mapped[str] = mapped_column(IdString(), primary_key=True)
    port: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # Copied from instances.host at registration; a move revokes, so never stale.
    compute_host: Mapped[str] = mapped_column(IdString())
    token_hash: Mapped[str | None] = mapped_column(CHAR(64), unique=True)
    access_url: Mapped[str | None] = mapped_column(String(255))
    options: Mapped[dict[str, Any]] = mapped_column(JSONText())
    expires: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    console_type: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ServiceKeyRow(Base):
    __tablename__ = "service_keys"

    id: Mapped[str] = mapped_column(CHAR(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(CHAR(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # compute keys: the compute host they manage; proxy keys: optionally one proxy_id.
    host: Mapped[str | None] = mapped_column(IdString())
    proxy_id: Mapped[str | None] = mapped_column(IdString())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class InvalidationRow(Base):
    """Outbox: cache entries still to delete, written with the revocation itself."""

    __tablename__ = "invalidations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(CHAR(64), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class LeaseRow(Base):
    """Who holds a console port. No FK to the console: a lease outlives the revocation
    of its token until the proxy has closed the session."""

    __tablename__ = "console_leases"

    instance_uuid: Mapped[str] = mapped_column(CHAR(36), primary_key=True)
    host: Mapped[str] = mapped_column(IdString(), primary_key=True)
    port: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(CHAR(32), unique=True)
    proxy_id: Mapped[str] = mapped_column(IdString(), index=True)
    client: Mapped[str | None] = mapped_column(String(255))
    since: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    close_reason: Mapped[str | None] = mapped_column(String(32))

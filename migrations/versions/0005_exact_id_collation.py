"""host and proxy id columns compare exactly on MySQL/MariaDB

MySQL's default collations ignore case and trailing spaces: a key bound to
``PROXY-Q`` matched ``proxy-q``'s leases. The id columns get the binary collation
without padding. SQLite compares with BINARY already: nothing to do there.

A downgrade fails if the table now holds ids that differ only in case or trailing
spaces in a key column (they would be duplicates again).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tokensvc.db.models import exact_collation

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# table -> its id columns -> nullable
ID_COLUMNS = {
    "instances": {"host": False},
    "console_connections": {"host": False, "compute_host": False},
    "service_keys": {"host": True, "proxy_id": True},
    "console_leases": {"host": False, "proxy_id": False},
}


def upgrade() -> None:
    dialect = op.get_bind().dialect
    if dialect.name == "mysql":
        _collate(exact_collation(dialect))


def downgrade() -> None:
    if op.get_bind().dialect.name == "mysql":
        _collate(None)  # back to the table's default collation


def _collate(collation: str | None) -> None:
    for table, columns in ID_COLUMNS.items():
        for column, nullable in columns.items():
            op.alter_column(
                table,
                column,
                type_=sa.String(255, collation=collation),
                existing_type=sa.String(255),
                existing_nullable=nullable,
            )

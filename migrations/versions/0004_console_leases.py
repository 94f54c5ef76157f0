"""console_leases

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_leases",
        sa.Column("instance_uuid", sa.CHAR(36), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("id", sa.CHAR(32), nullable=False),
        sa.Column("proxy_id", sa.String(255), nullable=False),
        sa.Column("client", sa.String(255), nullable=True),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.Column("close_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("instance_uuid", "host", "port", name=op.f("pk_console_leases")),
        sa.UniqueConstraint("id", name=op.f("uq_console_leases_id")),
    )
    op.create_index(op.f("ix_console_leases_proxy_id"), "console_leases", ["proxy_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_console_leases_proxy_id"), table_name="console_leases")
    op.drop_table("console_leases")

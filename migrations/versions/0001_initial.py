"""instances and console_connections

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("uuid", sa.CHAR(36), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_instances")),
    )
    op.create_table(
        "console_connections",
        sa.Column("instance_uuid", sa.CHAR(36), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("compute_host", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.CHAR(64), nullable=True),
        sa.Column("access_url", sa.String(255), nullable=True),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=True),
        sa.Column("console_type", sa.String(16), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_console_connections_instance_uuid_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "instance_uuid", "host", "port", name=op.f("pk_console_connections")
        ),
        sa.UniqueConstraint("token_hash", name=op.f("uq_console_connections_token_hash")),
    )
    op.create_index(
        op.f("ix_console_connections_compute_host_expires"),
        "console_connections",
        ["compute_host", "expires"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_console_connections_compute_host_expires"), table_name="console_connections"
    )
    op.drop_table("console_connections")
    op.drop_table("instances")

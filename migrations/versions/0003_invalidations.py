"""invalidations outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invalidations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.CHAR(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invalidations")),
    )
    op.create_index(op.f("ix_invalidations_token_hash"), "invalidations", ["token_hash"])


def downgrade() -> None:
    op.drop_index(op.f("ix_invalidations_token_hash"), table_name="invalidations")
    op.drop_table("invalidations")

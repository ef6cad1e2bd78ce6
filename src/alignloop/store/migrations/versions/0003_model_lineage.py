"""model version lineage: algorithm, weights kind, data version, config

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 12:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.add_column(sa.Column("algorithm", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("weights", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("data_version", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column(
                "config",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default="{}",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch_op:
        for column in ("config", "data_version", "weights", "algorithm"):
            batch_op.drop_column(column)

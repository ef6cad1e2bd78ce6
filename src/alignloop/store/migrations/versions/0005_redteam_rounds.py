"""red-team rounds: the labels each gathered, the classifier it trained, whether it was promoted

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 10:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "redteam_rounds",
        sa.Column("id", BigId, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("first_label_id", sa.BigInteger(), nullable=False),
        sa.Column("last_label_id", sa.BigInteger(), nullable=False),
        sa.Column("labels", sa.Integer(), nullable=False),
        sa.Column("holdout", sa.Integer(), nullable=False),
        sa.Column("classifier_version_id", BigId, nullable=False),
        sa.Column("previous_classifier", sa.String(length=1000), nullable=False),
        sa.Column("metrics", JSONType, nullable=False, server_default="{}"),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("config", JSONType, nullable=False, server_default="{}"),
        sa.ForeignKeyConstraint(["classifier_version_id"], ["model_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )


def downgrade() -> None:
    op.drop_table("redteam_rounds")

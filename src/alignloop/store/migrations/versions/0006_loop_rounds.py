"""loop rounds: one round of the whole cycle per arm, its steps, its versions and its decision

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 12:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "loop_rounds",
        sa.Column("id", BigId, nullable=False),
        sa.Column("arm", sa.String(length=100), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("folder", sa.String(length=1000), nullable=False),
        sa.Column("first_message_id", sa.BigInteger(), nullable=False),
        sa.Column("last_message_id", sa.BigInteger(), nullable=False),
        sa.Column("curation_run_id", BigId, nullable=True),
        sa.Column("deployed_version_id", BigId, nullable=True),
        sa.Column("candidate_version_id", BigId, nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("decision", JSONType, nullable=False, server_default="{}"),
        sa.Column("config", JSONType, nullable=False, server_default="{}"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["curation_run_id"], ["curation_runs.id"]),
        sa.ForeignKeyConstraint(["deployed_version_id"], ["model_versions.id"]),
        sa.ForeignKeyConstraint(["candidate_version_id"], ["model_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("arm", "number"),
    )


def downgrade() -> None:
    op.drop_table("loop_rounds")
